#!/usr/bin/env bash
# Benchmark: what a race's candidate costs baton over a plain task. Runs
# R*3 trivial plain tasks, then R races of 3 candidates each (pick = "all",
# ranked by the default measures: 3 agents, a pick and one merge per race),
# through `baton run` with the same max_parallel, and prints the wall time
# per agent of each (median of ROUNDS) and their ratio. Goal: <= 1.10x.
#
#   bench/race.sh                 # R=10 (30 agents), J=6, ROUNDS=5
#   R=20 ROUNDS=3 bench/race.sh
#   BATON=/path/to/baton bench/race.sh   # an already built binary
set -euo pipefail
R=${R:-10}
J=${J:-6}
ROUNDS=${ROUNDS:-5}
. "$(dirname "$0")/lib.sh"
agents=$((R * 3))

race_plan() {
  printf '[run]\nmax_parallel = %s\n\n[agent.sh]\nadapter = "exec"\ncommand = ["bash", "-ec"]\n\n[defaults]\nagent = "sh"\n' "$J"
  for i in $(seq 1 "$R"); do
    printf '\n[[task]]\nid = "r%s"\ncandidates = 3\nprompt = "echo $BATON_TASK > f%s.txt"\n' "$i" "$i"
  done
}

with_races() {
  local integration
  new_repo
  race_plan > "$work/race.toml"
  "$BATON" -C "$work/repo" run "$work/race.toml" 2>/dev/null
  integration=$(git -C "$work/repo" for-each-ref --format='%(refname)' 'refs/heads/baton/*/integration')
  test "$(git -C "$work/repo" ls-tree --name-only "$integration" | wc -l)" -eq "$R"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

plain_ms=$(for _ in $(seq 1 "$ROUNDS"); do time_it with_baton "$agents" "$J"; done | median)
race_ms=$(for _ in $(seq 1 "$ROUNDS"); do time_it with_races; done | median)
echo "agents: $agents (plain: $agents tasks; races: $R of 3 candidates), max_parallel $J, rounds: $ROUNDS (median wall time)"
awk -v p="$plain_ms" -v r="$race_ms" -v n="$agents" 'BEGIN {
  printf "plain task:  %6.1f ms per agent (%d ms)\n", p / n, p
  printf "candidate:   %6.1f ms per agent (%d ms)\n", r / n, r
  printf "ratio:       %.2fx (goal <= 1.10x)\n", r / p
}'

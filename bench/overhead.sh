#!/usr/bin/env bash
# Benchmark: baton's own cost per task. Runs N trivial tasks (each writes one
# file) through `baton run` and the same work through a plain shell script
# (git worktree add, run in parallel, commit, git merge each), and prints
# both wall times (median of ROUNDS) and their ratio. Target: ratio <= 1.25.
#
#   bench/overhead.sh            # N=32, ROUNDS=5
#   N=64 ROUNDS=3 bench/overhead.sh
#   BATON=/path/to/baton bench/overhead.sh   # an already built binary
set -euo pipefail
N=${N:-32}
ROUNDS=${ROUNDS:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${BATON:-}" ]; then
  cargo build --release -q -p baton-cli --manifest-path "$here/Cargo.toml"
  BATON="$here/target/release/baton"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost \
  GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost

new_repo() {
  rm -rf "$work/repo" "$work/wt"
  git init -q -b main "$work/repo"
  git -C "$work/repo" commit -q --allow-empty -m init
}

plain() {
  new_repo
  cd "$work/repo"
  git worktree add -q -b plain/integration "$work/wt/integration" HEAD
  for i in $(seq 1 "$N"); do git worktree add -q -b "plain/t$i" "$work/wt/t$i" HEAD; done
  for i in $(seq 1 "$N"); do
    (cd "$work/wt/t$i" && bash -ec "echo $i > f$i.txt" && git add -A && git commit -q -m "t$i") &
  done
  wait
  cd "$work/wt/integration"
  for i in $(seq 1 "$N"); do git merge -q --no-edit "plain/t$i"; done
  test "$(ls f*.txt | wc -l)" -eq "$N"
}

plan() {
  printf '[run]\nmax_parallel = %s\n\n[agent.sh]\nadapter = "exec"\ncommand = ["bash", "-ec"]\n\n[defaults]\nagent = "sh"\n' "$N"
  for i in $(seq 1 "$N"); do printf '\n[[task]]\nid = "t%s"\nprompt = "echo %s > f%s.txt"\n' "$i" "$i" "$i"; done
}

with_baton() {
  new_repo
  plan > "$work/plan.toml"
  "$BATON" -C "$work/repo" run "$work/plan.toml" 2>/dev/null
  test "$(git -C "$work/repo" ls-tree --name-only "$(git -C "$work/repo" for-each-ref --format='%(refname)' 'refs/heads/baton/*/integration')" | wc -l)" -eq "$N"
}

time_it() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

plain_ms=$(for _ in $(seq 1 "$ROUNDS"); do time_it plain; done | median)
baton_ms=$(for _ in $(seq 1 "$ROUNDS"); do time_it with_baton; done | median)
echo "tasks: $N, rounds: $ROUNDS (median wall time)"
echo "plain script: ${plain_ms} ms"
echo "baton run:    ${baton_ms} ms"
awk -v b="$baton_ms" -v p="$plain_ms" 'BEGIN { printf "ratio:        %.2fx (target <= 1.25x)\n", b / p }'

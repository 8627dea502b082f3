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
. "$(dirname "$0")/lib.sh"

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

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

plain_ms=$(for _ in $(seq 1 "$ROUNDS"); do time_it plain; done | median)
baton_ms=$(for _ in $(seq 1 "$ROUNDS"); do time_it with_baton "$N" "$N"; done | median)
echo "tasks: $N, rounds: $ROUNDS (median wall time)"
echo "plain script: ${plain_ms} ms"
echo "baton run:    ${baton_ms} ms"
awk -v b="$baton_ms" -v p="$plain_ms" 'BEGIN { printf "ratio:        %.2fx (target <= 1.25x)\n", b / p }'

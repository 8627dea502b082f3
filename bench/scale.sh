#!/usr/bin/env bash
# Benchmark: does baton's cost per task stay flat as a run grows? Runs N
# independent trivial tasks (each writes one file), 8 at a time, through
# `baton run` and through the equivalent plain git script (per task: a
# worktree and branch, the work, a commit, the worktree removed; then every
# branch merged into an integration branch), for N = 100 and N = 1000, and
# prints the wall times, baton's ms per task at each size and, at the largest
# size, baton's time over the script's.
# Targets: ratio <= 1.0 at 1,000 tasks; ms per task at 1,000 within 1.2x of
# ms per task at 100.
#
#   bench/scale.sh                 # SIZES="100 1000", J=8
#   SIZES="100 400" bench/scale.sh
#   BATON=/path/to/baton bench/scale.sh   # an already built binary
set -euo pipefail
SIZES=${SIZES:-"100 1000"}
J=${J:-8}
. "$(dirname "$0")/lib.sh"

# One task of the plain script; worktree additions take a lock, as git's
# worktree metadata does not survive two `worktree add` at once.
plain_task() {
  local i=$1 repo=$work/repo wt=$work/wt/t$1
  flock "$work/wt.lock" git -C "$repo" worktree add -q -b "plain/t$i" "$wt" HEAD
  (cd "$wt" && bash -ec "echo $i > f$i.txt" && git add -A && git commit -q -m "t$i")
  flock "$work/wt.lock" git -C "$repo" worktree remove "$wt"
}
export -f plain_task
export work

plain() {
  local n=$1
  new_repo
  seq 1 "$n" | xargs -P "$J" -I{} bash -c 'plain_task {}'
  git -C "$work/repo" worktree add -q -b plain/integration "$work/wt/integration" HEAD
  cd "$work/wt/integration"
  for i in $(seq 1 "$n"); do git merge -q --no-edit "plain/t$i"; done
  test "$(ls f*.txt | wc -l)" -eq "$n"
  cd "$work"
}

echo "tasks at once: $J"
first_per_task=""
for n in $SIZES; do
  plain_ms=$(time_it plain "$n")
  baton_ms=$(time_it with_baton "$n" "$J")
  per_task=$(awk -v b="$baton_ms" -v n="$n" 'BEGIN { printf "%.1f", b / n }')
  plain_per_task=$(awk -v p="$plain_ms" -v n="$n" 'BEGIN { printf "%.1f", p / n }')
  echo "$n tasks: plain script ${plain_ms} ms (${plain_per_task} ms/task), baton ${baton_ms} ms (${per_task} ms/task)"
  [ -n "$first_per_task" ] || first_per_task=$per_task
  last_per_task=$per_task last_ratio=$(awk -v b="$baton_ms" -v p="$plain_ms" 'BEGIN { printf "%.2f", b / p }')
  last_n=$n
done
echo "ratio at $last_n tasks: ${last_ratio}x (target <= 1.0x)"
awk -v a="$first_per_task" -v b="$last_per_task" -v n="$last_n" \
  'BEGIN { printf "ms per task at %s over the smallest size: %.2fx (target <= 1.2x)\n", n, b / a }'

#!/usr/bin/env bash
# Benchmark: the cost of the sandbox per agent start. Runs N trivial tasks
# one at a time through `baton run`, without a sandbox and with
# sandbox = "bwrap" (and then with network = "off"), and prints the wall
# time of each (median of ROUNDS) and the difference per task. Target: under
# 20 ms per agent start. Needs bubblewrap (apt install bubblewrap).
#
#   bench/sandbox.sh             # N=20, ROUNDS=5
#   BATON=/path/to/baton bench/sandbox.sh
set -euo pipefail
N=${N:-20}
ROUNDS=${ROUNDS:-5}
. "$(dirname "$0")/lib.sh"
command -v bwrap >/dev/null || { echo "bubblewrap is not installed (apt install bubblewrap)" >&2; exit 1; }

# The trivial plan, its profile given `extra` lines.
run_with() {
  local extra=$1 integration
  new_repo
  trivial_plan "$N" 1 | awk -v extra="$extra" '{print} /^command = / && extra != "" {print extra}' > "$work/plan.toml"
  "$BATON" -C "$work/repo" run "$work/plan.toml" 2>/dev/null
  integration=$(git -C "$work/repo" for-each-ref --format='%(refname)' 'refs/heads/baton/*/integration')
  test "$(git -C "$work/repo" ls-tree --name-only "$integration" | wc -l)" -eq "$N"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
off_ms=$(for _ in $(seq 1 "$ROUNDS"); do time_it run_with ""; done | median)
on_ms=$(for _ in $(seq 1 "$ROUNDS"); do time_it run_with 'sandbox = "bwrap"'; done | median)
net_ms=$(for _ in $(seq 1 "$ROUNDS"); do time_it run_with 'sandbox = "bwrap"
network = "off"'; done | median)
echo "tasks: $N, one at a time, rounds: $ROUNDS (median wall time)"
echo "no sandbox:              ${off_ms} ms"
echo "sandbox:                 ${on_ms} ms"
echo "sandbox, network off:    ${net_ms} ms"
awk -v a="$on_ms" -v b="$net_ms" -v o="$off_ms" -v n="$N" 'BEGIN {
  printf "per agent start:         %.1f ms (network off: %.1f ms; target < 20 ms)\n", (a - o) / n, (b - o) / n }'

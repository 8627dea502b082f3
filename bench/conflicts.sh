#!/usr/bin/env bash
# Benchmark: N tasks at once that all edit one file, every conflict handed to
# a scripted resolver (it keeps both sides). Prints the wall time, how many
# tasks landed and how many resolver attempts it took.
#
#   bench/conflicts.sh             # N=8
#   N=16 bench/conflicts.sh
#   BATON=/path/to/baton bench/conflicts.sh
set -euo pipefail
N=${N:-8}
. "$(dirname "$0")/lib.sh"

new_repo
printf 'start\n' > "$work/repo/shared.txt"
git -C "$work/repo" add shared.txt
git -C "$work/repo" commit -q -m shared
{
  printf '[run]\nmax_parallel = %s\nresolver = "fixer"\n\n' "$N"
  printf '[agent.sh]\nadapter = "exec"\ncommand = ["bash", "-ec"]\n\n'
  printf '[agent.fixer]\nadapter = "exec"\n'
  printf 'command = ["bash", "-ec", "for f in $(git diff --name-only --diff-filter=U); do sed -i -e %s -e %s -e %s \\"$f\\"; done"]\n\n' \
    "'/^<<<<<<< /d'" "'/^=======$/d'" "'/^>>>>>>> /d'"
  printf '[defaults]\nagent = "sh"\non_conflict = "resolve"\n'
  for i in $(seq 1 "$N"); do printf '\n[[task]]\nid = "t%s"\nprompt = "echo line %s >> shared.txt"\n' "$i" "$i"; done
} > "$work/plan.toml"

start=$(date +%s%N)
"$BATON" -C "$work/repo" run --json "$work/plan.toml" > "$work/report.json" 2>/dev/null || true
end=$(date +%s%N)
python3 - "$work/report.json" "$N" $(( (end - start) / 1000000 )) <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
n, ms = int(sys.argv[2]), int(sys.argv[3])
landed = sum(1 for t in report["tasks"] if t["merged"])
resolutions = sum(t["attempts"] - 1 for t in report["tasks"])
print(f"{n} tasks editing one file: {landed} landed in {ms} ms, {resolutions} resolver attempts")
PY
integration=$(git -C "$work/repo" for-each-ref --format='%(refname)' 'refs/heads/baton/*/integration')
test "$(git -C "$work/repo" show "$integration:shared.txt" | grep -c '^line ')" -eq "$N"

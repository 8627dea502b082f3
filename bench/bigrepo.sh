#!/usr/bin/env bash
# Benchmark: how fast a task starts on a big repository. Generates a
# repository of FILES files (default 100,000), then prints the time of one
# plain `git worktree add`, and baton's time from `baton run` to the agent
# running for the first and the fifth of 5 tasks (all at once), with the
# warm pool (`[workspace] pool = 5`) cold (first run) and warm (next run).
# Target: a warm task start <= 0.25 s on 100,000 files.
#
#   bench/bigrepo.sh                  # FILES=100000
#   FILES=20000 bench/bigrepo.sh
#   BATON=/path/to/baton bench/bigrepo.sh   # an already built binary
set -euo pipefail
FILES=${FILES:-100000}
. "$(dirname "$0")/lib.sh"

echo "generating a repository of $FILES files..."
new_repo
python3 - "$work/repo" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "src", f"d{i // 1000:03}", f"e{(i // 50) % 20:02}")
    if i % 50 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "w") as f:
        f.write(f"file {i}\n")
PY
git -C "$work/repo" add -A
git -C "$work/repo" commit -q -m "a big tree"
git -C "$work/repo" gc -q 2>/dev/null || true

add_ms=$(time_it git -C "$work/repo" worktree add -q --detach "$work/wt/plain" HEAD)
git -C "$work/repo" worktree remove --force "$work/wt/plain"
echo "git worktree add:          ${add_ms} ms"

mkdir -p "$work/starts"
{
  printf '[run]\nmax_parallel = 5\n\n[workspace]\npool = 5\n\n[agent.sh]\nadapter = "exec"\ncommand = ["bash", "-ec"]\n\n[defaults]\nagent = "sh"\n'
  for i in 1 2 3 4 5; do
    printf '\n[[task]]\nid = "t%s"\nprompt = "date +%%s%%N > %s/t%s; echo %s > new%s.txt"\n' "$i" "$work/starts" "$i" "$i" "$i"
  done
} > "$work/plan.toml"

# One run: ms from `baton run` to the first and the fifth agent start.
starts() {
  rm -f "$work/starts"/*
  local t0
  t0=$(date +%s%N)
  "$BATON" -C "$work/repo" run "$work/plan.toml" >/dev/null 2>&1
  sort -n "$work/starts"/* | awk -v t0="$t0" 'NR == 1 {first = ($1 - t0) / 1e6} {last = ($1 - t0) / 1e6} END {printf "first %4.0f ms, fifth %4.0f ms", first, last}'
}

echo "baton, pool cold:          $(starts)"
for round in 1 2 3; do
  echo "baton, pool warm (run $round): $(starts)"
done

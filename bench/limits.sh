#!/usr/bin/env bash
# Benchmark: rate limits without a cascade. N tasks (default 20) over two
# vendors, real Claude Code and Codex against the scripted model server
# (crates/baton-testutils, `model-server`), J at a time. Run twice: once
# with no limits, once with the Anthropic API answering 429 (retry-after 4)
# for 10 s mid-run. Every fourth task runs on `claude` (waits limits out),
# every fourth on `claude-tight` (max_wait 2s, falls back to codex), the
# rest on `codex`. Prints each run's wall time, whether every task
# succeeded, and the waits and fallbacks the report shows.
#
#   bench/limits.sh                 # N=20, J=4
#   N=8 J=2 bench/limits.sh
#   BATON=/path/to/baton MODEL_SERVER=/path/to/model-server bench/limits.sh
#
# Needs the agent CLIs: scripts/install-agents.sh.
set -euo pipefail
N=${N:-20}
J=${J:-4}
. "$(dirname "$0")/lib.sh"
if [ -z "${MODEL_SERVER:-}" ]; then
  cargo build --release -q -p baton-testutils --bin model-server --manifest-path "$here/Cargo.toml"
  MODEL_SERVER="$here/target/release/model-server"
fi

# Starts the server with the given outages; sets $url and $server_pid.
start_server() {
  rm -f "$work/url"
  "$MODEL_SERVER" serve --url-file "$work/url" --tasks "$N" "$@" &
  server_pid=$!
  for _ in $(seq 1 100); do [ -s "$work/url" ] && break; sleep 0.05; done
  url=$(cat "$work/url")
}

plan() {
  printf '[run]\nmax_parallel = %s\n\n' "$J"
  # Claude Code retries twice by itself (waiting as asked), then gives up
  # and baton waits; the wait it was asked for goes with it.
  "$MODEL_SERVER" profile claude --url "$url" --home "$work/home-claude"
  printf '\n'
  "$MODEL_SERVER" profile claude --name claude-tight --url "$url" --home "$work/home-claude"
  printf 'max_wait = "2s"\nfallback = ["codex"]\n\n'
  "$MODEL_SERVER" profile codex --url "$url" --home "$work/home-codex"
  for i in $(seq 1 "$N"); do
    case $((i % 4)) in
      1) agent=claude ;;
      2) agent=claude-tight ;;
      *) agent=codex ;;
    esac
    printf '\n[[task]]\nid = "t%s"\nagent = "%s"\nprompt = "Write t%s.txt. [[script:t%s]]"\ntimeout = "5m"\non_failure = "continue"\n' \
      "$i" "$agent" "$i" "$i"
  done
}

# One run: prints "<wall ms> <report json path>".
one_run() {
  new_repo
  plan > "$work/plan.toml"
  local start end
  start=$(date +%s%N)
  "$BATON" -C "$work/repo" run --json "$work/plan.toml" > "$work/report-$1.json" 2>/dev/null || true
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}

summary() {
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
tasks = r["tasks"]
ok = sum(t["status"] == "succeeded" and t["merged"] for t in tasks)
waits = sum(t.get("rate_limit_waits", 0) for t in tasks)
waited = sum(t.get("rate_limit_wait_ms", 0) for t in tasks) / 1000
print(f"  tasks succeeded and merged: {ok}/{len(tasks)}")
print(f"  rate-limit waits: {waits} ({waited:.0f} s asked in all)")
falls = [(t["id"], f) for t in tasks for f in t.get("fallbacks", [])]
print(f"  fallbacks: {len(falls)}")
for tid, f in falls[:5]:
    print(f"    {tid}: {f['from']} -> {f['to']} ({f['reason'][:90]})")
PY
}

start_server
clean_ms=$(one_run clean)
kill "$server_pid" 2>/dev/null || true
start_server --outage "api=anthropic,kind=rate_limit,retry_after=4,after=$((N / 8 + 1)),lasting=10"
limited_ms=$(one_run limited)
kill "$server_pid" 2>/dev/null || true

echo "tasks: $N over claude and codex, $J at a time"
echo "no limits:                 ${clean_ms} ms"
summary "$work/report-clean.json"
echo "anthropic limited for 10 s: ${limited_ms} ms"
summary "$work/report-limited.json"
awk -v l="$limited_ms" -v c="$clean_ms" 'BEGIN { printf "the outage cost:           %.1f s (%.2fx)\n", (l - c) / 1000, l / c }'

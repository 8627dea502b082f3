#!/usr/bin/env bash
# Benchmark: what a container costs per attempt, and what a service costs
# per task. Runs N trivial tasks one at a time through `baton run`: without
# a sandbox, with sandbox = "container" (and network = "off"), and without
# a sandbox but with one [[workspace.service]] per task; prints the wall
# time of each (median of ROUNDS) and the difference per task. The image is
# made ready before the timing (a cold build or pull is not counted).
# Goal: a container start under 1 s warm. Needs Podman (or Docker:
# RUNTIME=docker) and an image with bash and perl (IMAGE; default the
# tests' baton.local/debian:bookworm, made by scripts/container-images.sh).
#
#   bench/container.sh             # N=10, ROUNDS=3
#   IMAGE=debian:bookworm RUNTIME=docker bench/container.sh
set -euo pipefail
N=${N:-10}
ROUNDS=${ROUNDS:-3}
IMAGE=${IMAGE:-baton.local/debian:bookworm}
RUNTIME=${RUNTIME:-podman}
. "$(dirname "$0")/lib.sh"
command -v "$RUNTIME" >/dev/null || { echo "$RUNTIME is not installed (apt install podman)" >&2; exit 1; }
"$RUNTIME" image inspect "$IMAGE" >/dev/null 2>&1 || { echo "no image $IMAGE (scripts/container-images.sh, or IMAGE=...)" >&2; exit 1; }

# A listener that answers each connection, from the same image.
service='[[workspace.service]]
name = "db"
image = "'"$IMAGE"'"
port = 7000
command = ["perl", "-MIO::Socket::INET", "-e", "$s = IO::Socket::INET->new(LocalPort => 7000, Listen => 5, ReuseAddr => 1) or die; while ($c = $s->accept) { print $c qq(up\n); close $c }"]
'

# The trivial plan, its profile given `extra` lines and the plan `head`.
run_with() {
  local extra=$1 head=$2 integration
  new_repo
  { printf '[container]\nimage = "%s"\nruntime = "%s"\n\n%s\n' "$IMAGE" "$RUNTIME" "$head"
    trivial_plan "$N" 1 | awk -v extra="$extra" '{print} /^command = / && extra != "" {print extra}'
  } > "$work/plan.toml"
  "$BATON" -C "$work/repo" run "$work/plan.toml" 2>/dev/null
  integration=$(git -C "$work/repo" for-each-ref --format='%(refname)' 'refs/heads/baton/*/integration')
  test "$(git -C "$work/repo" ls-tree --name-only "$integration" | wc -l)" -eq "$N"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { for _ in $(seq 1 "$ROUNDS"); do time_it run_with "$@"; done | median; }
off_ms=$(timed "" "")
box_ms=$(timed 'sandbox = "container"' "")
net_ms=$(timed 'sandbox = "container"
network = "off"' "")
svc_ms=$(timed "" "$service")
echo "tasks: $N, one at a time, rounds: $ROUNDS (median wall time); $RUNTIME, image $IMAGE"
echo "no sandbox:                  ${off_ms} ms"
echo "container:                   ${box_ms} ms"
echo "container, network off:      ${net_ms} ms"
echo "no sandbox, one service:     ${svc_ms} ms"
awk -v a="$box_ms" -v b="$net_ms" -v s="$svc_ms" -v o="$off_ms" -v n="$N" 'BEGIN {
  printf "per attempt, container:     %.0f ms (network off: %.0f ms; goal < 1000 ms)\n", (a - o) / n, (b - o) / n
  printf "per task, a service:        %.0f ms (started, answered, removed)\n", (s - o) / n }'

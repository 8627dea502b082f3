#!/usr/bin/env bash
# Benchmark: what running on Kubernetes costs. Runs N trivial tasks (each
# writes one file) J at a time, once local and once as Jobs on a cluster,
# and prints both wall times and the cost of a Job per task.
#
#   KUBECONFIG=... bench/kube.sh     # N=50, J=8; the cluster's kubeconfig
#   sudo scripts/k8s-cluster.sh up   # a one-node cluster (prints its kubeconfig)
#   IMAGE=... MOUNTS='"/opt/baton"' bench/kube.sh
#
# The image must hold git and baton (the one-node cluster's
# baton.local/debian:bookworm holds git; baton's own directory is mounted
# into the pods, which share the host's network).
set -euo pipefail
N=${N:-50}
J=${J:-8}
. "$(dirname "$0")/lib.sh"
: "${KUBECONFIG:?set KUBECONFIG to the kubeconfig of the cluster, which scripts/k8s-cluster.sh up prints}"
IMAGE=${IMAGE:-baton.local/debian:bookworm}
default_mounts="\"$(dirname "$BATON")\""
MOUNTS=${MOUNTS:-$default_mounts}

cluster_plan() {
  printf '[executor]\nkind = "kubernetes"\nimage = "%s"\nbaton = "%s"\nhost_network = true\nmounts = [%s]\nkubeconfig = "%s"\ngrace = "10s"\n\n' \
    "$IMAGE" "$BATON" "$MOUNTS" "$KUBECONFIG"
  trivial_plan "$N" "$J"
}

on_cluster() {
  local integration
  new_repo
  cluster_plan > "$work/plan.toml"
  "$BATON" -C "$work/repo" run "$work/plan.toml" 2>/dev/null
  integration=$(git -C "$work/repo" for-each-ref --format='%(refname)' 'refs/heads/baton/*/integration')
  test "$(git -C "$work/repo" ls-tree --name-only "$integration" | wc -l)" -eq "$N"
}

local_ms=$(time_it with_baton "$N" "$J")
cluster_ms=$(time_it on_cluster)
echo "tasks: $N, $J at a time"
echo "local:      ${local_ms} ms"
echo "kubernetes: ${cluster_ms} ms"
awk -v c="$cluster_ms" -v l="$local_ms" -v n="$N" -v j="$J" 'BEGIN {
  printf "a Job costs %.0f ms more per task (%.0f ms of wall time per task at %d at a time)\n", (c - l) * j / n, (c - l) / n, j }'

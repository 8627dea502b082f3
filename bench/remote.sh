#!/usr/bin/env bash
# Benchmark: what running elsewhere costs. Runs N trivial tasks (each
# writes one file) J at a time: locally, on SSH hosts, and (with KUBECONFIG)
# as cold Jobs and in warm pods (`warm = J`) on a cluster, and prints the
# wall times side by side with the cost per task of each against local.
#
#   bench/remote.sh                     # N=50, J=8; two sshd on loopback
#   HOSTS="mini build1" bench/remote.sh # your own hosts (ssh_config aliases)
#   KUBECONFIG=... bench/remote.sh      # and cold Jobs and warm pods there
#
# Without HOSTS it starts two OpenSSH servers (Debian's /usr/sbin/sshd) on
# 127.0.0.1 with keys of its own, standing for two machines, J/2 slots each.
#
# Then CHAIN tasks (10) one after another (each needs the one before): the
# cost of one attempt alone, and (with KUBECONFIG) where a warm pod is
# waiting when each attempt starts, which is what warm pods are for; the
# first table's tasks all start at once, with the pods.
set -euo pipefail
N=${N:-50}
J=${J:-8}
. "$(dirname "$0")/lib.sh"

ssh_config=""
sshd_pids=()
start_hosts() {
  local dir="$work/ssh" i port
  mkdir -p "$dir"
  ssh-keygen -q -t ed25519 -N "" -f "$dir/client_key"
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  [ "$(id -u)" -ne 0 ] || mkdir -p /run/sshd
  : > "$dir/known_hosts"
  : > "$dir/ssh_config"
  HOSTS=""
  for i in 1 2; do
    ssh-keygen -q -t ed25519 -N "" -f "$dir/h${i}_key"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    printf 'ListenAddress 127.0.0.1:%s\nHostKey %s\nAuthorizedKeysFile %s\nPidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nAllowTcpForwarding yes\nMaxSessions 64\nMaxStartups 64\nLogLevel ERROR\n' \
      "$port" "$dir/h${i}_key" "$dir/authorized_keys" > "$dir/h${i}_sshd_config"
    /usr/sbin/sshd -D -e -f "$dir/h${i}_sshd_config" 2>>"$dir/sshd.log" &
    sshd_pids+=($!)
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/h${i}_key.pub")" >> "$dir/known_hosts"
    printf 'Host h%s\n  HostName 127.0.0.1\n  Port %s\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n' \
      "$i" "$port" "$(id -un)" "$dir/client_key" "$dir/known_hosts" >> "$dir/ssh_config"
    HOSTS="$HOSTS h$i"
  done
  ssh_config="$dir/ssh_config"
  sleep 0.5
}

if [ -z "${HOSTS:-}" ]; then
  start_hosts
  trap 'kill "${sshd_pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
fi

ssh_plan() {
  local slots=$(( (J + 1) / 2 )) list="" h
  for h in $HOSTS; do
    list="$list{ host = \"$h\", slots = $slots, dir = \"$work/hosts/$h\" }, "
  done
  printf '[executor]\nkind = "ssh"\nhosts = [%s]\n' "$list"
  [ -z "$ssh_config" ] || printf 'ssh_config = "%s"\n' "$ssh_config"
  printf '\n'
  trivial_plan "$N" "$J"
}

cluster_plan() {
  printf '[executor]\nkind = "kubernetes"\nimage = "%s"\nbaton = "%s"\nhost_network = true\nmounts = ["%s"]\nkubeconfig = "%s"\ngrace = "10s"\nwarm = %s\n\n' \
    "${IMAGE:-baton.local/debian:bookworm}" "$BATON" "$(dirname "$BATON")" "$KUBECONFIG" "${WARM:-0}"
  trivial_plan "$N" "$J"
}

warm_plan() { WARM=$J cluster_plan; }

# CHAIN trivial tasks, each after the one before.
chain_tasks() {
  printf '[agent.sh]\nadapter = "exec"\ncommand = ["bash", "-ec"]\n\n[defaults]\nagent = "sh"\n'
  for i in $(seq 1 "$CHAIN"); do
    printf '\n[[task]]\nid = "t%s"\nprompt = "echo %s > f%s.txt"\n' "$i" "$i" "$i"
    [ "$i" -eq 1 ] || printf 'needs = ["t%s"]\n' "$((i - 1))"
  done
}

chain_on() {
  printf '[executor]\nkind = "%s"\nimage = "%s"\nbaton = "%s"\nhost_network = true\nmounts = ["%s"]\nkubeconfig = "%s"\ngrace = "10s"\nwarm = %s\n\n' \
    "$1" "${IMAGE:-baton.local/debian:bookworm}" "$BATON" "$(dirname "$BATON")" "$KUBECONFIG" "$2"
  chain_tasks
}
chain_local() { chain_tasks; }
chain_ssh() { ssh_plan | sed '/^\[run\]/,$d'; chain_tasks; }
chain_cold() { chain_on kubernetes 0; }
chain_warm() { chain_on kubernetes "${CHAIN_WARM:-4}"; }
chain_run() { N=$CHAIN remote_run "$1"; }

# Runs the plan `$1` prints; checks every file reached the integration branch.
remote_run() {
  local integration
  new_repo
  "$1" > "$work/plan.toml"
  "$BATON" -C "$work/repo" run "$work/plan.toml" 2>/dev/null
  integration=$(git -C "$work/repo" for-each-ref --format='%(refname)' 'refs/heads/baton/*/integration')
  test "$(git -C "$work/repo" ls-tree --name-only "$integration" | wc -l)" -eq "$N"
}

# The first run on a host copies baton there: it is timed apart.
first_ms=$(N=1 time_it remote_run ssh_plan)
local_ms=$(time_it with_baton "$N" "$J")
ssh_ms=$(time_it remote_run ssh_plan)
echo "tasks: $N, $J at a time; hosts:$HOSTS"
echo "local:        ${local_ms} ms"
echo "ssh:          ${ssh_ms} ms   (a first run of 1 task, copying baton: ${first_ms} ms)"
if [ -n "${KUBECONFIG:-}" ]; then
  cluster_ms=$(time_it remote_run cluster_plan)
  echo "kubernetes:   ${cluster_ms} ms   (cold Jobs)"
  warm_ms=$(time_it remote_run warm_plan)
  echo "warm pods:    ${warm_ms} ms   (warm = $J)"
fi
per_task() { awk -v c="$1" -v l="$local_ms" -v n="$N" 'BEGIN { printf "%.1f ms per task (%.1fx local)", c / n, c / l }'; }
echo "local:      $(per_task "$local_ms")"
echo "ssh:        $(per_task "$ssh_ms")"
if [ -n "${KUBECONFIG:-}" ]; then
  echo "kubernetes: $(per_task "$cluster_ms")"
  echo "warm pods:  $(per_task "$warm_ms")"
fi

CHAIN=${CHAIN:-10}
chain_local_ms=$(time_it chain_run chain_local)
chain_ssh_ms=$(time_it chain_run chain_ssh)
if [ -n "${KUBECONFIG:-}" ]; then
  chain_cold_ms=$(time_it chain_run chain_cold)
  chain_warm_ms=$(time_it chain_run chain_warm)
fi
echo
echo "$CHAIN tasks one after another:"
N=$CHAIN
local_ms=$chain_local_ms
echo "local:      ${chain_local_ms} ms, $(per_task "$chain_local_ms")"
echo "ssh:        ${chain_ssh_ms} ms, $(per_task "$chain_ssh_ms")"
if [ -n "${KUBECONFIG:-}" ]; then
  echo "kubernetes: ${chain_cold_ms} ms, $(per_task "$chain_cold_ms")   (cold Jobs)"
  echo "warm pods:  ${chain_warm_ms} ms, $(per_task "$chain_warm_ms")   (warm = ${CHAIN_WARM:-4})"
fi

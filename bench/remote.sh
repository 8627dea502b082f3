#!/usr/bin/env bash
# Benchmark: what running elsewhere costs. Runs N trivial tasks (each
# writes one file) J at a time: locally, on SSH hosts, and (with KUBECONFIG)
# as cold Jobs, in warm pods (`warm = J`) and in warm pods that take one
# attempt after another (`reuse = true`) on a cluster, and prints side by
# side each run's wall time, its cost per task, and the median task's own
# time (from its start to its end, in the run's report: the pool's start
# and waiting for a slot left out), each against local's.
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
# Warm pods that take the run's attempts one after another.
reused_plan() { WARM=$J cluster_plan | sed 's/^warm = .*/&\nreuse = true/'; }

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
chain_reused() { chain_on kubernetes 1 | sed 's/^warm = .*/&\nreuse = true/'; }

# Runs the plan `$1` prints; checks every file reached the integration
# branch. The run's report is left in $work/report.json.
remote_run() {
  local integration
  new_repo
  "$1" > "$work/plan.toml"
  "$BATON" -C "$work/repo" run --json "$work/plan.toml" > "$work/report.json" 2>/dev/null
  integration=$(git -C "$work/repo" for-each-ref --format='%(refname)' 'refs/heads/baton/*/integration')
  test "$(git -C "$work/repo" ls-tree --name-only "$integration" | wc -l)" -eq "$N"
}

local_plan() { trivial_plan "$N" "$J"; }

# The median task's own time in the last run (its duration_ms in the
# report): what one task costs once it starts, without the pool's start
# or waiting for a slot.
task_ms() {
  python3 -c 'import json, statistics, sys
print(int(statistics.median(t["duration_ms"] for t in json.load(open(sys.argv[1]))["tasks"])))' "$work/report.json"
}

# The wall time of the plan `$1` prints, and its median task's own time.
measure() {
  local wall
  wall=$(time_it remote_run "$1")
  echo "$wall $(task_ms)"
}

# A line of the table: the wall time and the cost per task, then the
# median task's own time, each against local's.
row() {
  awk -v name="$1" -v w="$2" -v t="$3" -v lw="$local_ms" -v lt="$local_task" -v n="$N" 'BEGIN {
    printf "%-26s %7d ms %8.1f ms/task %6.1fx   %6d ms %6.1fx\n", name, w, w / n, w / lw, t, t / lt }'
}
header() {
  printf '%-26s %10s %16s %7s   %9s %7s\n' "$1" "wall" "per task" "local" "one task" "local"
}

# One table, its rows measured and printed as they come: local, SSH, and
# with KUBECONFIG cold Jobs, warm pods and reused warm pods (`$4`...: the
# functions that print their plans; `$2`, `$3`: the warm rows' names).
table() {
  local names=("local" "ssh" "kubernetes, cold Jobs" "$2" "$3") plans=("${@:4}") i ms task
  header "$1"
  for i in "${!plans[@]}"; do
    [ "$i" -lt 2 ] || [ -n "${KUBECONFIG:-}" ] || break
    read -r ms task < <(measure "${plans[$i]}")
    [ "$i" -gt 0 ] || { local_ms=$ms; local_task=$task; }
    row "${names[$i]}" "$ms" "$task"
  done
}

# The first run on a host copies baton there: it is timed apart.
first_ms=$(N=1 time_it remote_run ssh_plan)
echo "hosts:$HOSTS (a first run of 1 task, copying baton: ${first_ms} ms)"
table "$N tasks, $J at a time" "warm pods (warm = $J)" "reused warm pods" \
  local_plan ssh_plan cluster_plan warm_plan reused_plan

CHAIN=${CHAIN:-10}
N=$CHAIN
echo
table "$CHAIN tasks one after another" "warm pods (warm = ${CHAIN_WARM:-4})" "reused warm pods (warm = 1)" \
  chain_local chain_ssh chain_cold chain_warm chain_reused

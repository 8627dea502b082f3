#!/usr/bin/env bash
# A one-node Kubernetes on loopback, for baton's Kubernetes executor tests
# and for trying the executor on one machine: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd with runc, and a
# kubelet, every one from Debian's packages or built from Debian's sources
# (scripts/k8s-build.sh). Pods use the host's network (`hostNetwork: true`)
# and so reach services on 127.0.0.1; there is no pod network and no
# registry: images are imported into containerd.
#
#   scripts/k8s-cluster.sh up     start it (or find it running); prints the
#                                 kubeconfig's path on standard output
#   scripts/k8s-cluster.sh down   stop it and remove what it ran on
#   scripts/k8s-cluster.sh image DIR NAME
#                                 import a root filesystem as image NAME
#
# Needs root (containerd, the kubelet). What the first `up` makes is cached
# under $BATON_K8S_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/baton/k8s):
# the binaries (about 11 minutes to build), certificates, and the image
# `baton.local/debian:bookworm` (debootstrap, git and ca-certificates; about
# 2 minutes). A later `up` takes about 20 seconds. The cluster's state lives
# in $BATON_K8S_RUN (default /tmp/baton-k8s) and goes with `down`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${BATON_K8S_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/baton/k8s}
run=${BATON_K8S_RUN:-/tmp/baton-k8s}
image=baton.local/debian:bookworm
pause_image=baton.local/pause:1
log() { echo "k8s-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root: containerd and the kubelet manage containers and cgroups"

need_packages() {
  local need=""
  command -v etcd >/dev/null 2>&1 || need="$need etcd-server"
  command -v containerd >/dev/null 2>&1 || need="$need containerd"
  command -v runc >/dev/null 2>&1 || need="$need runc"
  [ -x /usr/lib/cni/loopback ] || need="$need containernetworking-plugins"
  command -v debootstrap >/dev/null 2>&1 || need="$need debootstrap"
  command -v openssl >/dev/null 2>&1 || need="$need openssl"
  command -v iptables >/dev/null 2>&1 || need="$need iptables"
  command -v conntrack >/dev/null 2>&1 || need="$need conntrack"
  command -v gcc >/dev/null 2>&1 || need="$need gcc"
  if [ -n "$need" ]; then
    log "installing$need (Debian packages)"
    apt-get update -qq >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >&2
  fi
}

# A CA, one certificate for the API server and one client certificate that
# every component and baton use (the cluster allows everything: it is a
# test bed on loopback, not a place to test RBAC), and the service
# accounts' signing key.
certs() {
  local c="$dir/pki"
  [ -f "$c/admin.crt" ] && return 0
  log "making certificates in $c"
  mkdir -p "$c"
  (
    cd "$c"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=baton-k8s-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > san.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out apiserver.crt -days 3650 -extfile san.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
      -subj "/O=system:masters/CN=admin" 2>/dev/null
    # x509 v3 (an extension makes it so): rustls refuses v1 certificates.
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out admin.crt -days 3650 -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

kubeconfig() {
  local c="$dir/pki"
  cat > "$run/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: baton
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: $(base64 -w0 < "$c/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 < "$c/admin.crt")
    client-key-data: $(base64 -w0 < "$c/admin.key")
contexts:
- name: baton
  context: {cluster: baton, user: admin, namespace: default}
current-context: baton
EOF
}

# An image from a root filesystem, as a docker archive containerd imports:
# one layer, no registry.
import_rootfs() { # rootfs, name, then the entrypoint if any
  local rootfs=$1 name=$2 out
  shift 2
  out=$(mktemp -d)
  python3 "$here/k8s-image.py" "$rootfs" "$name" "$out/image.tar" "$@"
  containerd_ctr images import --no-unpack "$out/image.tar" >&2
  rm -rf "$out"
}

containerd_ctr() { ctr -a "$run/containerd.sock" -n k8s.io "$@"; }

images() {
  local rootfs
  rootfs=$(BATON_K8S_DIR=$dir "$here/debian-rootfs.sh")
  mkdir -p "$dir/images/pause"
  cp "$bin/pause" "$dir/images/pause/pause"
  containerd_ctr images ls -q | grep -qx "$pause_image" || import_rootfs "$dir/images/pause" "$pause_image" /pause
  containerd_ctr images ls -q | grep -qx "$image" || import_rootfs "$rootfs" "$image"
}

start() { # name, then the command
  local name=$1
  shift
  nohup "$@" > "$run/$name.log" 2>&1 &
  echo $! > "$run/$name.pid"
}

wait_for() { # what, seconds, then the test
  local what=$1 secs=$2
  shift 2
  for _ in $(seq $((secs * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  die "$what did not come up in ${secs}s; its log: $run/$what.log"
}


api_ready() {
  curl -sf --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
    https://127.0.0.1:6443/readyz
}

node_ready() {
  curl -sf --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
    https://127.0.0.1:6443/api/v1/nodes/localhost \
    | python3 -c 'import json,sys; n=json.load(sys.stdin); c={x["type"]:x["status"] for x in n["status"]["conditions"]}; sys.exit(0 if c.get("Ready")=="True" else 1)'
}

up() {
  if [ -f "$run/kubeconfig" ] && api_ready >/dev/null 2>&1 && node_ready; then
    # The kubelet removes unused images under disk pressure, ours among
    # them (no registry to pull them back from): they are imported again.
    bin=$("$here/k8s-build.sh")
    images
    echo "$run/kubeconfig"
    return 0
  fi
  # Something of a cluster runs here but does not answer us (another cache's
  # certificates, a half start): it goes first, it holds the ports.
  if pgrep -f -- "$run/" >/dev/null 2>&1; then
    log "a cluster in $run runs but is not ready for these certificates; stopping it first"
    down
  fi
  need_packages
  bin=$("$here/k8s-build.sh")
  certs
  mkdir -p "$run"/{etcd,cni,containerd,kubelet}
  kubeconfig
  local c="$dir/pki"

  cat > "$run/cni/10-loopback.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "loopback", "plugins": [{"type": "loopback"}]}
EOF
  cat > "$run/containerd.toml" <<EOF
version = 2
root = "$run/containerd/root"
state = "$run/containerd/state"
[grpc]
  address = "$run/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$run/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
EOF
  log "starting etcd, containerd"
  start etcd etcd --data-dir "$run/etcd/data" --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380
  start containerd containerd --config "$run/containerd.toml"
  wait_for containerd 30 containerd_ctr version
  images

  log "starting the control plane"
  start kube-apiserver "$bin/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 \
    --tls-cert-file="$c/apiserver.crt" --tls-private-key-file="$c/apiserver.key" \
    --client-ca-file="$c/ca.crt" --authorization-mode=AlwaysAllow \
    --service-cluster-ip-range=10.96.0.0/24 \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$c/sa.pub" --service-account-signing-key-file="$c/sa.key" \
    --cert-dir="$run/apiserver" --disable-admission-plugins=ServiceAccount --feature-gates=TTLAfterFinished=true \
    --kubelet-preferred-address-types=Hostname,InternalIP
  wait_for kube-apiserver 90 api_ready
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$run/kubeconfig" \
    --service-account-private-key-file="$c/sa.key" --root-ca-file="$c/ca.crt" \
    --leader-elect=false --feature-gates=TTLAfterFinished=true
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$run/kubeconfig" --leader-elect=false

  cat > "$run/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
EOF
  log "starting the kubelet"
  start kubelet "$bin/kubelet" --kubeconfig="$run/kubeconfig" --config="$run/kubelet.yaml" \
    --container-runtime=remote --container-runtime-endpoint="unix://$run/containerd.sock" \
    --root-dir="$run/kubelet" --cert-dir="$run/kubelet/pki" --hostname-override=localhost
  wait_for kubelet 120 node_ready
  log "ready: KUBECONFIG=$run/kubeconfig"
  echo "$run/kubeconfig"
}

down() {
  for name in kubelet kube-scheduler kube-controller-manager kube-apiserver; do
    [ -f "$run/$name.pid" ] && kill "$(cat "$run/$name.pid")" 2>/dev/null || true
  done
  # The pods' containers, then containerd and etcd.
  if [ -S "$run/containerd.sock" ]; then
    for t in $(containerd_ctr tasks ls -q 2>/dev/null); do containerd_ctr tasks kill -s SIGKILL "$t" 2>/dev/null || true; done
  fi
  for name in containerd etcd; do
    [ -f "$run/$name.pid" ] && kill "$(cat "$run/$name.pid")" 2>/dev/null || true
  done
  sleep 1
  # What a lost pid file would leave: every part names the run directory.
  pkill -9 -f -- "$run/" 2>/dev/null || true
  sleep 0.5
  # What the kubelet and containerd mounted under the run directory.
  grep -o " $run[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$run"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  image)
    [ $# -eq 3 ] || die "usage: $0 image ROOTFS NAME"
    import_rootfs "$2" "$3"
    ;;
  *) die "usage: $0 up|down|image ROOTFS NAME" ;;
esac

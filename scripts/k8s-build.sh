#!/usr/bin/env bash
# Builds the binaries of a one-node Kubernetes from Debian's sources, for
# baton's Kubernetes executor tests: kube-apiserver, kube-controller-manager,
# kube-scheduler and kubelet from Debian's `kubernetes` source package (1.20,
# in bookworm's sources), with Debian's Go, and the pods' static `pause`
# from the same source. Cached: the binaries land in $BATON_K8S_DIR/bin (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/baton/k8s/bin) and a second call only
# prints that directory. The first build takes about 11 minutes on 2 cores
# (Go 1.19 of bookworm builds Kubernetes v1.20.2); the binaries take 360 MB.
# scripts/k8s-cluster.sh starts a cluster of them.
set -euo pipefail
dir=${BATON_K8S_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/baton/k8s}
bin="$dir/bin"
want="kube-apiserver kube-controller-manager kube-scheduler kubelet pause"
have_all() { for b in $want; do [ -x "$bin/$b" ] || return 1; done; }
if have_all; then echo "$bin"; exit 0; fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=""
command -v go >/dev/null 2>&1 || need="$need golang-go"
command -v dpkg-source >/dev/null 2>&1 || need="$need dpkg-dev"
command -v make >/dev/null 2>&1 || need="$need make"
command -v rsync >/dev/null 2>&1 || need="$need rsync"
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need="$need golang-github-modern-go-reflect2-dev"
if [ -n "$need" ]; then
  echo "installing$need (Debian packages)" >&2
  $sudo apt-get update -qq >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >&2
fi

# The source package, through an apt of our own that knows bookworm's sources.
apt_dir="$dir/apt"
mkdir -p "$apt_dir/lists/partial" "$dir/src"
echo "deb-src http://deb.debian.org/debian bookworm main" > "$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
if [ ! -d "$dir/src/kubernetes" ]; then
  echo "fetching Debian's kubernetes source package" >&2
  apt-get "${apt_opts[@]}" update -qq >&2
  (cd "$dir/src" && apt-get "${apt_opts[@]}" source -qq --download-only kubernetes >&2)
  orig=$(ls "$dir"/src/kubernetes_*.orig.tar.gz | head -1)
  mkdir -p "$dir/src/kubernetes"
  tar -xzf "$orig" -C "$dir/src/kubernetes" --strip-components=1
fi

echo "building$(printf ' %s' $want) (several minutes)" >&2
cd "$dir/src/kubernetes"
# Kubernetes 1.20 vendors reflect2 1.0.1, whose map iteration faults under
# Go 1.18 and later (the API server dies at its first watch of a map): the
# 1.0.2 Debian packages is a drop-in fix.
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
export GO111MODULE=off GOFLAGS= GOPATH="$dir/gopath" GOCACHE="$dir/gocache"
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$dir/src/kubernetes" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet" >&2
mkdir -p "$bin"
# The process every pod's sandbox holds: static, so its image is one file.
gcc -Os -static -o "$bin/pause" build/pause/linux/pause.c
for b in ${want% pause}; do cp "_output/local/bin/linux/amd64/$b" "$bin/" 2>/dev/null || cp "_output/bin/$b" "$bin/"; done
have_all
# Only the binaries stay (the sources and Go's caches take about 3 GB).
rm -rf "$dir/src" "$dir/gopath" "$dir/gocache" "$dir/apt"
echo "$bin"

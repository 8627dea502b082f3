#!/usr/bin/env bash
# A minimal Debian bookworm root filesystem (debootstrap: git and
# ca-certificates), the base of the test images of the Kubernetes and the
# container tests, made once and cached: prints its directory. Needs root
# the first time (about 2 minutes).
set -euo pipefail
dir=${BATON_K8S_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/baton/k8s}
rootfs=$dir/images/debian
if [ ! -f "$rootfs.done" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "debian-rootfs: making $rootfs needs root (debootstrap)" >&2; exit 1; }
  if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
  fi
  echo "debian-rootfs: making $rootfs with debootstrap (git, ca-certificates)" >&2
  rm -rf "$rootfs"
  mkdir -p "$dir/images"
  debootstrap --variant=minbase --include=git,ca-certificates bookworm \
    "$rootfs" http://deb.debian.org/debian >&2
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  touch "$rootfs.done"
fi
echo "$rootfs"

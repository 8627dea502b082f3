#!/usr/bin/env bash
# The base image the container tests start from, made in Podman without a
# registry: `baton.local/debian:bookworm`, imported from a minimal Debian
# root filesystem (debootstrap: git and ca-certificates). The root
# filesystem is scripts/debian-rootfs.sh's, shared with the Kubernetes
# tests' image (made as root the first time).
# Prints the image's name on standard output. About 5 s once the root
# filesystem is cached; nothing when the image is already there.
set -euo pipefail
image=baton.local/debian:bookworm
log() { echo "container-images: $*" >&2; }

command -v podman >/dev/null 2>&1 || { log "podman is not installed (apt install podman)"; exit 1; }
if podman image exists "$image"; then
  echo "$image"
  exit 0
fi
rootfs=$("$(dirname "$0")/debian-rootfs.sh")
log "importing $rootfs as $image"
tar -C "$rootfs" -c . | podman import - "$image" >/dev/null
echo "$image"

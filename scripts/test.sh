#!/usr/bin/env bash
# The whole test suite, as CI runs it: format check, clippy, every Rust test
# (unit; integration with the real git CLI and the fake agent; end to end
# with the real agent CLIs against a scripted model server; the API in
# process), then the dashboard's end-to-end tests in headless Chromium.
# It installs what those need: tmux for the terminal dashboard's tests,
# bubblewrap for the sandbox's, Podman and a base image imported into it
# for the container sandbox's and the services' (scripts/container-images.sh),
# OpenSSH's server for the SSH executor's hosts,
# the agent CLIs at pinned versions into a
# cache outside the clone (scripts/install-agents.sh), Debian's chromium and
# playwright-core (scripts/install-browser.sh), and a one-node Kubernetes
# for the Kubernetes executor's tests (scripts/k8s-cluster.sh: built from
# Debian's sources the first time, about 13 minutes, then cached). A missing
# CLI, browser or cluster fails the suite here; it is not skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi
for tool in git node npm python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "the tests need $tool" >&2; exit 1; }
done
# `baton watch` is tested in a real terminal (tmux), the sandbox with real
# bubblewrap, containers with real Podman, SSH hosts with real OpenSSH:
# Debian packages.
missing=""
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
command -v podman >/dev/null 2>&1 || missing="$missing podman"
# The SSH executor's hosts are real OpenSSH servers on loopback.
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
command -v ssh >/dev/null 2>&1 || missing="$missing openssh-client"
# As root, each has a network namespace of its own (iproute2's `ip`).
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
if [ -n "$missing" ]; then
  echo "installing$missing (Debian packages)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >&2
fi

export BATON_REQUIRE_SSH=1

agents_bin=$(scripts/install-agents.sh)
export BATON_REQUIRE_AGENTS=1
export PATH="$agents_bin:$PATH"

# The cluster needs root (containerd, the kubelet); elsewhere its tests say
# "skipped".
if [ "$(id -u)" -eq 0 ]; then
  BATON_TEST_KUBECONFIG=$(scripts/k8s-cluster.sh up)
  export BATON_TEST_KUBECONFIG BATON_REQUIRE_K8S=1
  # The container tests' base image, from the same Debian root filesystem.
  scripts/container-images.sh >/dev/null
  export BATON_REQUIRE_CONTAINERS=1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
# Builds every binary the tests drive: baton, the fake agent.
cargo build --workspace --all-targets -q
cargo nextest run --workspace --no-fail-fast "$@"

if [ -f tests/e2e/package.json ]; then
  scripts/install-browser.sh
  (cd tests/e2e && node --test)
fi

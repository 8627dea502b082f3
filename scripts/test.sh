#!/usr/bin/env bash
# The whole test suite, as CI runs it: format check, clippy, then every test
# (unit, integration with the real git CLI and the fake agent) with nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi
if ! command -v git >/dev/null 2>&1; then
  echo "baton's tests need the git CLI (2.38 or newer)" >&2
  exit 1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
# Builds every binary the tests drive, the fake agent included.
cargo build --workspace --all-targets -q
cargo nextest run --workspace --no-fail-fast "$@"

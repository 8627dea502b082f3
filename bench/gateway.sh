#!/usr/bin/env bash
# Benchmark: what baton's model gateway costs. Two parts:
#   1. latency, without an interpreter's noise: the gateway as baton runs
#      it, between a client and an upstream written in Rust (plain threads),
#      for a stream paced like a model's (2 ms apart) and one written at
#      once; the added time to the first byte and to the end, per pair of
#      requests and as two distributions (the goals: under 1 ms to the first
#      byte, under 2 ms p99 to the end);
#   2. end to end (bench/gateway.py): agents run by `baton run` asking
#      through the gateway and straight, and baton's peak memory with 50
#      agents streaming through it against the same run without it (the
#      goal: at most 10 MB more).
#
#   bench/gateway.sh
#   REQUESTS=1000 bench/gateway.sh
#   BATON=/path/to/baton bench/gateway.sh   # part 2 with an already built binary
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q -p baton-gateway --example latency --manifest-path "$here/Cargo.toml"
latency="$here/target/release/examples/latency"
"$latency"
DELTA_MS=0 "$latency"
python3 "$here/bench/gateway.py"

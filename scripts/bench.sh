#!/usr/bin/env bash
# Runs the benchmarks: mapguard's maps against their peers (throughput, latency, cost per kind
# of operation, instructions per get, an HTTP service under wrk) and mapwatch's overhead against
# bpftrace and -race, all in one run, printed as ratios. Quick by default (a few minutes);
# --full runs the full matrix.
# Other flags go to the bench binary (`target/release/bench --help`), e.g. --publish BENCHMARKS.md.
# Needs root for the eBPF rows (without it they print "n/a: needs root").
# Usage (as root): scripts/bench.sh [--full] [BENCH FLAGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
cargo build --release --quiet -p bench -p mapwatch
exec target/release/bench "$@"

#!/usr/bin/env bash
# Sets up everything and runs every test: formatting, clippy, the workspace's unit and
# integration tests (real eBPF on the real kernel, real Go binaries from Go 1.21 to 1.27),
# and the library's loom models, Miri and ThreadSanitizer runs. Needs root (the eBPF tests
# load programs).
#
# Last, every fuzz target for 20 s (scripts/fuzz.sh: the parsers of untrusted input): about 9
# minutes on a clean clone, 6 of them building the targets; 1 more the first time, to install
# cargo-fuzz.
#
# --soak: the long soaks (1000 attach/detach cycles against a busy service, 1000 processes
# through the daemon) instead of the short ones every run makes.
# --fuzz SECONDS: fuzz each target that long instead.
# Usage: scripts/test.sh [--soak] [--fuzz SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds=20
while [ $# -gt 0 ]; do
    case $1 in
        --soak) export MAPWATCH_SOAK_CYCLES=1000 ;;
        --fuzz)
            fuzz_seconds=${2:?--fuzz needs a number of seconds}
            shift
            ;;
        *) echo "usage: $0 [--soak] [--fuzz SECONDS]" >&2; exit 2 ;;
    esac
    shift
done

if [ "$(id -u)" -ne 0 ]; then
    echo "test: the eBPF integration tests need root: run $0 as root" >&2
    exit 1
fi

step() { printf '\n== %s\n' "$*" >&2; }

step "setup"
scripts/setup.sh --tests

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test (workspace)"
# The conflict tests need two goroutines truly in parallel: don't crowd the 2 cores.
cargo test --workspace -- --test-threads=1

if [ -x scripts/test-mapguard.sh ]; then
    step "mapguard: features, loom models, Miri, ThreadSanitizer"
    scripts/test-mapguard.sh
fi

step "fuzz: every parser of untrusted input, ${fuzz_seconds} s a target"
scripts/fuzz.sh "$fuzz_seconds"

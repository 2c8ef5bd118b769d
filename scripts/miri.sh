#!/usr/bin/env bash
# Runs the mapguard library's unit tests and integration tests under Miri, the
# Rust interpreter that detects undefined behaviour: it checks the crate's
# `unsafe` code (ReadMostlyMap's entry pointers, recycled entries and epoch
# reclamation, which under Miri runs with real fences on both sides, Miri
# having no membarrier; its tables, which under Miri come from the allocator
# instead of memory mappings of their own; the wiping table allocator of
# feature `zeroize`) as the tests drive it, and
# the dependencies' unsafe code (hashbrown, arc-swap, parking_lot, crossbeam)
# under the crate's real access patterns, including data races between the
# tests' threads.
#
# Every test target of crates/mapguard is run, so a new test file is covered
# without editing this script. A test too slow for the interpreter either runs
# fewer iterations under `cfg(miri)` or is marked `#[cfg_attr(miri, ignore)]`
# with the reason. Doctests are left to the native run (examples, and each one
# is a separate program to build).
#
# Usage: scripts/miri.sh [extra cargo test args]
#        (about 4-5 minutes on 2 busy cores, 1-2 more cold: Miri's sysroot, 30 s,
#        and the dependencies)
# Env:   MIRIFLAGS (passed through; default: Miri's defaults, isolation on). Miri
#        warns once about an integer-to-pointer cast in parking_lot_core's word
#        lock: a warning about a dependency, not an error.
# If the nightly toolchain with Miri cannot be installed on this machine, says
# so in one line and exits 0; any failure of Miri itself fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'miri: %s\n' "$*" >&2; }

if ! scripts/nightly.sh miri rust-src; then
    echo "miri: SKIPPED: cannot install the nightly toolchain with miri and rust-src on this machine; the mapguard Miri checks did NOT run" >&2
    exit 0
fi

setup_log=$(mktemp)
trap 'rm -f "$setup_log"' EXIT
if ! cargo +nightly miri setup >"$setup_log" 2>&1; then
    cat "$setup_log" >&2
    log "building Miri's sysroot failed"
    exit 1
fi

log "mapguard unit and integration tests, all features"
cargo +nightly miri test -p mapguard --all-features --lib --tests "$@"
log "ok"

#!/usr/bin/env bash
# Runs the mapguard library's unit tests and its multi-threaded integration
# tests (stress, linearizability, single-flight loading, re-entry, and whatever
# test files are added to crates/mapguard/tests) under ThreadSanitizer, which
# reports the data races the tests' threads actually run into, in mapguard and
# in its dependencies. Left out: tests/model.rs (single-threaded model tests,
# nothing for a race detector to see, and slow under it), tests/loom.rs
# (empty without --cfg loom) and tests/read_mostly_allocations.rs
# (single-threaded counts of allocations and page faults, which the
# sanitizer's own shadow memory changes: 74 faults in one insert under TSan).
#
# The standard library is rebuilt with the sanitizer (-Zbuild-std, which needs
# nightly's rust-src): an uninstrumented std would hide its synchronisation from
# TSan and produce false reports. The build lives in its own target directory.
# Nothing is suppressed. (ReadMostlyMap's epoch reclamation leaves its
# hardware fence to membarrier, which TSan does not model; but every free it
# allows is ordered after the readers' last accesses by release/acquire
# atomics TSan does see, so it has nothing to report.)
#
# Usage: scripts/tsan.sh [extra cargo test args]
#        (about 4-5 minutes cold on 2 busy cores, most of it building std; 40 s warm)
# Env:   CARGO_TARGET_DIR (default: target; the build goes to $CARGO_TARGET_DIR/tsan).
# If the nightly toolchain with rust-src cannot be installed on this machine,
# says so in one line and exits 0; any race report fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'tsan: %s\n' "$*" >&2; }

if ! scripts/nightly.sh rust-src; then
    echo "tsan: SKIPPED: cannot install the nightly toolchain with rust-src on this machine; the mapguard ThreadSanitizer run did NOT happen" >&2
    exit 0
fi

target=${CARGO_TARGET_DIR:-target}
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="$target/tsan"
export RUSTFLAGS="-Zsanitizer=thread"
# Panics print no Rust backtrace: symbolizing one in the instrumented binary
# takes seconds, which trips the deadlock timeouts of the tests that panic on
# purpose (re-entry); TSan prints its own stacks for what it reports.
export RUST_BACKTRACE=0
# halt_on_error: the first race fails the test binary instead of being one line
# in a long log; second_deadlock_stack: full stacks for lock-order reports.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"

targets=(--lib)
for file in crates/mapguard/tests/*.rs; do
    name=$(basename "$file" .rs)
    case $name in model | loom | read_mostly_allocations) ;; *) targets+=(--test "$name") ;; esac
done

log "mapguard ${targets[*]}, all features, $host"
cargo +nightly test -Zbuild-std --target "$host" -p mapguard --all-features "${targets[@]}" "$@"
log "ok"

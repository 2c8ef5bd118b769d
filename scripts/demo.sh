#!/usr/bin/env bash
# The mapwatch demo: a payment-style order-status service whose handlers share a map with no
# lock, run under `mapwatch run` while concurrent HTTP clients drive it. mapwatch reports each
# conflict with BOTH goroutines' stacks as it happens; the Go runtime, when it kills the
# service, prints only one. Sets up what it needs first (scripts/setup.sh).
#
# Usage: sudo scripts/demo.sh [seconds-of-load]   (env DEMO_PORT, default 18080)
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_OF_LOAD=${1:-15}
PORT=${DEMO_PORT:-18080}
GO_VERSION=1.25.5
OUT=target/demo

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: mapwatch loads eBPF programs, which needs root: sudo $0" >&2
    exit 1
fi

scripts/setup.sh
echo "demo: building mapwatch (release) ..." >&2
cargo build --release --quiet -p mapwatch
mkdir -p "$OUT"
GO="$(dirname "$0")/go-env.sh"
for p in orders orders-load; do
    "$GO" "$GO_VERSION" build -o "$PWD/$OUT/$p" "./$p"
done

echo "demo: starting the orders service under mapwatch; $SECONDS_OF_LOAD s of load from 8 HTTP clients" >&2
target/release/mapwatch run --report "$OUT/findings.jsonl" --html "$OUT/report.html" -- "$OUT/orders" -addr "127.0.0.1:$PORT" &
watcher=$!
"$OUT/orders-load" -addr "127.0.0.1:$PORT" -clients 8 -duration "${SECONDS_OF_LOAD}s" || true
if kill -0 "$watcher" 2>/dev/null; then
    # The service survived the load this time: stop it (mapwatch passes the signal on).
    kill -TERM "$watcher" 2>/dev/null || true
fi
status=0
wait "$watcher" || status=$?

echo >&2
n=$(grep -c . "$OUT/findings.jsonl" || true)
echo "demo: mapwatch exited with status $status; $n distinct finding(s) in $OUT/findings.jsonl:" >&2
python3 - "$OUT/findings.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    f = json.loads(line)
    print(f"\n{f['kind'].upper()} x{f['count']} on {f.get('map_type', 'a map')} made at {f.get('map_site', '?')}")
    for side in ("first", "second"):
        a = f[side]
        print(f"  goroutine {a['goid']} {a['op']}:")
        for frame in a["stack"][:8]:
            print(f"      {frame}")
PY
echo >&2
echo "demo: the same findings with heatmaps and map operations per second: $OUT/report.html" >&2

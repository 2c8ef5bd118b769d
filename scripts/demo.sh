#!/usr/bin/env bash
# The mapwatch demo: a payment-style order-status service whose handlers share a map with no
# lock, run under `mapwatch run` while concurrent HTTP clients drive it. mapwatch reports each
# race and conflict with BOTH goroutines' stacks as it happens (the Go runtime, when it kills
# the service, prints only one), and serves its Prometheus metrics while it watches; the demo
# scrapes them live. Sets up what it needs first (scripts/setup.sh).
#
# Usage (as root): scripts/demo.sh [seconds-of-load]
#        (env DEMO_PORT, default 18080; DEMO_METRICS_PORT, default 19464)
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_OF_LOAD=${1:-15}
PORT=${DEMO_PORT:-18080}
METRICS_PORT=${DEMO_METRICS_PORT:-19464}
GO_VERSION=1.25.5
OUT=target/demo

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: mapwatch loads eBPF programs, which needs root: run $0 as root" >&2
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
target/release/mapwatch run --report "$OUT/findings.jsonl" --html "$OUT/report.html" \
    --metrics "127.0.0.1:$METRICS_PORT" -- "$OUT/orders" -addr "127.0.0.1:$PORT" &
watcher=$!
# Scrape mapwatch's Prometheus endpoint every 50 ms while it watches, keeping the
# most telling scrape: findings, counters refreshed (mapwatch refreshes them four times a
# second and at each new finding) and the watch still on. The service may die any moment,
# taking the endpoint with it.
python3 - "$METRICS_PORT" "$OUT/metrics.txt" "$SECONDS_OF_LOAD" <<'PY' &
import sys, time, urllib.request
port, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline, best = time.time() + seconds + 5, -1
while time.time() < deadline:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
    except OSError:
        time.sleep(0.05)
        continue
    score = (("mapwatch_findings_total{" in text) + ("\nmapwatch_events_total 0\n" not in text)
             + ("\nmapwatch_watched_processes 1\n" in text))
    if score >= best:
        best = score
        open(out, "w").write(text)
    time.sleep(0.05)
PY
scraper=$!
"$OUT/orders-load" -addr "127.0.0.1:$PORT" -clients 8 -duration "${SECONDS_OF_LOAD}s" || true
if kill -0 "$watcher" 2>/dev/null; then
    # The service survived the load this time: stop it (mapwatch passes the signal on).
    kill -TERM "$watcher" 2>/dev/null || true
fi
status=0
wait "$watcher" || status=$?
kill "$scraper" 2>/dev/null || true
wait "$scraper" 2>/dev/null || true

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
if [ -s "$OUT/metrics.txt" ]; then
    echo "demo: scraped live from http://127.0.0.1:$METRICS_PORT/metrics while mapwatch watched:" >&2
    grep -E '^mapwatch_(findings_total|events_total|events_dropped_total|probes|goroutines|tracked_maps) ' "$OUT/metrics.txt" >&2 || true
    grep -E '^mapwatch_findings_total\{' "$OUT/metrics.txt" >&2 || true
    grep -E '^mapwatch_map_ops_total\{' "$OUT/metrics.txt" | sort -t' ' -k2 -n -r | head -5 >&2 || true
fi
echo >&2
echo "demo: the same findings with heatmaps and map operations per second: $OUT/report.html" >&2

//! Smoke test of the harness: a tiny run of every map part (throughput, latency, cost per
//! kind of operation, callgrind, HTTP under wrk) must finish and produce complete, sane
//! output: every map or store in every cell, ratios that name the best peer as 1.00x,
//! ordered quantiles, plots. Speed is not checked here (that is what the benchmark itself
//! reports). Needs `valgrind` and `wrk` (`scripts/setup.sh --tests`). The mapwatch overhead
//! part needs root and a release mapwatch; it is left to `scripts/bench.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const MAPS: [&str; 10] = [
    "mapguard-sharded",
    "mapguard-snapshot",
    "mapguard-readmostly",
    "dashmap",
    "papaya",
    "scc",
    "scc-hashindex",
    "flurry",
    "std-rwlock",
    "parking_lot-rwlock",
];
const WORKLOADS: [&str; 5] = [
    "read_heavy",
    "read_heavy_zipf",
    "read_only",
    "exchange",
    "rapid_grow",
];
const STORES: [&str; 4] = [
    "mapguard-sharded",
    "mapguard-snapshot",
    "dashmap",
    "std-rwlock",
];

fn csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            header
                .iter()
                .map(String::from)
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect()
}

fn num(row: &BTreeMap<String, String>, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|_| panic!("{col} is not a number in {row:?}"))
}

#[test]
fn tiny_run_produces_complete_sane_output() {
    let out = tempdir();
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--size",
            "smoke",
            "--only",
            "maps,latency,ops,instructions,http",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // Throughput: every map in every (workload, threads) cell; in each cell the best peer
    // is exactly 1.00x and no peer beats it.
    let rows = csv(&out.join("throughput.csv"));
    let mut cells: BTreeMap<(String, String), Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for r in &rows {
        cells
            .entry((r["workload"].clone(), r["threads"].clone()))
            .or_default()
            .push(r);
    }
    assert_eq!(
        cells.len(),
        WORKLOADS.len() * 2,
        "cells: {:?}",
        cells.keys()
    );
    for ((workload, threads), cell) in &cells {
        assert!(WORKLOADS.contains(&workload.as_str()));
        let maps: BTreeSet<&str> = cell.iter().map(|r| r["map"].as_str()).collect();
        assert_eq!(maps, MAPS.into_iter().collect(), "{workload}/{threads}");
        let best = &cell[0]["best_peer"];
        assert!(
            !best.starts_with("mapguard"),
            "best peer {best} is a mapguard engine"
        );
        for r in cell {
            let (ratio, mops) = (num(r, "ratio_to_best_peer"), num(r, "median_mops"));
            assert!(
                mops > 0.0 && mops.is_finite() && ratio > 0.0 && ratio.is_finite(),
                "{r:?}"
            );
            assert!(
                num(r, "min_mops") <= mops && mops <= num(r, "max_mops"),
                "{r:?}"
            );
            if &r["map"] == best {
                assert!((ratio - 1.0).abs() < 1e-3, "best peer's ratio is {ratio}");
            } else if !r["map"].starts_with("mapguard") {
                assert!(
                    ratio <= 1.0 + 1e-3,
                    "peer {} beats the best peer: {ratio}",
                    r["map"]
                );
            }
        }
    }

    // Latency: reads and inserts of every map in both workloads, quantiles in order.
    let lat = csv(&out.join("latency.csv"));
    assert_eq!(lat.len(), MAPS.len() * 2 * 2);
    for r in &lat {
        let q = ["p50_ns", "p99_ns", "p999_ns", "max_ns"].map(|c| num(r, c));
        assert!(num(r, "samples") > 0.0, "{r:?}");
        assert!(q.windows(2).all(|w| w[0] <= w[1]) && q[0] > 0.0, "{r:?}");
    }

    // Cost per kind of operation: every map at every kind; at each kind the fastest peer is
    // exactly 1.00x and no peer beats it.
    let ops = csv(&out.join("ops.csv"));
    let kinds: BTreeSet<&str> = ops.iter().map(|r| r["op"].as_str()).collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    for kind in kinds {
        let cell: Vec<_> = ops.iter().filter(|r| r["op"] == kind).collect();
        let maps: BTreeSet<&str> = cell.iter().map(|r| r["map"].as_str()).collect();
        assert_eq!(maps, MAPS.into_iter().collect(), "{kind}");
        for r in &cell {
            let ns = num(r, "median_ns");
            assert!(ns > 0.0 && ns.is_finite(), "{r:?}");
            assert!(num(r, "min_ns") <= ns && ns <= num(r, "max_ns"), "{r:?}");
        }
        let peers: Vec<f64> = cell
            .iter()
            .filter(|r| !r["map"].starts_with("mapguard"))
            .map(|r| num(r, "best_peer_ratio"))
            .collect();
        assert!(peers.iter().all(|&x| x <= 1.0 + 1e-3), "{kind}: {peers:?}");
        assert!(
            peers.iter().any(|&x| (x - 1.0).abs() < 1e-3),
            "{kind}: {peers:?}"
        );
    }

    // Instructions: every map plus the three variants, hits and misses cost something.
    let instr = csv(&out.join("instructions.csv"));
    let names: BTreeSet<&str> = instr.iter().map(|r| r["map"].as_str()).collect();
    for m in MAPS.iter().chain(&[
        "papaya-held-guard",
        "mapguard-readmostly-pinned",
        "mapguard-sharded-no-telemetry",
    ]) {
        assert!(names.contains(m), "no instruction count for {m}");
    }
    for r in &instr {
        let mut cols = vec!["instructions_per_hit", "instructions_per_miss"];
        if MAPS.contains(&r["map"].as_str()) {
            cols.push("instructions_per_write");
        }
        for col in cols {
            let v = num(r, col);
            assert!(v > 1.0 && v < 100_000.0, "{r:?}");
        }
    }

    // HTTP: every store served requests without errors.
    let http = csv(&out.join("http.csv"));
    let stores: BTreeSet<&str> = http.iter().map(|r| r["store"].as_str()).collect();
    assert_eq!(stores, STORES.into_iter().collect());
    for r in &http {
        assert!(
            num(r, "median_qps") > 0.0 && num(r, "median_p99_ms") > 0.0,
            "{r:?}"
        );
        assert_eq!(r["errors"], "0", "{r:?}");
    }

    // Plots and the Markdown report.
    for w in WORKLOADS {
        let svg = std::fs::read_to_string(out.join(format!("throughput-{w}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("mapguard-sharded"),
            "{w} plot"
        );
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    for title in [
        "Throughput",
        "Latency",
        "Cost per kind",
        "Instructions",
        "HTTP",
    ] {
        assert!(
            md.contains(&format!("### {title}")),
            "results.md lacks {title}"
        );
        assert!(
            stdout.contains(&format!("## {title}")),
            "stdout lacks {title}"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn bad_input_gets_a_one_line_error() {
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--size", "smoke", "--maps", "mapguard-sharded,nosuchmap"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unknown map \"nosuchmap\""), "{stderr}");
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

//! ShardedMap stays at dashmap's cost: per get hit, get miss and write, its callgrind
//! instruction count is at most 1.1x dashmap's (issue 27), so that the guarantees' price
//! cannot creep back onto the hot path unnoticed.
//!
//! Runs the bench's instructions part for the two maps at the smoke size (1,000 entries,
//! 1,000 gets of each kind and 1,000 writes after the usual 100,000 uncollected ones: ~10 s
//! under valgrind). The ratios there are those of the full size within a few hundredths
//! (BENCHMARKS.md has the full-size counts). The counts are only meaningful optimised: in a
//! debug test build the test first builds the release `bench` (`cargo build --release -p
//! bench`: nothing to do when it is up to date, a few minutes on 2 cores when nothing is
//! built). Needs valgrind (`scripts/setup.sh --tests`); without it the test says so and
//! passes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// The most ShardedMap may cost, as a multiple of dashmap's instructions.
const MAX_RATIO: f64 = 1.1;

#[test]
fn sharded_map_costs_at_most_1_1x_dashmap_instructions() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED: valgrind is not installed (scripts/setup.sh --tests installs it); \
             the ShardedMap/dashmap instruction ratio was not checked"
        );
        return;
    }
    let out = std::env::temp_dir().join(format!("bench-instructions-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let run = Command::new(optimised_bench())
        .args([
            "--size",
            "smoke",
            "--only",
            "instructions",
            "--maps",
            "mapguard-sharded,dashmap",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "bench failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    let mut reader = csv::Reader::from_path(out.join("instructions.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let rows: BTreeMap<String, BTreeMap<String, f64>> = reader
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            let row: BTreeMap<&str, &str> = header.iter().zip(rec.iter()).collect();
            let counts = row
                .iter()
                .filter(|(col, _)| col.starts_with("instructions_per_"))
                .filter_map(|(col, v)| Some((col.to_string(), v.parse().ok()?)))
                .collect();
            (row["map"].to_string(), counts)
        })
        .collect();
    std::fs::remove_dir_all(&out).unwrap();

    let mut report = Vec::new();
    let mut over = Vec::new();
    for col in [
        "instructions_per_hit",
        "instructions_per_miss",
        "instructions_per_write",
    ] {
        let ours = rows["mapguard-sharded"][col];
        let theirs = rows["dashmap"][col];
        let ratio = ours / theirs;
        report.push(format!("{col}: {ours:.1} / {theirs:.1} = {ratio:.3}x"));
        if ratio > MAX_RATIO {
            over.push(col);
        }
    }
    eprintln!("ShardedMap / dashmap instructions: {}", report.join(", "));
    assert!(
        over.is_empty(),
        "ShardedMap costs more than {MAX_RATIO}x dashmap's instructions in {over:?}: {}",
        report.join(", ")
    );
}

/// The `bench` binary built with the release profile: this test's own when it is built
/// optimised, else the release one next to it, built (or found up to date) first.
fn optimised_bench() -> PathBuf {
    let this = PathBuf::from(env!("CARGO_BIN_EXE_bench"));
    if !cfg!(debug_assertions) {
        return this;
    }
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "bench",
            "--bin",
            "bench",
        ])
        .status()
        .expect("cannot run cargo");
    assert!(status.success(), "cargo build --release -p bench failed");
    // <target>/debug/bench -> <target>/release/bench
    let target = this
        .parent()
        .and_then(|debug| debug.parent())
        .expect("the test binary's bench lies in <target>/<profile>/");
    target.join("release").join(this.file_name().unwrap())
}

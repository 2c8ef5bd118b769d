//! Real Go programs nobody here wrote, with many maps and locks, under `mapwatch run`: the `go`
//! command, built from the installed toolchain's own source (no network needed), listing and
//! building the standard library. They are correct programs: any race or conflict finding is a
//! false alarm. `cmd/...` packages are user code to mapwatch, so their maps are watched.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Go versions of the real-program runs: classic maps and Swiss maps.
const VERSIONS: [&str; 2] = ["1.22.10", "1.25.5"];

/// `go build -o <scratch>/go cmd/go` with Go `version`'s own toolchain.
fn build_cmd_go(version: &str, dir: &Path) -> PathBuf {
    let go = gobuild::go_command(version).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.join(format!("go-{version}"));
    let built = Command::new(&go)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .args(["build", "-o"])
        .arg(&out)
        .arg("cmd/go")
        .output()
        .expect("go runs");
    assert!(
        built.status.success(),
        "building cmd/go with Go {version}: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    out
}

/// Runs `go ARGS` (the freshly built one, on its own GOROOT) under `mapwatch run`; asserts it
/// succeeded, was watched for races with map and sync operations seen, and found nothing.
fn watch_go(version: &str, go: &Path, args: &[&str], dir: &Path) {
    let report = dir.join(format!("{version}-{}.jsonl", args[0]));
    let goroot = gobuild::go_command(version)
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let out = common::mapwatch()
        .args(["run", "--quiet", "--report"])
        .arg(&report)
        .arg("--")
        .arg(go)
        .args(args)
        .env("GOROOT", goroot)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.join(format!("gocache-{version}")))
        .output()
        .expect("mapwatch runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!("Go {version}: go {}", args.join(" "));
    assert!(out.status.success(), "{what} failed:\n{stderr}");
    assert!(
        !stderr.contains("races: off"),
        "{what}: races were not looked for:\n{stderr}"
    );
    assert!(
        common::ops_in_summary(&stderr) > 10_000,
        "{what}: too few map operations seen:\n{stderr}"
    );
    let findings = common::findings(&report);
    assert!(
        findings.is_empty(),
        "{what}: {} false alarm(s) on a correct program, the first:\n{}\n{stderr}",
        findings.len(),
        serde_json::to_string_pretty(&findings[0]).unwrap()
    );
    eprintln!(
        "{what}: no findings\n{}",
        stderr.lines().last().unwrap_or("")
    );
}

#[test]
fn the_go_command_listing_and_building_std_has_no_findings() {
    let dir = common::scratch("realprograms");
    for version in VERSIONS {
        let go = build_cmd_go(version, &dir);
        watch_go(version, &go, &["list", "-deps", "-json", "std"], &dir);
        watch_go(version, &go, &["build", "-a", "-p", "2", "std"], &dir);
    }
}

//! Shared by the integration tests: building Go programs, running the real mapwatch binary.
#![allow(dead_code)]

pub mod gorace;
pub mod racecorpus;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mapwatch::{jsonl, Finding};

/// Builds `testdata/go/<package>` with Go `version`, panicking with the build's own message.
pub fn go_binary(version: &str, package: &str) -> PathBuf {
    build(gobuild::Build::new(version, package))
}

/// Builds with options (stripped, experiment, ...).
pub fn build(b: gobuild::Build) -> PathBuf {
    b.build().unwrap_or_else(|e| panic!("{e}"))
}

/// The mapwatch binary under test.
pub fn mapwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mapwatch"))
}

/// Runs mapwatch with `args`; returns its output (stderr is where it talks).
pub fn run_mapwatch(args: &[&str]) -> Output {
    let out = mapwatch().args(args).output().expect("mapwatch runs");
    eprintln!(
        "$ mapwatch {}\n--- stdout\n{}--- stderr\n{}--- status {:?}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status
    );
    out
}

/// A scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mapwatch-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The findings in a JSON-lines report.
pub fn findings(report: &Path) -> Vec<Finding> {
    jsonl::read(report).unwrap()
}

/// The value of unlabelled series `name` on a Prometheus metrics page.
pub fn series_value(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Map operations counted in mapwatch's summary line ("... N map ops (...)").
pub fn ops_in_summary(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(" map ops ("))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    let before = line.split(" map ops (").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

/// A size field of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...), KiB; `None` once the process
/// is gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    value.split_whitespace().next()?.parse().ok()
}

/// Resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS").expect("the process runs")
}

/// How many rounds the soak tests run: `MAPWATCH_SOAK_CYCLES`, 10 by default
/// (`scripts/test.sh --soak` sets 1000).
pub fn soak_cycles() -> usize {
    std::env::var("MAPWATCH_SOAK_CYCLES")
        .ok()
        .map(|v| v.parse().expect("MAPWATCH_SOAK_CYCLES is a number"))
        .unwrap_or(10)
}

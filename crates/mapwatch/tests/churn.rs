//! A target that churns (`testdata/go/churn`: hundreds of thousands of goroutines, thousands
//! of OS threads, forks and execs, a heap grown by 512 MiB) is watched to its end with its
//! report and summary intact and mapwatch's own memory bounded; one killed with SIGKILL in the
//! middle of its work ends the watch cleanly.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gobuild::TEST_VERSIONS;

/// mapwatch's peak resident memory while watching the churn, at most.
const MAX_RSS_MIB: u64 = 256;

/// Runs `cmd` to its end; its exit code and peak RSS in KiB (`VmHWM`, read until it exits:
/// the kernel's rusage of a child counts the target it waits for too).
fn run_measured(cmd: &mut Command) -> (Option<i32>, u64) {
    let mut child = cmd.spawn().expect("mapwatch runs");
    let mut peak = 0;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), peak);
        }
        peak = common::status_kib(child.id(), "VmHWM").unwrap_or(peak);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_churning_target_is_watched_to_its_end_in_bounded_memory() {
    let churn = common::go_binary(TEST_VERSIONS[1], "churn");
    let dir = common::scratch("churn");
    let report = dir.join("report.jsonl");
    let (code, rss_kib) = run_measured(
        common::mapwatch()
            .args(["run", "--quiet", "--report"])
            .arg(&report)
            .arg("--")
            .arg(&churn)
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap()),
    );
    let stdout = std::fs::read_to_string(dir.join("stdout")).unwrap();
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap();
    eprintln!("{stderr}mapwatch peak RSS {} MiB", rss_kib / 1024);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("churn done "), "{stdout}");
    let summary = stderr
        .lines()
        .find(|l| l.contains("mapwatch: watched pid"))
        .unwrap_or_else(|| panic!("no summary:\n{stderr}"));
    let goroutines: u64 = summary
        .split(", ")
        .find_map(|part| part.strip_suffix(" goroutines")?.parse().ok())
        .unwrap_or_else(|| panic!("no goroutine count: {summary}"));
    assert!(goroutines >= 200_000, "{summary}");
    assert!(common::ops_in_summary(&stderr) > 200_000, "{summary}");
    assert!(
        common::findings(&report).is_empty(),
        "the program is locked"
    );
    assert!(
        rss_kib < MAX_RSS_MIB * 1024,
        "mapwatch peaked at {} MiB",
        rss_kib / 1024
    );
}

#[test]
fn a_target_killed_mid_watch_ends_it_cleanly() {
    let churn = common::go_binary(TEST_VERSIONS[1], "churn");
    let dir = common::scratch("churn-killed");
    let (report, pid_file) = (dir.join("report.jsonl"), dir.join("pid"));
    let mut mapwatch = common::mapwatch()
        .args(["run", "--quiet", "--report"])
        .arg(&report)
        .arg("--")
        .arg(&churn)
        .arg("-hang")
        .arg("-pid-file")
        .arg(&pid_file)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(mapwatch.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    // Mid-work: goroutines start, lock, write a map and end all the time.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = mapwatch.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the watch did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGKILL), "{stderr}");
    assert!(stderr.contains("target was killed by signal 9"), "{stderr}");
    assert!(stderr.contains("mapwatch: watched pid"), "{stderr}");
    assert!(common::ops_in_summary(&stderr) > 0, "{stderr}");
    assert!(report.exists(), "the report is kept");
    assert!(common::findings(&report).is_empty());
}

//! The audit log against real watched Go programs: rotation at a small size with nothing lost
//! or repeated, private file modes, platform tags on every record, findings as they happen.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{findings, go_binary, ops_in_summary, run_mapwatch, scratch};
use gobuild::TEST_VERSIONS;
use mapwatch::{read_audit_log, AuditRecord};

/// Rotation size for the tests: small enough for dozens of files.
const MAX_BYTES: u64 = 64 * 1024;

fn audit_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for partition in std::fs::read_dir(dir).unwrap() {
        let partition = partition.unwrap().path();
        assert!(partition.is_dir(), "only partitions in {}", dir.display());
        for f in std::fs::read_dir(&partition).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    files
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every record names this machine and the target's Go version, under the tag of its partition.
fn assert_tagged(records: &[AuditRecord], dir: &Path, go_version: &str) {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for r in records {
        let p = &r.platform;
        assert_eq!(p.arch, std::env::consts::ARCH);
        assert_eq!(p.kernel, kernel.trim());
        assert_eq!(p.host, host.trim());
        assert_eq!(p.go_version, go_version);
        assert!(!p.cpu_vendor.is_empty() && p.cpu_vendor != "unknown");
        assert!(!p.cpu_model.is_empty() && p.cpu_model != "unknown");
        assert!(p.cpu_flags.split(' ').count() > 5, "{}", p.cpu_flags);
        assert_eq!(r.platform_tag, p.tag());
        assert!(dir.join(&r.platform_tag).is_dir(), "partitioned by tag");
    }
}

#[test]
fn sampled_operations_rotate_with_nothing_lost_or_repeated() {
    const SAMPLE: u64 = 50;
    let version = TEST_VERSIONS[1];
    let bin = go_binary(version, "longrun");
    let dir = scratch("audit-ops").join("audit");
    let out = run_mapwatch(&[
        "run",
        "--quiet",
        "--audit",
        dir.to_str().unwrap(),
        "--audit-ops",
        "--audit-ops-sample",
        &SAMPLE.to_string(),
        "--audit-max-bytes",
        &MAX_BYTES.to_string(),
        "--",
        bin.to_str().unwrap(),
        "2",
        "10",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(" 0 events dropped"), "{stderr}");
    let ops = ops_in_summary(&stderr);

    assert_eq!(mode(&dir), 0o700);
    let files = audit_files(&dir);
    let logs: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert!(logs.len() > 3, "rotated at {MAX_BYTES} bytes: {logs:?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    for f in &logs {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= MAX_BYTES, "{} has {len} bytes", f.display());
    }

    // One in SAMPLE of every operation the summary counted: numbered without a gap or a
    // repeat across all the files, each whole.
    let records = read_audit_log(&dir).unwrap();
    assert_eq!(records.len() as u64, ops / SAMPLE, "{ops} ops counted");
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=records.len() as u64).collect::<Vec<_>>());
    assert!(records
        .iter()
        .all(|r| r.kind == "op" && r.op.as_ref().is_some_and(|o| o.sample == SAMPLE)));
    assert!(records
        .iter()
        .filter_map(|r| r.op.as_ref())
        .all(|o| o.map.starts_with("0x") && !o.map_site.is_empty()));
    // Wall-clock times of this run (the kernel's monotonic clock, converted).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(records
        .iter()
        .all(|r| r.time_unix_ns <= now && now - r.time_unix_ns < 300_000_000_000));
    assert_tagged(&records, &dir, &format!("go{version}"));
}

#[test]
fn findings_reach_the_audit_log_and_its_ops_reach_the_html_report() {
    let version = TEST_VERSIONS[1];
    let bin = go_binary(version, "conflict");
    let scratch_dir = scratch("audit-findings");
    let (dir, report) = (
        scratch_dir.join("audit"),
        scratch_dir.join("findings.jsonl"),
    );
    for attempt in 1..=3 {
        let _ = std::fs::remove_dir_all(&dir);
        run_mapwatch(&[
            "run",
            "--quiet",
            "--report",
            report.to_str().unwrap(),
            "--audit",
            dir.to_str().unwrap(),
            "--audit-ops",
            "--audit-ops-sample",
            "10",
            "--",
            bin.to_str().unwrap(),
            "write-write",
        ]);
        let found = findings(&report);
        if found.is_empty() {
            eprintln!("attempt {attempt}: no conflict this time");
            continue;
        }
        let records = read_audit_log(&dir).unwrap();
        assert_tagged(&records, &dir, &format!("go{version}"));
        let audited: Vec<_> = records.iter().filter_map(|r| r.finding.as_ref()).collect();
        // Every occurrence is audited; the report keeps one per distinct finding.
        let occurrences: u64 = found.iter().map(|f| f.count).sum();
        assert_eq!(audited.len() as u64, occurrences);
        for f in &found {
            assert!(
                audited
                    .iter()
                    .any(|a| a.first == f.first && a.second == f.second),
                "{f:?} not audited"
            );
        }

        let page = scratch_dir.join("report.html");
        let out = run_mapwatch(&[
            "report",
            report.to_str().unwrap(),
            "--audit",
            dir.to_str().unwrap(),
            "-o",
            page.to_str().unwrap(),
        ]);
        assert!(out.status.success());
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(html.contains("id=\"ops-over-time\""));
        assert!(html.contains("conflict/main.go"));
        return;
    }
    panic!("the racy program produced no finding in 3 runs");
}

#[test]
fn bad_audit_options_get_a_clear_error() {
    let bin = go_binary(TEST_VERSIONS[1], "longrun");
    let dir = scratch("audit-bad");
    let d = dir.join("a");
    let out = run_mapwatch(&[
        "run",
        "--audit",
        d.to_str().unwrap(),
        "--audit-ops",
        "--audit-ops-sample",
        "0",
        "--",
        bin.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--audit-ops-sample must be at least 1"));
    let out = run_mapwatch(&[
        "run",
        "--audit",
        d.to_str().unwrap(),
        "--audit-max-bytes",
        "10",
        "--",
        bin.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--audit-max-bytes 10 is too small"));
    // A file where the directory should be.
    let file = dir.join("file");
    std::fs::write(&file, "").unwrap();
    let out = run_mapwatch(&[
        "run",
        "--audit",
        file.to_str().unwrap(),
        "--",
        bin.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create the audit directory"));
}

//! mapwatch as a user runs it: real Go programs, real probes, the real kernel.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use common::{findings, go_binary, ops_in_summary, run_mapwatch, scratch};
use gobuild::TEST_VERSIONS;
use mapwatch::FindingKind;

fn has_frame(stack: &[String], function: &str, file: &str) -> bool {
    stack
        .iter()
        .any(|f| f.starts_with(function) && f.contains(file))
}

/// Runs the racy program until the Go runtime kills it, and checks the report holds both sides.
fn conflict_is_reported(version: &str, stripped: bool, mode: &str) {
    let bin = common::build(gobuild::Build::new(version, "conflict").stripped(stripped));
    let dir = scratch(&format!("conflict-{version}-{stripped}-{mode}"));
    let report = dir.join("report.jsonl");
    // The overlap is timing-dependent; a few tries make a miss vanishingly unlikely.
    for attempt in 1..=3 {
        let out = run_mapwatch(&[
            "run",
            "--report",
            report.to_str().unwrap(),
            "--",
            bin.to_str().unwrap(),
            mode,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.contains("fatal error: concurrent map") {
            eprintln!("attempt {attempt}: no crash this time");
            continue;
        }
        assert_eq!(
            out.status.code(),
            Some(2),
            "mapwatch exits with Go's fatal-error status"
        );
        let found = findings(&report);
        assert!(
            !found.is_empty(),
            "the runtime crashed on a conflict but the report is empty"
        );
        // The same unsynchronised accesses are races too, usually found before they overlap.
        let f = found
            .iter()
            .find(|f| f.kind == FindingKind::Conflict)
            .unwrap_or_else(|| {
                panic!("the runtime crashed on a conflict but none was reported: {found:?}")
            });
        assert_ne!(f.first.goid, f.second.goid);
        assert!(f.map.starts_with("0x"));
        assert_eq!(
            f.map_type.as_deref().filter(|_| !stripped),
            if stripped { None } else { Some("map[int]int") }
        );
        let site = f.map_site.as_deref().unwrap_or("");
        assert!(
            site.contains("conflict/main.go"),
            "map site {site:?} is the package-level make"
        );
        assert_eq!(f.first.op, "write");
        assert!(
            has_frame(&f.first.stack, "main.writer", "conflict/main.go"),
            "{:?}",
            f.first.stack
        );
        let second_fn = if mode == "read-write" {
            "main.reader"
        } else {
            "main.writer"
        };
        assert_eq!(
            f.second.op,
            if mode == "read-write" {
                "read"
            } else {
                "write"
            }
        );
        assert!(
            has_frame(&f.second.stack, second_fn, "conflict/main.go"),
            "{:?}",
            f.second.stack
        );
        // Both stacks reach the goroutine's start function.
        for a in [&f.first, &f.second] {
            assert!(
                a.stack.iter().any(|s| s.starts_with("main.main.func")),
                "{:?}",
                a.stack
            );
        }
        assert!(stderr.contains("mapwatch: CONFLICT on map"));
        // The goroutine the runtime caught is paired with the other writer too, even when
        // both writes began at once (the two probes then update the map's record together).
        assert!(
            !stderr.contains("no other goroutine's write to it was recorded"),
            "{stderr}"
        );
        return;
    }
    panic!("the racy program never crashed in 3 runs of 20 s");
}

#[test]
fn write_write_conflict_is_reported_with_both_stacks() {
    for v in TEST_VERSIONS {
        conflict_is_reported(v, false, "write-write");
    }
}

#[test]
fn read_write_conflict_is_reported_with_both_stacks() {
    for v in TEST_VERSIONS {
        conflict_is_reported(v, false, "read-write");
    }
}

#[test]
fn stripped_binary_works_degraded() {
    let v = TEST_VERSIONS[1];
    conflict_is_reported(v, true, "write-write");
    let bin = common::build(gobuild::Build::new(v, "allops").stripped(true));
    let out = run_mapwatch(&["run", "--", bin.to_str().unwrap(), "100"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(
        stderr.contains("mapwatch: degraded:"),
        "says what is degraded"
    );
    assert!(ops_in_summary(&stderr) >= 1000);
}

#[test]
fn locked_program_yields_no_conflict() {
    for v in TEST_VERSIONS {
        let bin = go_binary(v, "locked");
        let dir = scratch(&format!("locked-{v}"));
        let report = dir.join("report.jsonl");
        let out = run_mapwatch(&[
            "run",
            "--fail-on-finding",
            "--report",
            report.to_str().unwrap(),
            "--",
            bin.to_str().unwrap(),
            "50000",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "no finding, the program's own status"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("entries 4096"));
        assert!(findings(&report).is_empty());
        assert!(ops_in_summary(&String::from_utf8_lossy(&out.stderr)) >= 150000);
    }
}

#[test]
fn run_exits_with_the_targets_status() {
    let bin = go_binary(TEST_VERSIONS[0], "allops");
    let out = run_mapwatch(&["run", "--", bin.to_str().unwrap(), "not-a-number-so-zero"]);
    assert_eq!(out.status.code(), Some(0));
    let out = run_mapwatch(&["run", "--", "/bin/sh", "-c", "exit 7"]);
    assert_ne!(out.status.code(), Some(0), "/bin/sh is not Go: refused");
}

/// Starts `bin ARGS` (e.g. `longrun ROUNDS ROUND_MS`) and waits until it is running (its
/// "ready" line, returned).
fn start_until_ready(bin: &Path, args: &[&str]) -> (Child, BufReader<ChildStdout>, String) {
    let mut target = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(target.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "ready\n");
    (target, stdout, first)
}

#[test]
fn attach_and_detach_leave_the_target_running_with_unchanged_output() {
    let bin = go_binary(TEST_VERSIONS[1], "longrun");
    let plain = Command::new(&bin).args(["25", "60"]).output().unwrap();
    assert!(plain.status.success());

    let (mut target, mut stdout, first) = start_until_ready(&bin, &["25", "60"]);
    let pid = target.id().to_string();
    let out = run_mapwatch(&["attach", "-p", &pid, "--duration", "0.6"]);
    assert!(out.status.success());
    assert!(
        ops_in_summary(&String::from_utf8_lossy(&out.stderr)) > 10000,
        "saw the rounds' map ops"
    );
    assert!(
        target.try_wait().unwrap().is_none(),
        "the target runs on after mapwatch detached"
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(target.wait().unwrap().success());
    assert_eq!(
        first + &rest,
        String::from_utf8_lossy(&plain.stdout),
        "output unchanged by watching"
    );
}

#[test]
fn attach_watches_until_the_target_exits() {
    let bin = go_binary(TEST_VERSIONS[0], "longrun");
    let (mut target, mut stdout, _) = start_until_ready(&bin, &["8", "50"]);
    let pid = target.id();
    // Reap the target as soon as it exits, as its real parent would.
    let reaper = std::thread::spawn(move || {
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        target.wait().unwrap()
    });
    let out = run_mapwatch(&["attach", "-p", &pid.to_string()]);
    assert!(out.status.success());
    assert!(reaper.join().unwrap().success());
    assert!(ops_in_summary(&String::from_utf8_lossy(&out.stderr)) > 0);
}

/// A target that exits while `attach` is still placing its probes (`exitonprobe first` exits
/// the moment it sees the first one in its code) gets an error that says so, not the attach's
/// bare "No such file or directory". On a loaded machine the target may see its first probe
/// only after the last one is placed: then the watch simply ends with it, which is as good.
#[test]
fn a_target_exiting_during_attach_is_named_in_the_error() {
    let bin = go_binary(TEST_VERSIONS[1], "exitonprobe");
    let (mut target, mut stdout, _) = start_until_ready(&bin, &["first"]);
    let pid = target.id();
    let reaper = std::thread::spawn(move || {
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        (target.wait().unwrap(), rest)
    });
    let out = run_mapwatch(&["attach", "-p", &pid.to_string()]);
    let (status, rest) = reaper.join().unwrap();
    assert!(
        status.success() && rest.contains("probed: exiting"),
        "{rest}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(stderr.contains("mapwatch: watching pid"), "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "pid {pid} exited while its probes were being attached"
            )),
            "{stderr}"
        );
    }
}

#[test]
fn bad_input_gets_a_clear_error() {
    let out = run_mapwatch(&["run", "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a Go binary"), "{stderr}");

    let out = run_mapwatch(&["attach", "-p", "999999999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process with pid 999999999"));

    let out = run_mapwatch(&["inspect", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "one line"
    );

    let out = run_mapwatch(&["run", "--", "/nonexistent/program"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A binary whose symbol table lies about where a map function starts: the probe planned
/// there would sit inside an instruction, so nothing is attached and the program never runs.
#[test]
fn a_symbol_table_that_lies_gets_no_probe() {
    use object::{Object, ObjectSection};
    let bin = go_binary("1.25.5", "allops");
    let f = gotarget::GoBinary::open(&bin)
        .unwrap()
        .function("runtime.mapaccess2_fast64")
        .unwrap();
    let mut bytes = std::fs::read(&bin).unwrap();
    let (off, len) = object::File::parse(&*bytes)
        .unwrap()
        .section_by_name(".symtab")
        .unwrap()
        .file_range()
        .unwrap();
    // Elf64_Sym: name u32, info u8, other u8, shndx u16, value u64, size u64.
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let sym = (off as usize..(off + len) as usize)
        .step_by(24)
        .find(|&s| word(&bytes, s + 8) == f.addr && word(&bytes, s + 16) == f.size)
        .expect("the function's symbol");
    bytes[sym + 8..sym + 16].copy_from_slice(&(f.addr + 2).to_le_bytes());
    let lying = scratch("lying-symtab").join("allops");
    std::fs::write(&lying, &bytes).unwrap();
    std::fs::set_permissions(&lying, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let out = run_mapwatch(&["run", "--all-maps", "--", lying.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing was attached"), "{stderr}");
    assert!(
        stderr.contains(".gopclntab puts runtime.mapaccess2_fast64 at"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "the program ran");
}

#[test]
fn not_root_is_refused_clearly() {
    let bin = go_binary(TEST_VERSIONS[0], "allops");
    let out = common::mapwatch()
        .args(["run", "--", bin.to_str().unwrap()])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
}

#[test]
fn inspect_prints_the_probe_plan() {
    for v in TEST_VERSIONS {
        let bin = go_binary(v, "allops");
        let out = run_mapwatch(&["inspect", bin.to_str().unwrap()]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("go{v}")));
        for f in [
            "runtime.mapassign_fast64",
            "runtime.mapaccess1_faststr",
            "runtime.mapdelete",
            "runtime.mapclear",
        ] {
            assert!(text.contains(f), "{f} missing from:\n{text}");
        }
        assert!(text.contains("after stack check (emulated): `push rbp`"));
    }
}

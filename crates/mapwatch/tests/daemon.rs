//! `mapwatch daemon` with real processes coming and going: picked up as they start, dropped
//! cleanly as they end, the watched-processes gauge right throughout, and targets that run on
//! unharmed after the daemon detaches.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{go_binary, mapwatch, run_mapwatch, scratch, series_value};
use gobuild::TEST_VERSIONS;

/// How long the daemon gets to notice a process starting or ending (it polls every 200 ms).
const NOTICE: Duration = Duration::from_secs(30);

/// A running daemon, its stderr collected as it comes.
struct Daemon {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        let mut child = mapwatch()
            .arg("daemon")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let line = line.unwrap_or_default();
                eprintln!("daemon| {line}");
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Daemon { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the daemon's stderr contains `text`.
    fn wait_for_line(&self, text: &str) {
        wait_until(&format!("daemon says {text:?}"), || {
            self.stderr().contains(text)
        });
    }

    /// The metrics endpoint's address, from the daemon's first line.
    fn metrics_addr(&self) -> String {
        self.wait_for_line("metrics at http://");
        let err = self.stderr();
        let at = err.find("metrics at http://").unwrap() + "metrics at http://".len();
        err[at..].split('/').next().unwrap().to_string()
    }

    fn stop(mut self) -> String {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > NOTICE {
                let _ = self.child.kill();
                panic!("the daemon did not stop on SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "daemon exited with {status}");
        // The reader thread has seen the last line once the pipe closed.
        std::thread::sleep(Duration::from_millis(200));
        self.stderr()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed assertion must not leave a daemon attached to anything.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < NOTICE, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of an unlabelled series on the metrics page.
fn metric(addr: &str, name: &str) -> Option<f64> {
    let mut conn = std::net::TcpStream::connect(addr).ok()?;
    write!(conn, "GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut page = String::new();
    conn.read_to_string(&mut page).ok()?;
    series_value(&page, name)
}

fn wait_for_watched(addr: &str, n: f64) {
    wait_until(&format!("mapwatch_watched_processes is {n}"), || {
        metric(addr, "mapwatch_watched_processes") == Some(n)
    });
}

/// A longrun under its own name, so only this test's processes match the pattern.
fn named_copy(bin: &Path, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(bin, &path).unwrap();
    path
}

/// Starts `bin ROUNDS ROUND_MS` and waits for its "ready" line.
fn start(bin: &Path, rounds: &str, ms: &str) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(bin)
        .args([rounds, ms])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "ready\n");
    (child, stdout)
}

#[test]
fn daemon_picks_up_new_processes_and_drops_ended_ones() {
    let dir = scratch("daemon");
    let bin = go_binary(TEST_VERSIONS[1], "longrun");
    let watched = named_copy(&bin, &dir, "watched-longrun");
    let other = named_copy(&bin, &dir, "other-longrun");
    let reference = Command::new(&bin).args(["30", "0"]).output().unwrap();
    assert!(reference.status.success());

    let (mut a, _a_out) = start(&watched, "100000", "50");
    let (mut bystander, _) = start(&other, "100000", "50");
    let pattern = format!("^{}$", watched.display());
    let daemon = Daemon::start(&[
        "--match",
        &pattern,
        "--metrics",
        "127.0.0.1:0",
        "--poll-ms",
        "200",
    ]);
    let addr = daemon.metrics_addr();

    // Already running when the daemon started.
    wait_for_watched(&addr, 1.0);
    daemon.wait_for_line(&format!("watching pid {}", a.id()));

    // Started after it: picked up.
    let (mut b, mut b_out) = start(&watched, "30", "50");
    wait_for_watched(&addr, 2.0);
    daemon.wait_for_line(&format!("watching pid {}", b.id()));
    assert!(metric(&addr, "mapwatch_probes").unwrap() > 0.0);
    wait_until("events are counted", || {
        metric(&addr, "mapwatch_events_total").unwrap_or(0.0) > 1000.0
    });

    // Ended: dropped, and the gauge follows.
    a.kill().unwrap();
    a.wait().unwrap();
    wait_for_watched(&addr, 1.0);
    daemon.wait_for_line(&format!("pid {} is no longer watched", a.id()));

    // Stopping the daemon detaches from the rest, which run on unharmed.
    let stderr = daemon.stop();
    assert!(
        stderr.contains(&format!("watched pid {} (", b.id())),
        "{stderr}"
    );
    assert!(stderr.contains("daemon: stopped"));
    assert!(
        b.try_wait().unwrap().is_none(),
        "the target runs on after the daemon detached"
    );
    let mut rest = String::new();
    b_out.read_to_string(&mut rest).unwrap();
    assert!(b.wait().unwrap().success());
    assert_eq!(
        format!("ready\n{rest}"),
        String::from_utf8_lossy(&reference.stdout),
        "output unchanged by being watched"
    );

    // Never matched: never watched.
    assert!(
        !stderr.contains(&format!("pid {}", bystander.id())),
        "{stderr}"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Processes coming and going leave nothing behind in the daemon: its open files (the BPF
/// objects, links and ring buffers of each watch among them) and memory stay where they were.
/// `MAPWATCH_SOAK_CYCLES` processes (10 by default; `scripts/test.sh --soak` sees 1000).
#[test]
fn daemon_resources_stay_bounded_as_processes_come_and_go() {
    let cycles = common::soak_cycles();
    let dir = scratch("daemon-resources");
    let bin = named_copy(&go_binary(TEST_VERSIONS[1], "longrun"), &dir, "come-and-go");
    let pattern = format!("^{}$", bin.display());
    let daemon = Daemon::start(&["--match", &pattern, "--poll-ms", "100"]);
    let daemon_pid = daemon.child.id();
    let mut baseline = None;
    for i in 0..cycles + 2 {
        let (mut target, _out) = start(&bin, "100000", "5");
        daemon.wait_for_line(&format!("watching pid {}", target.id()));
        target.kill().unwrap();
        target.wait().unwrap();
        daemon.wait_for_line(&format!("pid {} is no longer watched", target.id()));
        if i == 1 {
            // After two watches: everything made once is made.
            baseline = Some((open_fds(daemon_pid), common::rss_kib(daemon_pid)));
        }
    }
    let (fds, rss) = baseline.unwrap();
    let (fds_after, rss_after) = (open_fds(daemon_pid), common::rss_kib(daemon_pid));
    eprintln!(
        "daemon after {cycles} processes: {fds} -> {fds_after} fds, {rss} -> {rss_after} KiB"
    );
    assert_eq!(fds_after, fds, "open files grew");
    assert!(
        rss_after < rss + 16 * 1024,
        "RSS {rss} KiB -> {rss_after} KiB"
    );
    daemon.stop();
}

#[test]
fn daemon_with_a_pid_list_ends_when_they_have() {
    let bin = go_binary(TEST_VERSIONS[0], "longrun");
    let (mut target, mut out) = start(&bin, "10", "30");
    let pid = target.id().to_string();
    let reaper = std::thread::spawn(move || {
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        (target.wait().unwrap(), rest)
    });
    let out = run_mapwatch(&["daemon", "--pid", &pid, "--quiet"]);
    let (status, rest) = reaper.join().unwrap();
    assert!(status.success() && rest.ends_with("finished\n"));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("watched pid {pid} (")), "{stderr}");
    assert!(stderr.contains("none of the listed processes is left"));
}

#[test]
fn daemon_refuses_bad_input_clearly() {
    let out = run_mapwatch(&["daemon"]);
    assert_eq!(out.status.code(), Some(2), "clap: a target is required");
    let out = run_mapwatch(&["daemon", "--match", "(unclosed"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--match \"(unclosed\" is not a regular expression: unclosed group"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

/// The shipped systemd unit: systemd accepts it, and the command line it starts is one the
/// daemon runs (with a pattern nothing matches, and scratch paths for its files).
#[test]
fn systemd_unit_is_valid_and_its_command_runs() {
    let unit_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd/mapwatch.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let dir = scratch("systemd-unit");
    let bin = env!("CARGO_BIN_EXE_mapwatch");
    const INSTALLED: &str = "/usr/local/bin/mapwatch";

    // systemd-analyze checks the executable exists: point it at the one under test.
    let copy = dir.join("mapwatch.service");
    std::fs::write(&copy, unit.replace(INSTALLED, bin)).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs (scripts/setup.sh --tests installs systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    let exec = unit
        .replace("\\\n", " ")
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line")
        .to_string();
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some(INSTALLED));
    let audit = dir.join("audit");
    let args: Vec<String> = words
        .filter(|w| *w != "$MAPWATCH_ARGS")
        .map(|w| match w {
            "${MAPWATCH_MATCH}" => "^/nothing/matches/this$".to_string(),
            "/var/log/mapwatch" => audit.to_str().unwrap().to_string(),
            "127.0.0.1:9464" => "127.0.0.1:0".to_string(),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(args[0], "daemon");
    let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let daemon = Daemon::start(&args);
    let addr = daemon.metrics_addr();
    wait_until("the endpoint answers", || {
        metric(&addr, "mapwatch_watched_processes") == Some(0.0)
    });
    let stderr = daemon.stop();
    assert!(stderr.contains("daemon: stopped"), "{stderr}");
    assert!(audit.is_dir(), "the audit directory is made at start");
}

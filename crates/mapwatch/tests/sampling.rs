//! Sampling on a real service under load: `--overhead-budget` keeps the probes on a small
//! share of the time and still finds a race planted on the hottest path, and a correctly
//! locked service shows no race however often the probes come and go (each pause is a barrier).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mapwatch::FindingKind;

/// The service (`testdata/go/service`) under `mapwatch run` with `flags`.
struct Watched {
    mapwatch: Child,
    addr: String,
}

impl Watched {
    fn start(dir: &Path, flags: &[&str], service_args: &[&str]) -> Watched {
        let service = common::go_binary(gobuild::TEST_VERSIONS[1], "service");
        let addr_file = dir.join("addr");
        let mapwatch = common::mapwatch()
            .args(["run", "--quiet", "--report"])
            .arg(dir.join("report.jsonl"))
            .args(flags)
            .arg("--")
            .arg(service)
            .args(["-addr", "127.0.0.1:0", "-addr-file"])
            .arg(&addr_file)
            .args(service_args)
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("mapwatch runs");
        let mut watched = Watched {
            mapwatch,
            addr: String::new(),
        };
        let started = Instant::now();
        while watched.addr.is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the service did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
            watched.addr = std::fs::read_to_string(&addr_file).unwrap_or_default();
        }
        watched
    }

    /// wrk on GET /orders/7 (the planted race's path) for `seconds`.
    fn load(&self, seconds: u32) {
        let out = Command::new("wrk")
            .args(["-t2", "-c16", &format!("-d{seconds}s")])
            .arg(format!("http://{}/orders/7", self.addr))
            .stdout(Stdio::null())
            .status()
            .expect("wrk runs (scripts/setup.sh --tests installs it)");
        assert!(out.success());
    }

    /// Ends the watch (SIGTERM: mapwatch passes it on and prints its summary); its stderr.
    fn stop(mut self, dir: &Path) -> String {
        unsafe { libc::kill(self.mapwatch.id() as i32, libc::SIGTERM) };
        self.mapwatch.wait().unwrap();
        std::fs::read_to_string(dir.join("stderr")).unwrap()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.mapwatch.kill();
        let _ = self.mapwatch.wait();
    }
}

#[test]
fn an_overhead_budget_finds_the_race_planted_on_the_hot_path_within_a_minute() {
    let dir = common::scratch("budget-planted");
    let watched = Watched::start(&dir, &["--overhead-budget", "2"], &["-planted-race"]);
    let report = dir.join("report.jsonl");
    let started = Instant::now();
    let mut races = Vec::new();
    while races.is_empty() && started.elapsed() < Duration::from_secs(60) {
        watched.load(3);
        races = common::findings(&report)
            .into_iter()
            .filter(|f| f.kind == FindingKind::Race)
            .collect();
    }
    let stderr = watched.stop(&dir);
    assert!(
        !races.is_empty(),
        "no race within a minute of load:\n{stderr}"
    );
    for race in &races {
        let on_planted_path = [&race.first, &race.second].iter().all(|side| {
            side.stack
                .iter()
                .any(|f| f.starts_with("main.(*recent).add "))
        });
        assert!(on_planted_path, "a race off the planted path: {race:?}");
    }
    let coverage = stderr
        .lines()
        .find(|l| l.contains("coverage") && l.contains("(--overhead-budget 2)"))
        .unwrap_or_else(|| panic!("no coverage in the summary:\n{stderr}"));
    assert!(coverage.contains("probes on"), "{coverage}");
}

#[test]
fn a_locked_service_shows_no_race_while_the_probes_come_and_go() {
    let dir = common::scratch("duty-locked");
    let watched = Watched::start(&dir, &["--duty-cycle", "30", "--duty-period", "0.3"], &[]);
    watched.load(6);
    let stderr = watched.stop(&dir);
    let findings = common::findings(&dir.join("report.jsonl"));
    assert!(findings.is_empty(), "{findings:?}\n{stderr}");
    assert!(common::ops_in_summary(&stderr) > 0, "{stderr}");
    assert!(stderr.contains("(--duty-cycle 30)"), "{stderr}");
}

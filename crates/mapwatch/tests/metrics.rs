//! The Prometheus endpoint, scraped by a real Prometheus server (Debian's `prometheus`,
//! installed by `scripts/setup.sh --tests`) while mapwatch watches a real Go program; the
//! test asks Prometheus's HTTP API what it stored. Needs root (eBPF).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{go_binary, mapwatch, scratch, series_value};
use gobuild::TEST_VERSIONS;

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` from 127.0.0.1:`port`; the body, or None when nothing answers yet.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    conn.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

/// The value Prometheus holds for the instant query `query` (URL-safe), if any.
fn prometheus_value(port: u16, query: &str) -> Option<f64> {
    let body = http_get(port, &format!("/api/v1/query?query={query}"))?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Stops a child on drop (SIGTERM, which mapwatch passes on to its target, then waits), so a
/// failing assertion leaves nothing running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// `racyloop` run under mapwatch serving metrics on `metrics_port`: two goroutines racing on
/// one map, 25 ms apart (never overlapping: only the race detector sees it), for `rounds`
/// rounds of 50 ms.
fn watch_racyloop(metrics_port: u16, rounds: u32) -> Reaped {
    let bin = go_binary(TEST_VERSIONS[1], "racyloop");
    Reaped(
        mapwatch()
            .args([
                "run",
                "--quiet",
                "--metrics",
                &metrics_port.to_string(),
                "--",
            ])
            .arg(&bin)
            .args([rounds.to_string(), "50".to_string()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn prometheus_scrapes_mapwatch_while_it_watches() {
    let prometheus = which("prometheus").expect(
        "prometheus is not installed: run scripts/setup.sh --tests (Debian package prometheus)",
    );
    // ~8 s of races: time for several scrapes.
    let dir = scratch("metrics");
    let metrics_port = free_port();
    let prometheus_port = free_port();

    let watcher = watch_racyloop(metrics_port, 160);
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 250ms\n  evaluation_interval: 250ms\n\
             scrape_configs:\n  - job_name: mapwatch\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let _server = Reaped(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = None;
    while Instant::now() < deadline {
        let writes = prometheus_value(
            prometheus_port,
            "sum(mapwatch_map_ops_total%7Bop%3D%22write%22%7D)",
        );
        let probes = prometheus_value(prometheus_port, "mapwatch_probes");
        let watched = prometheus_value(prometheus_port, "mapwatch_watched_processes");
        let races = prometheus_value(
            prometheus_port,
            "sum(mapwatch_findings_total%7Bkind%3D%22race%22%7D)",
        );
        if let (Some(w), Some(p), Some(1.0), Some(r)) = (writes, probes, watched, races) {
            if w > 0.0 && p > 0.0 && r > 0.0 {
                seen = Some((w, p, r));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let (writes, probes, races) = seen.unwrap_or_else(|| {
        panic!(
            "Prometheus never stored mapwatch's map ops and races; mapwatch serves:\n{}\nprometheus log:\n{log}",
            http_get(metrics_port, "/metrics").unwrap_or_default()
        )
    });
    eprintln!("Prometheus stored {writes} map writes seen through {probes} probes, {races} races");
    let clocks = prometheus_value(prometheus_port, "mapwatch_race_detector_clock_entries");
    assert!(
        clocks.is_some_and(|c| c > 0.0),
        "the race detector's memory gauge: {clocks:?}"
    );
    assert_eq!(
        prometheus_value(prometheus_port, "up%7Bjob%3D%22mapwatch%22%7D"),
        Some(1.0),
        "the scrape target is up"
    );
    drop(watcher);
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

fn deploy_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let promtool = which("promtool").expect(
        "promtool is not installed: run scripts/setup.sh --tests (Debian package prometheus)",
    );
    let dir = deploy_dir().join("prometheus");
    for args in [
        &["check", "rules", "mapwatch-rules.yml"][..],
        &["test", "rules", "mapwatch-rules.test.yml"][..],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `mapwatch_*` series the rules and the dashboard query is one mapwatch exports, so a
/// renamed metric can't silently empty a panel or mute an alert.
#[test]
fn rules_and_dashboard_query_only_exported_metrics() {
    use mapwatch::Counters;
    use mapwatch::Metrics;
    use mapwatch::{Access, Finding, FindingKind};
    use mapwatch::{SiteOps, UNKNOWN_SITE};

    // Labelled families are listed only once they have a member: give each one.
    let metrics = Metrics::new();
    metrics.add_ops(&[SiteOps {
        op: gotarget::MapOp::Read,
        site: UNKNOWN_SITE.into(),
        second: 0,
        count: 1,
    }]);
    metrics.feed(1, 1).update(&Counters::default(), 0, 0);
    let access = Access {
        op: "read".into(),
        goid: 1,
        stack: vec![],
        tid: 1,
        ts_ns: 0,
    };
    metrics.count_finding(&Finding {
        kind: FindingKind::Conflict,
        map: "0x1".into(),
        map_type: None,
        map_site: None,
        first: access.clone(),
        second: access,
        detected_by: "mapwatch".into(),
        count: 1,
        pid: 1,
        go_version: "go1.25.5".into(),
        notes: Vec::new(),
    });
    let exported = metrics.encode();
    let families: Vec<&str> = exported
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for file in [
        "prometheus/mapwatch-rules.yml",
        "prometheus/mapwatch-rules.test.yml",
        "grafana/mapwatch-dashboard.json",
    ] {
        let text = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
        let mut queried = 0;
        for (at, _) in text.match_indices("mapwatch_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = name.strip_suffix("_total").unwrap_or(&name);
            assert!(
                families.contains(&family),
                "{file} queries {name}, which mapwatch does not export (it has {families:?})"
            );
            queried += 1;
        }
        assert!(queried > 0, "{file} queries no mapwatch metric");
    }
}

/// A scrape that counts a finding also counts the map operations that made it: the event
/// counters are brought up to date with each new finding, not only at the next refresh
/// (a target that dies within a refresh period, as the demo's service often does, otherwise
/// left `mapwatch_events_total 0` beside its findings on the last page served).
#[test]
fn a_scrape_that_counts_a_finding_counts_its_events_too() {
    // A race on the second write, ~25 ms in; the watch's first refresh is 250 ms in.
    let metrics_port = free_port();
    let _watcher = watch_racyloop(metrics_port, 40);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut with_findings = 0;
    while Instant::now() < deadline && with_findings < 20 {
        if let Some(page) = http_get(metrics_port, "/metrics") {
            if page.contains("mapwatch_findings_total{") {
                with_findings += 1;
                let events = series_value(&page, "mapwatch_events_total");
                assert!(
                    events.is_some_and(|e| e > 0.0),
                    "a page with findings but events {events:?}:\n{page}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(with_findings > 0, "no scrape ever showed a finding");
}

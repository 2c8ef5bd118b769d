//! The Prometheus endpoint, scraped by a real Prometheus server (Debian's `prometheus`,
//! installed by `scripts/setup.sh --tests`) while mapwatch watches a real Go program; the
//! test asks Prometheus's HTTP API what it stored. Needs root (eBPF).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{go_binary, mapwatch, scratch};
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

#[test]
fn prometheus_scrapes_mapwatch_while_it_watches() {
    let prometheus = which("prometheus").expect(
        "prometheus is not installed: run scripts/setup.sh --tests (Debian package prometheus)",
    );
    let bin = go_binary(TEST_VERSIONS[1], "longrun");
    let dir = scratch("metrics");
    let metrics_port = free_port();
    let prometheus_port = free_port();

    // ~8 s of map work: time for several scrapes.
    let watcher = Reaped(
        mapwatch()
            .args([
                "run",
                "--quiet",
                "--metrics",
                &metrics_port.to_string(),
                "--",
            ])
            .arg(&bin)
            .args(["80", "100"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
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
        if let (Some(w), Some(p), Some(1.0)) = (writes, probes, watched) {
            if w > 0.0 && p > 0.0 {
                seen = Some((w, p));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let (writes, probes) = seen.unwrap_or_else(|| {
        panic!(
            "Prometheus never stored mapwatch's map ops; mapwatch serves:\n{}\nprometheus log:\n{log}",
            http_get(metrics_port, "/metrics").unwrap_or_default()
        )
    });
    eprintln!("Prometheus stored {writes} map writes seen through {probes} probes");
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

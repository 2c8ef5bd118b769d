//! HTTP service load: the order-status service on each store, driven by wrk at several
//! read/write mixes, rounds interleaved across stores; QPS and p99 per store.

pub mod service;
pub mod store;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

use crate::report::Section;
use crate::stats::Summary;
use crate::table::Table;
use store::StoreKind;

/// The wrk script: a read/write mix over a fixed set of orders.
const MIX_LUA: &str = include_str!("../../wrk/mix.lua");

/// What to run.
pub struct HttpConfig {
    /// Stores to compare.
    pub stores: Vec<StoreKind>,
    /// Percent of requests that are writes, one mix each.
    pub write_percents: Vec<u8>,
    /// Repeats of each (mix, store).
    pub rounds: usize,
    /// Seconds per wrk run.
    pub seconds: u32,
    /// Orders in the store (and the key range of requests).
    pub orders: u64,
    /// wrk connections.
    pub connections: u32,
}

/// One store at one mix.
pub struct HttpResult {
    /// The store.
    pub store: StoreKind,
    /// Percent writes.
    pub write_percent: u8,
    /// Requests per second, per round.
    pub qps: Vec<f64>,
    /// p99 latency in ms, per round.
    pub p99_ms: Vec<f64>,
    /// Non-2xx responses and socket errors, all rounds.
    pub errors: u64,
}

/// What one wrk run reported.
#[derive(Debug, PartialEq)]
pub struct WrkReport {
    /// Requests/sec.
    pub qps: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Requests completed.
    pub requests: u64,
    /// Non-2xx/3xx responses plus socket errors.
    pub errors: u64,
}

fn parse_duration_ms(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

/// Parses wrk's `--latency` output.
pub fn parse_wrk(out: &str) -> anyhow::Result<WrkReport> {
    let mut qps = None;
    let mut p99 = None;
    let mut requests = None;
    let mut errors = 0;
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => qps = v.parse().ok(),
            ["99%", v] => p99 = parse_duration_ms(v),
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    match (qps, p99, requests) {
        (Some(qps), Some(p99_ms), Some(requests)) => Ok(WrkReport {
            qps,
            p99_ms,
            requests,
            errors,
        }),
        _ => bail!("cannot read wrk's output:\n{out}"),
    }
}

/// A running service process, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(store: StoreKind, orders: u64) -> anyhow::Result<Server> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", "--store", store.name(), "--addr", "127.0.0.1:0"])
            .args(["--orders", &orders.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the service")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("service has no stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            bail!("service for {} did not start: {line:?}", store.name());
        };
        Ok(Server {
            addr: addr.to_string(),
            child,
        })
    }

    fn get(&self, path: &str) -> anyhow::Result<String> {
        let mut s = TcpStream::connect(&self.addr)?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
        )?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests the service counted, from its /metrics.
fn counted_requests(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("orders_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Runs wrk (two threads, `--latency`) against `url` with `script` and its arguments.
pub fn wrk(
    url: &str,
    connections: u32,
    seconds: u32,
    script: &Path,
    script_args: &[String],
) -> anyhow::Result<WrkReport> {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .arg("--")
        .args(script_args)
        .output()
        .context("cannot run wrk (Debian package `wrk`; scripts/setup.sh --tests installs it)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Writes the wrk script for the order-status mix into `out` and returns its path.
pub fn mix_script(out: &Path) -> anyhow::Result<std::path::PathBuf> {
    let script = out.join("mix.lua");
    std::fs::write(&script, MIX_LUA)?;
    Ok(script)
}

/// Runs every mix on every store, rounds interleaved (each round in a rotated store order).
pub fn run(cfg: &HttpConfig, out: &Path) -> anyhow::Result<Vec<HttpResult>> {
    let script = mix_script(out)?;
    let mut results = Vec::new();
    for &write_percent in &cfg.write_percents {
        let mut cells: Vec<HttpResult> = cfg
            .stores
            .iter()
            .map(|&store| HttpResult {
                store,
                write_percent,
                qps: Vec::new(),
                p99_ms: Vec::new(),
                errors: 0,
            })
            .collect();
        for round in 0..cfg.rounds {
            let mut line = format!(
                "http {write_percent}% writes round {}/{}:",
                round + 1,
                cfg.rounds
            );
            for i in 0..cells.len() {
                let cell = &mut cells[(i + round) % cfg.stores.len()];
                let server = Server::start(cell.store, cfg.orders)?;
                let report = wrk(
                    &format!("http://{}/", server.addr),
                    cfg.connections,
                    cfg.seconds,
                    &script,
                    &[write_percent.to_string(), cfg.orders.to_string()],
                )?;
                let counted = counted_requests(&server.get("/metrics")?);
                if counted < report.requests {
                    bail!(
                        "{}: /metrics counted {counted} requests, wrk completed {}",
                        cell.store.name(),
                        report.requests
                    );
                }
                cell.qps.push(report.qps);
                cell.p99_ms.push(report.p99_ms);
                cell.errors += report.errors;
                line += &format!(
                    " {}={:.0}/s p99={:.2}ms",
                    cell.store.name(),
                    report.qps,
                    report.p99_ms
                );
            }
            eprintln!("{line}");
        }
        results.extend(cells);
    }
    Ok(results)
}

/// The HTTP table: per mix and store, median QPS with its ratio to the best peer store, and
/// median p99.
pub fn section(results: &[HttpResult], cfg: &HttpConfig) -> Section {
    let mut table = Table::new(
        std::iter::once("writes".to_string())
            .chain(cfg.stores.iter().map(|s| format!("{} QPS / p99", s.name()))),
    );
    let mut csv = vec![[
        "write_percent",
        "store",
        "median_qps",
        "min_qps",
        "max_qps",
        "ratio_to_best_peer",
        "median_p99_ms",
        "errors",
        "rounds",
    ]
    .map(String::from)
    .to_vec()];
    for &wp in &cfg.write_percents {
        let cells: Vec<&HttpResult> = results.iter().filter(|r| r.write_percent == wp).collect();
        let best_peer = cells
            .iter()
            .filter(|c| !c.store.is_mapguard())
            .map(|c| Summary::of(&c.qps).median)
            .fold(0.0, f64::max);
        let mut row = vec![format!("{wp}%")];
        for c in &cells {
            let q = Summary::of(&c.qps);
            let p99 = Summary::of(&c.p99_ms).median;
            let ratio = q.median / best_peer;
            let errors = if c.errors > 0 {
                format!(" ({} errors)", c.errors)
            } else {
                String::new()
            };
            row.push(format!("{:.0} {ratio:.2}x / {p99:.2} ms{errors}", q.median));
            csv.push(vec![
                wp.to_string(),
                c.store.name().to_string(),
                format!("{:.1}", q.median),
                format!("{:.1}", q.min),
                format!("{:.1}", q.max),
                format!("{ratio:.4}"),
                format!("{p99:.3}"),
                c.errors.to_string(),
                c.qps.len().to_string(),
            ]);
        }
        table.push(row);
    }
    Section {
        title: "HTTP order-status service under wrk (QPS, ratio to the best peer store, p99)"
            .into(),
        intro: format!(
            "axum service, 2 Tokio workers, {} orders; wrk -t2 -c{} for {} s per run, GET/PUT on \
             uniformly random orders; median of {} interleaved rounds. Server and wrk share this \
             machine's CPUs. The service's /metrics is read after every run and must count at \
             least the requests wrk completed. SnapshotMap copies the map on every PUT (a \
             service does not batch).",
            cfg.orders, cfg.connections, cfg.seconds, cfg.rounds
        ),
        table,
        csv_name: "http.csv",
        csv,
        plots: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_latency_output() {
        let out = "Running 1s test @ http://127.0.0.1:1/\n  2 threads and 8 connections\n  \
                   Latency Distribution\n     50%  120.00us\n     75%  200.00us\n     90%  \
                   1.00ms\n     99%    2.50ms\n  12000 requests in 1.00s, 1.00MB read\n  \
                   Socket errors: connect 0, read 1, write 0, timeout 2\n  Non-2xx or 3xx \
                   responses: 3\nRequests/sec:  11990.50\nTransfer/sec:      1.00MB\n";
        assert_eq!(
            parse_wrk(out).unwrap(),
            WrkReport {
                qps: 11990.5,
                p99_ms: 2.5,
                requests: 12000,
                errors: 6
            }
        );
        assert!(parse_wrk("garbage").is_err());
        assert_eq!(parse_duration_ms("1.5s"), Some(1500.0));
    }

    #[test]
    fn counts_requests_from_metrics() {
        let m = "# HELP x\norders_requests_total{route=\"get\",outcome=\"hit\"} 10\n\
                 orders_requests_total{route=\"put\",outcome=\"ok\"} 5\norders_stored 3\n";
        assert_eq!(counted_requests(m), 15);
    }
}

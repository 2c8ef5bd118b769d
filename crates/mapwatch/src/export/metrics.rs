//! The Prometheus endpoint (`--metrics ADDR`): map operations by op and map allocation site,
//! findings by kind and site, events and drops, probes, watched processes, goroutines and maps
//! tracked, in the OpenMetrics text format, served over HTTP at `/metrics`.
//!
//! Per-event work stays in the watch's [`OpTally`](crate::opcount::OpTally); its drained,
//! symbolized counts reach the labelled counters once a second and at the end.
//!
//! One [`Metrics`] (one endpoint) can serve many watched processes (the daemon): each watch
//! feeds it through its own [`MetricsFeed`], which adds its deltas and, when the watch ends,
//! takes its share of the gauges back.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context, Result};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::detect::race::DetectorSize;
use crate::opcount::SiteOps;
pub use crate::opcount::UNKNOWN_SITE;
use crate::probe::Counters;
use crate::report::{op_name, Finding};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: String,
    map_site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PidLabels {
    pid: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    kind: String,
    map_site: String,
}

/// The metrics of every watch of one mapwatch; clones share them.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    map_ops: Family<OpLabels, Counter>,
    findings: Family<FindingLabels, Counter>,
    events: Counter,
    drops: Counter,
    probes: Gauge,
    processes: Gauge,
    goroutines: Gauge,
    maps: Gauge,
    detector: DetectorGauges,
    coverage: Family<PidLabels, Gauge<f64, AtomicU64>>,
}

/// The race detector's memory, by what it holds.
#[derive(Clone, Default)]
struct DetectorGauges {
    goroutines: Gauge,
    objects: Gauge,
    maps: Gauge,
    clock_entries: Gauge,
}

impl DetectorGauges {
    fn register(&self, registry: &mut Registry) {
        for (name, help, gauge) in [
            (
                "race_detector_goroutines",
                "Goroutines the race detector keeps a vector clock for",
                &self.goroutines,
            ),
            (
                "race_detector_sync_objects",
                "Channels, locks, WaitGroups and Values the race detector keeps a clock for",
                &self.objects,
            ),
            (
                "race_detector_maps",
                "Maps the race detector keeps access epochs for",
                &self.maps,
            ),
            (
                "race_detector_clock_entries",
                "Vector clock entries held over all goroutines and objects (the detector's memory grows with these, ~12 bytes each)",
                &self.clock_entries,
            ),
        ] {
            registry.register(name, help, Gauge::clone(gauge));
        }
    }

    /// Adds `now - before` to each gauge.
    fn shift(&self, before: DetectorSize, now: DetectorSize) {
        let d = |a: usize, b: usize| a as i64 - b as i64;
        self.goroutines.inc_by(d(now.goroutines, before.goroutines));
        self.objects.inc_by(d(now.objects, before.objects));
        self.maps.inc_by(d(now.maps, before.maps));
        self.clock_entries
            .inc_by(d(now.clock_entries, before.clock_entries));
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered under `mapwatch_`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mapwatch");
        let map_ops = Family::<OpLabels, Counter>::default();
        let findings = Family::<FindingLabels, Counter>::default();
        let (events, drops) = (Counter::default(), Counter::default());
        let (probes, processes, goroutines, maps) = Default::default();
        registry.register(
            "map_ops",
            "Map operations seen, by operation and the map's allocation site",
            map_ops.clone(),
        );
        registry.register(
            "findings",
            "Occurrences of conflicts and races, by kind and the map's allocation site",
            findings.clone(),
        );
        registry.register(
            "events",
            "Map operations the probes counted (read or dropped)",
            events.clone(),
        );
        registry.register(
            "events_dropped",
            "Events lost because the ring buffer was full (their findings are missed)",
            drops.clone(),
        );
        registry.register("probes", "Uprobes attached", Gauge::clone(&probes));
        registry.register(
            "watched_processes",
            "Processes being watched",
            Gauge::clone(&processes),
        );
        registry.register(
            "goroutines",
            "Distinct goroutines seen",
            Gauge::clone(&goroutines),
        );
        registry.register(
            "tracked_maps",
            "Maps the detector keeps state for",
            Gauge::clone(&maps),
        );
        let coverage = Family::<PidLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "coverage_ratio",
            "Share of the map accesses judged, by watched process: sampling (--duty-cycle, \
             --overhead-budget) and dropped events lower it",
            coverage.clone(),
        );
        let detector = DetectorGauges::default();
        detector.register(&mut registry);
        Metrics {
            detector,
            registry: Arc::new(registry),
            map_ops,
            findings,
            events,
            drops,
            probes,
            processes,
            goroutines,
            maps,
            coverage,
        }
    }

    /// Adds map operations drained from the watch's tally.
    pub fn add_ops(&self, ops: &[SiteOps]) {
        for o in ops {
            let labels = OpLabels {
                op: op_name(o.op).to_string(),
                map_site: o.site.clone(),
            };
            self.map_ops.get_or_create(&labels).inc_by(o.count);
        }
    }

    /// Counts one occurrence of `finding`.
    pub fn count_finding(&self, finding: &Finding) {
        let labels = FindingLabels {
            kind: finding.kind.as_str().to_string(),
            map_site: finding
                .map_site
                .clone()
                .unwrap_or_else(|| UNKNOWN_SITE.to_string()),
        };
        self.findings.get_or_create(&labels).inc();
    }

    /// Starts feeding the metrics from a watch of process `pid` through `probes` probes.
    pub fn feed(&self, pid: i32, probes: usize) -> MetricsFeed {
        self.processes.inc();
        self.probes.inc_by(probes as i64);
        MetricsFeed {
            metrics: self.clone(),
            pid: PidLabels {
                pid: pid.to_string(),
            },
            seen: Counters::default(),
            probes: probes as i64,
            goroutines: 0,
            maps: 0,
            detector: DetectorSize::default(),
        }
    }

    /// The OpenMetrics text of everything now.
    pub fn encode(&self) -> String {
        encode_registry(&self.registry)
    }

    /// Serves `/metrics` at `addr` until the returned server is dropped.
    pub fn serve(&self, addr: SocketAddr) -> Result<MetricsServer> {
        MetricsServer::start(addr, Arc::clone(&self.registry))
    }
}

fn encode_registry(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).expect("writing to a String cannot fail");
    text
}

/// One watched process's share of the [`Metrics`]: its BPF totals arrive as deltas, its gauges
/// as its contribution to the sum over processes; dropping it takes that contribution back
/// (the process is no longer watched).
pub struct MetricsFeed {
    metrics: Metrics,
    pid: PidLabels,
    /// BPF totals already added to `events` and `drops` (counters only go up by deltas).
    seen: Counters,
    probes: i64,
    goroutines: i64,
    maps: i64,
    detector: DetectorSize,
}

impl MetricsFeed {
    /// The shared metrics (for op and finding counts).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Brings the event counters and this process's gauges up to date.
    pub fn update(&mut self, counters: &Counters, goroutines: usize, maps: usize) {
        let m = &self.metrics;
        m.events
            .inc_by(counters.total_ops().saturating_sub(self.seen.total_ops()));
        m.drops
            .inc_by(counters.drops.saturating_sub(self.seen.drops));
        self.seen = *counters;
        m.goroutines.inc_by(goroutines as i64 - self.goroutines);
        self.goroutines = goroutines as i64;
        m.maps.inc_by(maps as i64 - self.maps);
        self.maps = maps as i64;
    }

    /// Sets the share of this process's map accesses judged so far.
    pub fn update_coverage(&self, ratio: f64) {
        self.metrics.coverage.get_or_create(&self.pid).set(ratio);
    }

    /// Brings this process's share of the race detector's memory gauges up to date.
    pub fn update_detector(&mut self, size: DetectorSize) {
        self.metrics.detector.shift(self.detector, size);
        self.detector = size;
    }
}

impl Drop for MetricsFeed {
    fn drop(&mut self) {
        let m = &self.metrics;
        m.processes.dec();
        m.probes.dec_by(self.probes);
        m.goroutines.dec_by(self.goroutines);
        m.maps.dec_by(self.maps);
        m.detector.shift(self.detector, DetectorSize::default());
        m.coverage.remove(&self.pid);
    }
}

/// Parses `--metrics`: a port (bound on 127.0.0.1) or ADDR:PORT. Anything but a loopback
/// address must be asked for with `allow_remote`: the page names the watched code.
pub fn parse_addr(spec: &str, allow_remote: bool) -> Result<SocketAddr> {
    let addr = match spec.parse::<u16>() {
        Ok(port) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        Err(_) => spec
            .parse::<SocketAddr>()
            .map_err(|_| anyhow!("--metrics {spec:?}: expected PORT or ADDRESS:PORT"))?,
    };
    if !addr.ip().is_loopback() && !allow_remote {
        bail!("--metrics {addr} is not a loopback address; add --metrics-allow-remote to serve it beyond this host");
    }
    Ok(addr)
}

/// The HTTP server behind `--metrics`; stops when dropped.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    fn start(addr: SocketAddr, registry: Arc<Registry>) -> Result<MetricsServer> {
        let server = Arc::new(
            tiny_http::Server::http(addr)
                .map_err(|e| anyhow!("{e}"))
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        );
        let addr = server
            .server_addr()
            .to_ip()
            .context("the metrics server has no IP address")?;
        let incoming = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for request in incoming.incoming_requests() {
                    let response = if request.url() == "/metrics" {
                        let content_type = tiny_http::Header::from_bytes(
                            "Content-Type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )
                        .expect("a valid header");
                        tiny_http::Response::from_string(encode_registry(&registry))
                            .with_header(content_type)
                    } else {
                        tiny_http::Response::from_string("mapwatch: see /metrics\n")
                            .with_status_code(404)
                    };
                    // A scraper that hung up is its own problem.
                    let _ = request.respond(response);
                }
            })
            .context("cannot start the metrics thread")?;
        Ok(MetricsServer {
            server,
            thread: Some(thread),
            addr,
        })
    }

    /// Where it listens (the port is the kernel's choice when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opcount::OpTally;
    use crate::report::{Access, FindingKind};
    use gotarget::MapOp;

    fn access(op: &str) -> Access {
        Access {
            op: op.into(),
            goid: 1,
            stack: vec![],
            tid: 1,
            ts_ns: 0,
        }
    }

    #[test]
    fn loopback_by_default_and_remote_only_when_asked() {
        assert_eq!(
            parse_addr("9464", false).unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert!(parse_addr("[::1]:9464", false).is_ok());
        assert!(parse_addr("0.0.0.0:9464", false).is_err());
        assert!(parse_addr("0.0.0.0:9464", true).is_ok());
        assert!(parse_addr("localhost", false).is_err());
    }

    #[test]
    fn counts_reach_the_text_format() {
        let m = Metrics::new();
        let finding = Finding {
            kind: FindingKind::Conflict,
            map: "0xc000010000".into(),
            map_type: Some("map[string]int".into()),
            map_site: Some("main.NewStore main.go:28".into()),
            first: access("write"),
            second: access("read"),
            detected_by: "mapwatch".into(),
            count: 1,
            pid: 1,
            go_version: "go1.25.5".into(),
            notes: Vec::new(),
        };
        m.count_finding(&finding);
        m.count_finding(&finding);
        let mut tally = OpTally::starting_at(0);
        tally.count(MapOp::Read, None, 5);
        tally.count(MapOp::Write, Some(0x401000), 6);
        // In another second: still one series.
        tally.count(MapOp::Write, Some(0x401000), 2_000_000_000);
        let mut counters = Counters::default();
        counters.ops[MapOp::Read as usize] = 5;
        counters.drops = 3;
        let mut feed = m.feed(1, 19);
        let site = |ret: u64| (ret == 0x401000).then(|| "main.NewStore main.go:28".to_string());
        m.add_ops(&tally.drain(site));
        feed.update(&counters, 4, 2);
        let text = m.encode();
        for line in [
            r#"mapwatch_findings_total{kind="conflict",map_site="main.NewStore main.go:28"} 2"#,
            r#"mapwatch_map_ops_total{op="read",map_site="unknown"} 1"#,
            r#"mapwatch_map_ops_total{op="write",map_site="main.NewStore main.go:28"} 2"#,
            "mapwatch_events_total 5",
            "mapwatch_events_dropped_total 3",
            "mapwatch_probes 19",
            "mapwatch_watched_processes 1",
            "mapwatch_goroutines 4",
            "mapwatch_tracked_maps 2",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // Totals from BPF grow by deltas.
        counters.ops[MapOp::Read as usize] = 7;
        feed.update(&counters, 4, 2);
        assert!(m.encode().contains("mapwatch_events_total 7"));
        assert!(m
            .encode()
            .contains(r#"mapwatch_map_ops_total{op="read",map_site="unknown"} 1"#));
    }

    #[test]
    fn gauges_sum_over_watched_processes_and_drop_with_them() {
        let m = Metrics::new();
        let mut a = m.feed(1, 10);
        let mut b = m.feed(2, 7);
        a.update(&Counters::default(), 5, 2);
        b.update(&Counters::default(), 3, 1);
        b.update(&Counters::default(), 4, 1);
        let size = |clock_entries| DetectorSize {
            goroutines: 2,
            objects: 1,
            maps: 1,
            clock_entries,
        };
        a.update_detector(size(10));
        b.update_detector(size(5));
        b.update_detector(size(6));
        let has = |line: &str| m.encode().lines().any(|l| l == line);
        assert!(has("mapwatch_race_detector_clock_entries 16"));
        assert!(has("mapwatch_race_detector_goroutines 4"));
        assert!(has("mapwatch_watched_processes 2"));
        assert!(has("mapwatch_probes 17"));
        assert!(has("mapwatch_goroutines 9"));
        assert!(has("mapwatch_tracked_maps 3"));
        drop(a);
        assert!(has("mapwatch_watched_processes 1"));
        assert!(has("mapwatch_probes 7"));
        assert!(has("mapwatch_goroutines 4"));
        assert!(has("mapwatch_tracked_maps 1"));
        assert!(has("mapwatch_race_detector_clock_entries 6"));
        drop(b);
        assert!(has("mapwatch_race_detector_clock_entries 0"));
        assert!(has("mapwatch_watched_processes 0"));
        assert!(has("mapwatch_probes 0"));
    }

    #[test]
    fn serves_metrics_over_http() {
        let m = Metrics::new();
        let _feed = m.feed(1, 3);
        let server = m.serve("127.0.0.1:0".parse().unwrap()).unwrap();
        let get = |path: &str| {
            use std::io::{Read, Write};
            let mut conn = std::net::TcpStream::connect(server.addr()).unwrap();
            write!(conn, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            conn.read_to_string(&mut out).unwrap();
            out
        };
        let page = get("/metrics");
        assert!(page.starts_with("HTTP/1.0 200"), "{page}");
        assert!(page.contains("mapwatch_probes 3"));
        assert!(page.contains("# EOF"));
        assert!(get("/").starts_with("HTTP/1.0 404"));
        drop(server); // stops and joins
    }
}

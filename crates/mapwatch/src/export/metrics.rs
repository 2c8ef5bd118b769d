//! The Prometheus endpoint (`--metrics ADDR`): map operations by op and map allocation site,
//! findings by kind and site, events and drops, probes, watched processes, goroutines and maps
//! tracked, in the OpenMetrics text format, served over HTTP at `/metrics`.
//!
//! Per-event work stays a hash-map increment keyed by (op, allocation site address); the
//! labelled counters are brought up to date once a second and at the end, where the site
//! addresses are symbolized (cached) into `function file:line`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context, Result};
use gotarget::MapOp;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::probe::Counters;
use crate::report::{op_name, Finding};

/// The `map_site` label of maps whose making was not seen (made before the watch began, or
/// by compiler-generated code without a runtime call).
pub const UNKNOWN_SITE: &str = "unknown";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: String,
    map_site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    kind: String,
    map_site: String,
}

/// The metrics of one watch.
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
    /// Operations by (op, allocation site return address; 0: unknown) not yet in `map_ops`.
    pending: HashMap<(MapOp, u64), u64>,
    /// BPF totals already added to `events` and `drops` (counters only go up by deltas).
    seen: Counters,
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
        Metrics {
            registry: Arc::new(registry),
            map_ops,
            findings,
            events,
            drops,
            probes,
            processes,
            goroutines,
            maps,
            pending: HashMap::new(),
            seen: Counters::default(),
        }
    }

    /// Counts one operation on a map made at `made_at` (a return address into its maker).
    pub fn count_op(&mut self, op: MapOp, made_at: Option<u64>) {
        *self.pending.entry((op, made_at.unwrap_or(0))).or_default() += 1;
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

    /// Whether a process is being watched now, and through how many probes.
    pub fn set_watching(&self, watching: bool, probes: usize) {
        self.processes.set(i64::from(watching));
        self.probes.set(if watching { probes as i64 } else { 0 });
    }

    /// Brings the labelled counters and gauges up to date; `site_name` symbolizes a map's
    /// allocation site from the return address into its maker.
    pub fn update(
        &mut self,
        counters: &Counters,
        goroutines: usize,
        maps: usize,
        mut site_name: impl FnMut(u64) -> Option<String>,
    ) {
        for ((op, made_at), n) in self.pending.drain() {
            let map_site = if made_at == 0 {
                UNKNOWN_SITE.to_string()
            } else {
                site_name(made_at).unwrap_or_else(|| UNKNOWN_SITE.to_string())
            };
            let labels = OpLabels {
                op: op_name(op).to_string(),
                map_site,
            };
            self.map_ops.get_or_create(&labels).inc_by(n);
        }
        self.events
            .inc_by(counters.total_ops().saturating_sub(self.seen.total_ops()));
        self.drops
            .inc_by(counters.drops.saturating_sub(self.seen.drops));
        self.seen = *counters;
        self.goroutines.set(goroutines as i64);
        self.maps.set(maps as i64);
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
    use crate::report::{Access, FindingKind};

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
        let mut m = Metrics::new();
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
        m.count_op(MapOp::Read, None);
        m.count_op(MapOp::Write, Some(0x401000));
        m.count_op(MapOp::Write, Some(0x401000));
        let mut counters = Counters::default();
        counters.ops[MapOp::Read as usize] = 5;
        counters.drops = 3;
        m.set_watching(true, 19);
        let site = |ret: u64| (ret == 0x401000).then(|| "main.NewStore main.go:28".to_string());
        m.update(&counters, 4, 2, site);
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
        m.update(&counters, 4, 2, site);
        assert!(m.encode().contains("mapwatch_events_total 7"));
        assert!(m
            .encode()
            .contains(r#"mapwatch_map_ops_total{op="read",map_site="unknown"} 1"#));
    }

    #[test]
    fn serves_metrics_over_http() {
        let m = Metrics::new();
        m.set_watching(true, 3);
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

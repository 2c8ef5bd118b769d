//! mapwatch on a Go HTTP service: `testdata/go/service` (net/http, a map under an RWMutex, a
//! few map operations per request) under wrk, run plain, under `mapwatch run` in several modes
//! and rebuilt with `go build -race`; rounds interleaved; QPS and p99 as ratios to plain, and
//! the events mapwatch dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::http::{mix_script, wrk};
use crate::report::Section;
use crate::stats::Summary;
use crate::table::Table;

/// The Go toolchain the service is built with.
const GO_VERSION: &str = "1.25.5";

/// Orders in the store and the key range of requests.
const ORDERS: u32 = 10_000;

/// Percent of requests that are writes.
const WRITE_PERCENT: u8 = 10;

/// wrk connections.
const CONNECTIONS: u32 = 32;

/// How the service is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// No probes, no instrumentation.
    Plain,
    /// `mapwatch run`: conflicts and races.
    Watch,
    /// `mapwatch run --no-races`: conflicts only.
    NoRaces,
    /// `mapwatch run --overhead-budget 2`: sampled to cost at most 2 % of the target's CPU.
    Budget,
    /// `mapwatch run --all-maps`: every map operation of the process probed, net/http's too.
    AllMaps,
    /// Built with `-race`.
    Race,
}

impl Variant {
    const ALL: [Variant; 6] = [
        Variant::Plain,
        Variant::Watch,
        Variant::NoRaces,
        Variant::Budget,
        Variant::AllMaps,
        Variant::Race,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Watch => "mapwatch run",
            Variant::NoRaces => "mapwatch run --no-races",
            Variant::Budget => "mapwatch run --overhead-budget 2",
            Variant::AllMaps => "mapwatch run --all-maps",
            Variant::Race => "go build -race",
        }
    }

    fn mapwatch_args(self) -> Option<&'static [&'static str]> {
        match self {
            Variant::Watch => Some(&[]),
            Variant::NoRaces => Some(&["--no-races"]),
            Variant::Budget => Some(&["--overhead-budget", "2"]),
            Variant::AllMaps => Some(&["--all-maps"]),
            Variant::Plain | Variant::Race => None,
        }
    }
}

/// What to run.
pub struct ServiceConfig {
    /// The mapwatch binary.
    pub mapwatch: PathBuf,
    /// Repeats of each variant.
    pub rounds: usize,
    /// Seconds of load per run (after one second of warm-up).
    pub seconds: u32,
    /// Where the wrk script and the services' address files go.
    pub out: PathBuf,
}

/// One variant's samples, or why it could not run.
pub struct ServiceResult {
    /// The variant.
    pub variant: Variant,
    /// Per round; `Err` says why it was not measured.
    pub samples: Result<Samples, String>,
}

/// Per-round measurements of one variant.
#[derive(Default)]
pub struct Samples {
    /// Requests per second.
    pub qps: Vec<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Vec<f64>,
    /// Events mapwatch reported dropped.
    pub dropped: Vec<u64>,
    /// wrk's non-2xx responses and socket errors.
    pub errors: u64,
}

/// The service running, killed (SIGINT, then waited for) on drop.
struct Running {
    child: Child,
    addr: String,
    stderr: PathBuf,
}

impl Running {
    fn start(
        variant: Variant,
        cfg: &ServiceConfig,
        plain: &Path,
        race: &Path,
    ) -> anyhow::Result<Running> {
        let addr_file = cfg.out.join("service.addr");
        let stderr = cfg.out.join("service.stderr");
        let _ = std::fs::remove_file(&addr_file);
        let service_args = [
            "-addr".to_string(),
            "127.0.0.1:0".into(),
            "-addr-file".into(),
            addr_file.display().to_string(),
            "-orders".into(),
            ORDERS.to_string(),
        ];
        let mut cmd = match variant.mapwatch_args() {
            Some(args) => {
                let mut cmd = Command::new(&cfg.mapwatch);
                cmd.args(["run", "--quiet"]).args(args).arg("--").arg(plain);
                cmd
            }
            None if variant == Variant::Race => Command::new(race),
            None => Command::new(plain),
        };
        let child = cmd
            .args(service_args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("cannot start the service ({})", variant.name()))?;
        let mut running = Running {
            child,
            addr: String::new(),
            stderr,
        };
        let started = Instant::now();
        while running.addr.is_empty() {
            if let Some(status) = running.child.try_wait()? {
                bail!(
                    "the service ({}) exited with {status}: {}",
                    variant.name(),
                    running.stderr_text()
                );
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the service ({}) did not start listening", variant.name());
            }
            std::thread::sleep(Duration::from_millis(50));
            running.addr = std::fs::read_to_string(&addr_file).unwrap_or_default();
        }
        Ok(running)
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Interrupts the service (under mapwatch: mapwatch, which passes the signal on and
    /// prints its summary) and returns what it wrote to stderr.
    fn stop(mut self) -> anyhow::Result<String> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait()?;
        Ok(self.stderr_text())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The events mapwatch's summary line says it dropped.
fn dropped_events(stderr: &str) -> anyhow::Result<u64> {
    stderr
        .lines()
        .filter(|l| l.starts_with("mapwatch: watched pid"))
        .find_map(|l| {
            let head = l.strip_suffix(" events dropped")?;
            head.rsplit(' ').next()?.parse().ok()
        })
        .with_context(|| format!("mapwatch printed no summary:\n{stderr}"))
}

/// Why a variant can't run here, if it can't.
fn unavailable(variant: Variant, cfg: &ServiceConfig) -> Option<String> {
    variant.mapwatch_args()?;
    if unsafe { libc::geteuid() } != 0 {
        return Some("n/a: needs root (eBPF)".into());
    }
    if !cfg.mapwatch.is_file() {
        return Some(format!(
            "n/a: no mapwatch at {} (cargo build --release -p mapwatch)",
            cfg.mapwatch.display()
        ));
    }
    None
}

/// Builds the service (plain and -race) and runs every variant, interleaved.
pub fn run(cfg: &ServiceConfig) -> anyhow::Result<Vec<ServiceResult>> {
    let plain = gobuild::Build::new(GO_VERSION, "service").build()?;
    let race = gobuild::Build::new(GO_VERSION, "service")
        .race(true)
        .build()?;
    let script = mix_script(&cfg.out)?;
    let mix = [WRITE_PERCENT.to_string(), ORDERS.to_string()];
    let mut results: Vec<ServiceResult> = Variant::ALL
        .iter()
        .map(|&variant| ServiceResult {
            variant,
            samples: match unavailable(variant, cfg) {
                Some(why) => Err(why),
                None => Ok(Samples::default()),
            },
        })
        .collect();
    for round in 0..cfg.rounds {
        let mut line = format!("service round {}/{}:", round + 1, cfg.rounds);
        for i in 0..results.len() {
            let r = &mut results[(i + round) % Variant::ALL.len()];
            let Ok(samples) = &mut r.samples else {
                continue;
            };
            let service = Running::start(r.variant, cfg, &plain, &race)?;
            let url = format!("http://{}/", service.addr);
            wrk(&url, CONNECTIONS, 1, &script, &mix)?;
            let report = wrk(&url, CONNECTIONS, cfg.seconds, &script, &mix)?;
            let stderr = service.stop()?;
            if r.variant.mapwatch_args().is_some() {
                samples.dropped.push(dropped_events(&stderr)?);
            }
            samples.qps.push(report.qps);
            samples.p99_ms.push(report.p99_ms);
            samples.errors += report.errors;
            line += &format!(
                " {}={:.0}/s p99={:.2}ms",
                r.variant.name(),
                report.qps,
                report.p99_ms
            );
        }
        eprintln!("{line}");
    }
    Ok(results)
}

/// The service table: median QPS and p99 with their ratios to plain, and events dropped.
pub fn section(results: &[ServiceResult], cfg: &ServiceConfig) -> Section {
    let mut table = Table::new(
        [
            "run",
            "QPS",
            "QPS vs plain",
            "p99",
            "p99 vs plain",
            "events dropped",
        ]
        .map(String::from),
    );
    let mut csv = vec![[
        "variant",
        "median_qps",
        "min_qps",
        "max_qps",
        "qps_ratio_to_plain",
        "median_p99_ms",
        "p99_ratio_to_plain",
        "max_dropped",
        "errors",
        "rounds",
    ]
    .map(String::from)
    .to_vec()];
    let plain = results
        .iter()
        .find(|r| r.variant == Variant::Plain)
        .and_then(|r| r.samples.as_ref().ok())
        .map(|s| (Summary::of(&s.qps).median, Summary::of(&s.p99_ms).median));
    for r in results {
        let s = match &r.samples {
            Ok(s) if !s.qps.is_empty() => s,
            Ok(_) => continue,
            Err(why) => {
                table.push(vec![r.variant.name().to_string(), why.clone()]);
                continue;
            }
        };
        let qps = Summary::of(&s.qps);
        let p99 = Summary::of(&s.p99_ms).median;
        let (qps_ratio, p99_ratio) =
            plain.map_or((f64::NAN, f64::NAN), |(q, p)| (qps.median / q, p99 / p));
        let dropped = s.dropped.iter().max().map_or("-".into(), u64::to_string);
        let errors = if s.errors > 0 {
            format!(" ({} errors)", s.errors)
        } else {
            String::new()
        };
        table.push(vec![
            r.variant.name().to_string(),
            format!("{:.0}{errors}", qps.median),
            format!("{qps_ratio:.2}x"),
            format!("{p99:.2} ms"),
            format!("{p99_ratio:.2}x"),
            dropped.clone(),
        ]);
        csv.push(vec![
            r.variant.name().to_string(),
            format!("{:.1}", qps.median),
            format!("{:.1}", qps.min),
            format!("{:.1}", qps.max),
            format!("{qps_ratio:.4}"),
            format!("{p99:.3}"),
            format!("{p99_ratio:.4}"),
            dropped,
            s.errors.to_string(),
            s.qps.len().to_string(),
        ]);
    }
    Section {
        title: "mapwatch on a Go HTTP service under wrk (QPS and p99, ratios to plain)".into(),
        intro: format!(
            "`testdata/go/service` (Go {GO_VERSION}, net/http, a map of {ORDERS} orders under an \
             RWMutex, per-route counts in a map under a Mutex) under wrk -t2 -c{CONNECTIONS}, \
             {WRITE_PERCENT}% PUTs, {} s per run after 1 s of warm-up; median of {} rounds, \
             variants interleaved. Service, mapwatch and wrk share this machine's CPUs. Events \
             dropped: the most mapwatch reported in one run.",
            cfg.seconds, cfg.rounds
        ),
        table,
        csv_name: "service.csv",
        csv,
        plots: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dropped_events_from_the_summary() {
        let stderr = "mapwatch: watching pid 1\nmapwatch: watched pid 1 (go1.25.5) for 3.0s: 10 \
                      map ops (read 10), 5 sync ops, 1 maps, 2 goroutines, 0 findings (0 \
                      conflicts, 0 races; 0 occurrences), 1234 events dropped\n";
        assert_eq!(dropped_events(stderr).unwrap(), 1234);
        assert!(dropped_events("nothing").is_err());
    }
}

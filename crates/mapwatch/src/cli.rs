//! The command line: parses the arguments and dispatches to the watch, the daemon, `inspect`
//! and `report` (the CLI contract is in docs/ARCHITECTURE.md).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use gotarget::GoBinary;

use crate::daemon;
use crate::export::audit::{self, AuditLog, AuditOptions};
use crate::export::metrics::{self, Metrics, MetricsServer};
use crate::process::{self, StoppedChild};
use crate::watch::{self, Outcome, Target, WatchOptions};

/// Watch a Go process's maps with eBPF: conflicts with both goroutines' stacks, no rebuild.
#[derive(Parser, Debug)]
#[command(name = "mapwatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start CMD with probes attached before its first map operation; exit with its status.
    Run {
        #[command(flatten)]
        watch: WatchArgs,
        /// The command to run and its arguments.
        #[arg(required = true, last = true)]
        command: Vec<OsString>,
    },
    /// Watch a running process until it exits or Ctrl-C; it keeps running after.
    Attach {
        /// Process id of the Go program.
        #[arg(short, long)]
        pid: i32,
        #[command(flatten)]
        watch: WatchArgs,
    },
    /// Print the probe plan for a Go binary: version, map ABI, entry points, offsets.
    Inspect {
        /// Path to the Go binary.
        binary: PathBuf,
    },
    /// Turn a JSON-lines report (--report) into a self-contained HTML page.
    Report(ReportArgs),
    /// Watch every process whose executable matches --match (and/or the --pid list), picking
    /// up new ones as they start, until SIGTERM or Ctrl-C.
    Daemon(DaemonArgs),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("targets").required(true).multiple(true).args(["matches", "pid"])))]
struct DaemonArgs {
    /// Watch processes whose executable path matches this regular expression.
    #[arg(long = "match", value_name = "REGEX")]
    matches: Option<String>,
    /// Watch this process (repeat, or comma-separated); without --match the daemon ends
    /// when all of them have.
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    pid: Vec<i32>,
    /// How often to look for new and ended processes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    poll_ms: u64,
    /// No findings on the terminal (the per-process summaries stay).
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    analysis: AnalysisArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    audit: AuditArgs,
}

#[derive(Args, Debug)]
struct WatchArgs {
    /// Write findings as JSON lines to FILE (flushed as they are found).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Exit non-zero (3) when anything was found.
    #[arg(long)]
    fail_on_finding: bool,
    /// Stop watching after SECONDS.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// No live status line and no findings on the terminal (the summary stays).
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    analysis: AnalysisArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// Write an HTML report (findings, heatmaps, ops over time) to FILE at the end.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    #[command(flatten)]
    audit: AuditArgs,
}

/// How findings are looked for (the same for run, attach and every watch of the daemon).
#[derive(Args, Debug)]
struct AnalysisArgs {
    /// Report conflicts only: no happens-before race analysis (and no sync probes' events).
    #[arg(long)]
    no_races: bool,
    /// Watch map accesses and synchronisation only PCT percent of the time (attach and
    /// detach their probes each --duty-period). Each pause is a barrier: races across it are
    /// missed, never invented.
    #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u8).range(1..=100))]
    duty_cycle: Option<u8>,
    /// Keep what the probes cost within PCT percent of the target's CPU time: the share of
    /// each --duty-period they are attached adapts to the cost measured (a probe hit is
    /// calibrated at start). The summary and `mapwatch_coverage_ratio` say what was covered.
    #[arg(long, value_name = "PCT", conflicts_with = "duty_cycle")]
    overhead_budget: Option<f64>,
    /// Length of one duty cycle [default: 5 with --duty-cycle, 1 with --overhead-budget].
    #[arg(long, value_name = "SECONDS")]
    duty_period: Option<f64>,
    /// Look for races only on maps made at FILE:LINE (repeatable), e.g. `store.go:42`.
    #[arg(long = "map-site", value_name = "FILE:LINE")]
    map_sites: Vec<String>,
    /// Probe every map operation of the process, the standard library's own included, in
    /// the runtime's map functions (dearer). By default only the calls from the program's
    /// code (and the `maps` and `reflect` code it hands maps to) are probed.
    #[arg(long)]
    all_maps: bool,
}

impl AnalysisArgs {
    /// Sets the analysis options of `options`, after checking them.
    fn apply(&self, options: &mut WatchOptions) -> Result<()> {
        let budget = self.overhead_budget;
        if budget.is_some_and(|pct| !(pct > 0.0 && pct <= 100.0)) {
            anyhow::bail!("--overhead-budget must be a percentage above 0 and at most 100");
        }
        let duty_period = match (self.duty_period, budget, self.duty_cycle) {
            (Some(s), ..) if !(s > 0.0 && s.is_finite()) => {
                anyhow::bail!("--duty-period must be a positive number of seconds")
            }
            (Some(_), None, None) => {
                anyhow::bail!("--duty-period needs --duty-cycle or --overhead-budget")
            }
            (Some(s), ..) => s,
            (None, Some(_), _) => 1.0,
            (None, None, _) => 5.0,
        };
        if let Some(bad) = self.map_sites.iter().find(|s| {
            s.rsplit_once(':')
                .is_none_or(|(file, line)| file.is_empty() || line.parse::<u32>().is_err())
        }) {
            anyhow::bail!("--map-site {bad}: expected FILE:LINE, e.g. store.go:42");
        }
        options.races = !self.no_races;
        options.duty_cycle = self.duty_cycle;
        options.overhead_budget = budget;
        options.duty_period = Duration::from_secs_f64(duty_period);
        options.map_sites = self.map_sites.clone();
        options.all_maps = self.all_maps;
        Ok(())
    }
}

#[derive(Args, Debug)]
struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics while watching: a PORT (on 127.0.0.1)
    /// or ADDRESS:PORT.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Allow --metrics on an address other than loopback.
    #[arg(long, requires = "metrics")]
    metrics_allow_remote: bool,
}

impl MetricsArgs {
    /// Starts the endpoint, if asked for; it serves until the server is dropped.
    fn serve(&self) -> Result<Option<(Metrics, MetricsServer)>> {
        let Some(spec) = &self.metrics else {
            return Ok(None);
        };
        let addr = metrics::parse_addr(spec, self.metrics_allow_remote)?;
        let metrics = Metrics::new();
        let server = metrics.serve(addr)?;
        eprintln!("mapwatch: metrics at http://{}/metrics", server.addr());
        Ok(Some((metrics, server)))
    }
}

#[derive(Args, Debug)]
struct AuditArgs {
    /// Append findings as JSON lines, tagged with the platform, to DIR/<platform tag>/ (for a SIEM).
    #[arg(long, value_name = "DIR")]
    audit: Option<PathBuf>,
    /// Also record map operations in the audit log (sampled: see --audit-ops-sample).
    #[arg(long, requires = "audit")]
    audit_ops: bool,
    /// Keep 1 map operation in N in the audit log.
    #[arg(long, value_name = "N", requires = "audit_ops", default_value_t = audit::DEFAULT_OPS_SAMPLE)]
    audit_ops_sample: u64,
    /// Start a new audit file before one grows past BYTES.
    #[arg(long, value_name = "BYTES", requires = "audit", default_value_t = audit::DEFAULT_MAX_BYTES)]
    audit_max_bytes: u64,
}

impl AuditArgs {
    fn open(&self) -> Result<Option<AuditLog>> {
        let Some(dir) = &self.audit else {
            return Ok(None);
        };
        AuditLog::open(AuditOptions {
            dir: dir.clone(),
            ops_sample: self.audit_ops.then_some(self.audit_ops_sample),
            max_bytes: self.audit_max_bytes,
        })
        .map(Some)
    }
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// The findings, as JSON lines (what --report writes).
    findings: PathBuf,
    /// Where to write the HTML page.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// An audit log recorded with --audit-ops: the page then shows map operations over time.
    #[arg(long, value_name = "DIR")]
    audit: Option<PathBuf>,
}

impl WatchArgs {
    /// The options of a watch, and the metrics endpoint it feeds (kept until it ends).
    fn options(&self) -> Result<(WatchOptions, Option<MetricsServer>)> {
        let audit = self.audit.open()?;
        let (metrics, server) = self.metrics.serve()?.unzip();
        let mut options = WatchOptions {
            report: self.report.clone(),
            quiet: self.quiet,
            duration: self.duration.map(Duration::from_secs_f64),
            metrics,
            no_status_line: false,
            html: self.html.clone(),
            audit,
            ..WatchOptions::default()
        };
        self.analysis.apply(&mut options)?;
        Ok((options, server))
    }
}

impl DaemonArgs {
    fn run(&self) -> Result<u8> {
        process::require_root()?;
        let matcher = self
            .matches
            .as_deref()
            .map(|re| {
                regex::Regex::new(re).map_err(|e| {
                    // The parser's message spans lines (pattern, caret, error): keep the error.
                    let text = e.to_string();
                    let why = text.lines().last().unwrap_or_default();
                    anyhow::anyhow!(
                        "--match {re:?} is not a regular expression: {}",
                        why.trim_start_matches("error: ")
                    )
                })
            })
            .transpose()?;
        if self.poll_ms == 0 {
            anyhow::bail!("--poll-ms must be at least 1");
        }
        let audit = self.audit.open()?;
        let (metrics, _server) = self.metrics.serve()?.unzip();
        let mut watch = WatchOptions {
            quiet: self.quiet,
            no_status_line: true,
            metrics,
            audit,
            ..WatchOptions::default()
        };
        self.analysis.apply(&mut watch)?;
        daemon::run(daemon::DaemonOptions {
            matcher,
            pids: self.pid.clone(),
            poll: Duration::from_millis(self.poll_ms),
            watch,
        })?;
        Ok(0)
    }
}

/// Exit code when `--fail-on-finding` is given and something was found.
pub const FOUND_EXIT_CODE: u8 = 3;

/// Runs the command line; returns the process exit code.
pub fn main() -> Result<u8> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { binary } => {
            let binary = GoBinary::open(&binary)?;
            print!("{}", crate::inspect::describe(&binary)?);
            Ok(0)
        }
        Command::Run { watch, command } => run(&watch, &command),
        Command::Attach { pid, watch } => attach(pid, &watch),
        Command::Daemon(args) => args.run(),
        Command::Report(args) => {
            crate::report::html::write_from_report(
                &args.findings,
                args.audit.as_deref(),
                &args.output,
            )?;
            eprintln!("mapwatch: HTML report in {}", args.output.display());
            Ok(0)
        }
    }
}

fn run(watch: &WatchArgs, command: &[OsString]) -> Result<u8> {
    process::require_root()?;
    let (program, args) = command.split_first().expect("clap requires a command");
    let (options, _metrics_server) = watch.options()?;
    let stopped = StoppedChild::spawn(program, args)?;
    let prepared = match watch::prepare(stopped.pid(), options) {
        Ok(w) => w,
        Err(e) => {
            // It never ran a single instruction: nothing is lost by not starting it.
            stopped.kill();
            return Err(e.context(format!("not starting {}", program.to_string_lossy())));
        }
    };
    let child = stopped.resume()?;
    let outcome = prepared.run(Target::Child(child))?;
    let code = outcome.exit.map(process::exit_code).unwrap_or(0);
    Ok(finding_code(watch, &outcome).unwrap_or(code.clamp(0, 255) as u8))
}

fn attach(pid: i32, watch: &WatchArgs) -> Result<u8> {
    process::require_root()?;
    let (options, _metrics_server) = watch.options()?;
    let outcome = watch::prepare(pid, options)?.run(Target::Pid(pid))?;
    Ok(finding_code(watch, &outcome).unwrap_or(0))
}

fn finding_code(watch: &WatchArgs, outcome: &Outcome) -> Option<u8> {
    (watch.fail_on_finding && !outcome.findings.is_empty()).then_some(FOUND_EXIT_CODE)
}

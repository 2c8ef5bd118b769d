//! The command line: `run`, `attach`, `inspect` (the contract in ARCHITECTURE.md).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use gotarget::GoBinary;

use crate::export::metrics;
use crate::probe::Probes;
use crate::process::{self, StoppedChild};
use crate::session::{Outcome, Session, Target, WatchOptions};

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
    /// Serve Prometheus metrics at http://ADDR/metrics while watching: a PORT (on 127.0.0.1)
    /// or ADDRESS:PORT.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Allow --metrics on an address other than loopback.
    #[arg(long, requires = "metrics")]
    metrics_allow_remote: bool,
    /// Report conflicts only: no happens-before race analysis (and no sync probes' events).
    #[arg(long)]
    no_races: bool,
    /// Watch map accesses only PCT percent of the time (attach and detach their probes each
    /// --duty-period); synchronisation stays watched, so races are still judged right.
    #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u8).range(1..=100))]
    duty_cycle: Option<u8>,
    /// Length of one duty cycle.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 5.0,
        requires = "duty_cycle"
    )]
    duty_period: f64,
    /// Look for races only on maps made at FILE:LINE (repeatable), e.g. `store.go:42`.
    #[arg(long = "map-site", value_name = "FILE:LINE")]
    map_sites: Vec<String>,
}

impl WatchArgs {
    fn options(&self) -> Result<WatchOptions> {
        if !(self.duty_period > 0.0 && self.duty_period.is_finite()) {
            anyhow::bail!("--duty-period must be a positive number of seconds");
        }
        if let Some(bad) = self.map_sites.iter().find(|s| {
            s.rsplit_once(':')
                .is_none_or(|(file, line)| file.is_empty() || line.parse::<u32>().is_err())
        }) {
            anyhow::bail!("--map-site {bad}: expected FILE:LINE, e.g. store.go:42");
        }
        Ok(WatchOptions {
            races: !self.no_races,
            duty_cycle: self.duty_cycle,
            duty_period: Duration::from_secs_f64(self.duty_period),
            map_sites: self.map_sites.clone(),
            report: self.report.clone(),
            quiet: self.quiet,
            duration: self.duration.map(Duration::from_secs_f64),
            metrics: self
                .metrics
                .as_deref()
                .map(|spec| metrics::parse_addr(spec, self.metrics_allow_remote))
                .transpose()?,
        })
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
    }
}

fn run(watch: &WatchArgs, command: &[OsString]) -> Result<u8> {
    process::require_root()?;
    let (program, args) = command.split_first().expect("clap requires a command");
    let options = watch.options()?;
    let stopped = StoppedChild::spawn(program, args)?;
    let pid = stopped.pid();
    let session = prepare(pid, options.races)
        .and_then(|(binary, probes)| Session::new(binary, probes, options));
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            // It never ran a single instruction: nothing is lost by not starting it.
            stopped.kill();
            return Err(e.context(format!("not starting {}", program.to_string_lossy())));
        }
    };
    let child = stopped.resume()?;
    let outcome = session.run(Target::Child(child))?;
    let code = outcome.exit.map(process::exit_code).unwrap_or(0);
    Ok(finding_code(watch, &outcome).unwrap_or(code.clamp(0, 255) as u8))
}

fn attach(pid: i32, watch: &WatchArgs) -> Result<u8> {
    process::require_root()?;
    let options = watch.options()?;
    let (binary, probes) = prepare(pid, options.races)?;
    let outcome = Session::new(binary, probes, options)?.run(Target::Pid(pid))?;
    Ok(finding_code(watch, &outcome).unwrap_or(0))
}

fn finding_code(watch: &WatchArgs, outcome: &Outcome) -> Option<u8> {
    (watch.fail_on_finding && !outcome.findings.is_empty()).then_some(FOUND_EXIT_CODE)
}

/// Inspects the process's binary and attaches the probes.
fn prepare(pid: i32, races: bool) -> Result<(Arc<GoBinary>, Probes)> {
    let exe = process::exe_of(pid)?;
    let binary = Arc::new(GoBinary::open(&exe).with_context(|| format!("pid {pid}"))?);
    for d in binary.degradations() {
        eprintln!("mapwatch: degraded: {d}");
    }
    let mut probes = Probes::load(&binary, races)?;
    probes.attach(&binary, &exe, pid)?;
    let emulated = probes.attached().iter().filter(|p| p.emulated).count();
    eprintln!(
        "mapwatch: watching pid {pid} ({}, {} maps): {} probes ({} on emulated instructions)",
        binary.go_version().raw,
        crate::inspect::abi_name(binary.map_abi()),
        probes.attached().len(),
        emulated
    );
    Ok((binary, probes))
}

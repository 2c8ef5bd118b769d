//! One watch of one process, shared by `run`, `attach` and every process of the daemon:
//! [`prepare`] inspects the binary and attaches the probes; [`Watch::run`] reads events until
//! the target ends (or a signal, or the time limit), feeds them to the [`Analysis`], and
//! detaches; a summary ends it.

use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gotarget::GoBinary;

use crate::detect::analysis::{Analysis, GOROUTINES_REMEMBERED};
use crate::event::Record;
use crate::export::audit::AuditLog;
use crate::export::metrics::Metrics;
use crate::probe::{Counters, EventReader, Probes, SitePolicy, BATCH};
use crate::report::{Finding, FindingKind};
use crate::sink::Sinks;
use crate::{process, signals};

/// How often the status line, the metrics and the op series are refreshed: often enough
/// that a scrape of a target that dies a second into the watch still sees its counts.
const TICK: Duration = Duration::from_millis(250);
/// How long the reader sleeps between looks at the ring buffer when nothing wakes it.
const POLL: Duration = Duration::from_millis(100);

/// What the user asked of a watch.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// Where to write findings as JSON lines.
    pub report: Option<PathBuf>,
    /// No live status line and no per-finding output on the terminal.
    pub quiet: bool,
    /// Stop watching after this long.
    pub duration: Option<Duration>,
    /// Feed these Prometheus metrics (served by the caller) while watching.
    pub metrics: Option<Metrics>,
    /// No live status line even on a terminal (several watches share it in the daemon).
    pub no_status_line: bool,
    /// Write the HTML report here at the end.
    pub html: Option<PathBuf>,
    /// Record findings (and sampled operations) in this audit log.
    pub audit: Option<AuditLog>,
    /// Look for races (happens-before analysis) besides conflicts.
    pub races: bool,
    /// Map-access probes attached this share of the time (percent), with `duty_period`.
    pub duty_cycle: Option<u8>,
    /// Length of one duty cycle.
    pub duty_period: Duration,
    /// Only maps made at these source positions (`file.go:LINE`, matched as a suffix).
    pub map_sites: Vec<String>,
    /// Probe the runtime's map functions (every map of the process) instead of the calls to
    /// them from watched code.
    pub all_maps: bool,
}

/// The process being watched.
pub enum Target {
    /// A child mapwatch started (`run`): waited for, its status returned, signals passed on.
    Child(Child),
    /// A process mapwatch attached to (`attach`, the daemon).
    Pid(i32),
}

impl Target {
    /// Whether the watch should end now; a child's exit status is kept in `exit`.
    fn ended(&mut self, exit: &mut Option<ExitStatus>) -> Result<bool> {
        match self {
            Target::Child(child) => {
                if let Some(sig) = signals::take() {
                    // The child decides how to end; its exit ends the watch.
                    unsafe { libc::kill(child.id() as i32, sig) };
                }
                *exit = child.try_wait()?;
                Ok(exit.is_some())
            }
            // A stop request is not taken: every watch of a daemon ends on it, and the daemon.
            Target::Pid(pid) => Ok(signals::stop_requested() || !process::is_alive(*pid)),
        }
    }
}

/// How a watch ended.
#[derive(Debug)]
pub struct Outcome {
    /// Distinct findings.
    pub findings: Vec<Finding>,
    /// The child's exit status (`run` only, when it ended).
    pub exit: Option<ExitStatus>,
}

/// A watch ready to run: probes attached, sinks open.
pub struct Watch {
    pid: i32,
    probes: Probes,
    analysis: Analysis,
    sinks: Sinks,
    opts: WatchOptions,
    /// The target's executable (read while the process exists: `/proc/PID/exe` goes with it).
    executable: PathBuf,
    /// Records read and not yet analysed (kept: a batch holds up to [`BATCH`]).
    records: Vec<Record>,
}

/// Inspects process `pid`'s binary, attaches the probes and opens the sinks.
pub fn prepare(pid: i32, opts: WatchOptions) -> Result<Watch> {
    let exe = process::exe_of(pid)?;
    let binary = Arc::new(GoBinary::open(&exe).with_context(|| format!("pid {pid}"))?);
    for d in binary.degradations() {
        eprintln!("mapwatch: degraded: {d}");
    }
    let mut probes = Probes::load(&binary, opts.races)?;
    let policy = if opts.all_maps {
        SitePolicy::Planned
    } else {
        SitePolicy::Calls
    };
    probes.attach(&binary, &exe, pid, policy).map_err(|e| {
        // The probes attach to /proc/PID/exe, which goes with the process: then say so
        // rather than leave the user the attach's "No such file or directory".
        if process::exe_of(pid).is_err() {
            e.context(format!(
                "pid {pid} exited while its probes were being attached"
            ))
        } else {
            e
        }
    })?;
    let (attached, emulated) = probes.attached_count();
    eprintln!(
        "mapwatch: watching pid {pid} ({}, {} maps): {attached} probes ({emulated} on emulated instructions)",
        binary.go_version().raw,
        crate::inspect::abi_name(binary.map_abi()),
    );
    let executable =
        std::fs::read_link(binary.path()).unwrap_or_else(|_| binary.path().to_path_buf());
    let sinks = Sinks::open(&opts, &binary, &probes)?;
    let analysis = Analysis::new(binary, &probes, &opts);
    Ok(Watch {
        pid,
        probes,
        analysis,
        sinks,
        opts,
        executable,
        records: Vec::new(),
    })
}

impl Watch {
    /// Watches until the target ends, a signal, or the time limit; then detaches.
    pub fn run(mut self, mut target: Target) -> Result<Outcome> {
        signals::install();
        let pid = self.pid;
        if let Target::Pid(_) = target {
            self.analysis.joined_late();
        }
        let mut reader = self.probes.reader()?;
        let start = Instant::now();
        let mut last_tick = start;
        let mut last_counters = Counters::default();
        let mut exit = None;
        let mut wait = POLL;
        let mut duty = self
            .opts
            .duty_cycle
            .map(|pct| DutyCycle::new(pct, self.opts.duty_period));
        loop {
            if let Some(duty) = &mut duty {
                if let Err(e) = self.probes.set_map_access_probes(duty.on_now()) {
                    // The probes attach to /proc/PID/exe, which goes with the process as it
                    // exits: then the exit checks below end the watch, as any exit does.
                    if process::exe_of(pid).is_ok() {
                        return Err(e);
                    }
                }
            }
            // Behind the producer: read on without waiting.
            wait = if self.read(&mut reader, wait)? == BATCH {
                Duration::ZERO
            } else {
                POLL
            };
            if target.ended(&mut exit)? {
                break;
            }
            if self.opts.duration.is_some_and(|d| start.elapsed() >= d) {
                break;
            }
            if last_tick.elapsed() >= TICK {
                let counters = self.probes.counters()?;
                let rate = (counters.total_ops() - last_counters.total_ops()) as f64
                    / last_tick.elapsed().as_secs_f64();
                self.tick(&counters);
                self.sinks.status(&format!(
                    "mapwatch: pid {pid} | {rate:.0} map ops/s | {} maps | {} goroutines | {} findings | {} drops",
                    self.analysis.maps_seen(),
                    self.analysis.goroutines_seen(),
                    self.analysis.findings().len(),
                    counters.drops
                ));
                last_counters = counters;
                last_tick = Instant::now();
            }
        }
        // Counted up to the end of the watch, not through the detach.
        let counters = self.probes.counters()?;
        self.probes.detach();
        // What the target did in its last moments is still in the ring buffer.
        let mut records = std::mem::take(&mut self.records);
        reader.drain_all(&mut records)?;
        self.analyse(records)?;
        self.sinks.clear_status();
        if reader.malformed() > 0 {
            eprintln!(
                "mapwatch: {} event records did not decode (layout mismatch)",
                reader.malformed()
            );
        }
        self.tick(&counters);
        self.sinks.stop_metrics();
        self.print_summary(start.elapsed(), &counters, exit);
        let findings = self.analysis.findings();
        self.sinks.finish(findings, || {
            format!(
                "pid {pid}: {} ({})",
                self.executable.display(),
                self.analysis.binary().go_version().raw
            )
        })?;
        Ok(Outcome {
            findings: findings.to_vec(),
            exit,
        })
    }

    /// Waits up to `wait` for records and analyses them; returns how many there were.
    fn read(&mut self, reader: &mut EventReader, wait: Duration) -> Result<usize> {
        let mut records = std::mem::take(&mut self.records);
        let n = reader.drain(wait, &mut records)?;
        self.analyse(records)?;
        Ok(n)
    }

    /// Analyses `records`, then keeps the emptied buffer for the next read.
    fn analyse(&mut self, mut records: Vec<Record>) -> Result<()> {
        for record in records.drain(..) {
            self.analysis.handle(record, &mut self.sinks)?;
        }
        self.records = records;
        Ok(())
    }

    /// Hands the operations counted since the last tick, and the counters, to the sinks.
    fn tick(&mut self, counters: &Counters) {
        let ops = self.analysis.drain_ops();
        let analysis = &self.analysis;
        self.sinks.ops(&ops, counters, || analysis.gauges());
    }

    fn print_summary(&self, elapsed: Duration, c: &Counters, exit: Option<ExitStatus>) {
        let by_op: Vec<String> = gotarget::MapOp::ALL
            .iter()
            .map(|&op| (op, c.ops[op as usize]))
            .filter(|&(_, n)| n > 0)
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        let goroutines = match self.analysis.goroutines_seen() {
            n if n >= GOROUTINES_REMEMBERED => format!("{GOROUTINES_REMEMBERED}+"),
            n => n.to_string(),
        };
        let findings = self.analysis.findings();
        let count = |kind| findings.iter().filter(|f| f.kind == kind).count();
        eprintln!(
            "mapwatch: watched pid {} ({}) for {:.1}s: {} map ops ({}), {} sync ops, {} maps, {goroutines} goroutines, {} findings ({} conflicts, {} races; {} occurrences), {} events dropped",
            self.pid,
            self.analysis.binary().go_version().raw,
            elapsed.as_secs_f64(),
            c.total_ops(),
            if by_op.is_empty() { "none".to_string() } else { by_op.join(", ") },
            c.sync,
            self.analysis.maps_seen(),
            findings.len(),
            count(FindingKind::Conflict),
            count(FindingKind::Race),
            self.analysis.occurrences(),
            c.drops,
        );
        if let Some(pct) = self.opts.duty_cycle {
            eprintln!("mapwatch: map accesses were watched {pct}% of the time (--duty-cycle)");
        }
        if c.drops > 0 {
            eprintln!(
                "mapwatch: warning: {} events were dropped (ring buffer full); op counts stay exact, but findings in those events were missed",
                c.drops
            );
        }
        if let Some(status) = exit {
            eprintln!("mapwatch: target {}", process::describe_exit(status));
        }
    }
}

/// Switches map-access probes on for `pct` percent of each period.
struct DutyCycle {
    on_for: Duration,
    period: Duration,
    start: Instant,
}

impl DutyCycle {
    fn new(pct: u8, period: Duration) -> DutyCycle {
        DutyCycle {
            on_for: period.mul_f64(f64::from(pct.min(100)) / 100.0),
            period,
            start: Instant::now(),
        }
    }

    /// Whether the probes should be on now (the first part of every period).
    fn on_now(&mut self) -> bool {
        let elapsed = self.start.elapsed();
        if elapsed >= self.period {
            self.start += self.period * (elapsed.as_nanos() / self.period.as_nanos()) as u32;
        }
        self.start.elapsed() < self.on_for
    }
}

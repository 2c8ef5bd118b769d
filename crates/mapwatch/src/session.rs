//! One watch: probes on a process, events read until it ends (or Ctrl-C, or a time limit),
//! findings sent to the terminal and the report as they happen, a summary at the end (and the
//! HTML report, when asked for).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use gotarget::GoBinary;

use crate::detect::conflict::{conflict_finding, Describer};
use crate::detect::findings::FindingLog;
use crate::detect::maps::MapRegistry;
use crate::event::{MapEvent, Record};
use crate::export::audit::{AuditLog, TargetAudit};
use crate::export::metrics::{Metrics, MetricsFeed};
use crate::opcount::{OpSeries, OpTally};
use crate::probe::{Counters, Probes, BATCH};
use crate::process;
use crate::report::html;
use crate::report::jsonl::JsonlReport;
use crate::report::terminal::{print_finding, StatusLine};
use crate::report::Finding;
use crate::stacks::StackResolver;

/// How long the reader sleeps between looks at the ring buffer when nothing wakes it.
const POLL: Duration = Duration::from_millis(100);
/// Goroutine ids remembered for the "goroutines seen" figure; past this it reads "N+".
const GOROUTINES_REMEMBERED: usize = 1 << 20;

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
}

/// The process being watched.
pub enum Target {
    /// A child mapwatch started (`run`): waited for, its status returned.
    Child(Child),
    /// A process mapwatch attached to (`attach`).
    Pid(i32),
}

impl Target {
    fn pid(&self) -> i32 {
        match self {
            Target::Child(c) => c.id() as i32,
            Target::Pid(p) => *p,
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
    /// BPF counters at the end.
    pub counters: Counters,
}

/// The signal that asked mapwatch to stop (0: none).
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
}

/// Whether SIGINT or SIGTERM asked mapwatch to stop (once [`install_signal_handlers`] ran).
pub fn stop_requested() -> bool {
    SIGNALLED.load(Ordering::SeqCst) != 0
}

/// Routes SIGINT and SIGTERM to [`stop_requested`] (and, for a child, on to it).
pub fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// A watch in progress.
pub struct Session {
    binary: Arc<GoBinary>,
    probes: Probes,
    opts: WatchOptions,
    maps: MapRegistry,
    log: FindingLog,
    resolver: StackResolver,
    report: Option<JsonlReport>,
    goroutines: HashSet<u64>,
    status: StatusLine,
    metrics: Option<MetricsFeed>,
    /// Map operations by op and map site since the last tick.
    tally: OpTally,
    /// Operations per second per map site, kept for the HTML report.
    series: Option<OpSeries>,
    /// The target's executable (read while the process exists: `/proc/PID/exe` goes with it).
    executable: PathBuf,
    audit: Option<TargetAudit>,
}

impl Session {
    /// A session over attached `probes` on a process running `binary`.
    pub fn new(binary: Arc<GoBinary>, probes: Probes, opts: WatchOptions) -> Result<Session> {
        let report = opts
            .report
            .as_deref()
            .map(JsonlReport::create)
            .transpose()?;
        let metrics = opts
            .metrics
            .as_ref()
            .map(|m| m.feed(probes.attached().len()));
        let audit = opts
            .audit
            .as_ref()
            .map(|log| log.for_target(&binary.go_version().raw))
            .transpose()?;
        let executable =
            std::fs::read_link(binary.path()).unwrap_or_else(|_| binary.path().to_path_buf());
        Ok(Session {
            audit,
            executable,
            metrics,
            resolver: StackResolver::new(Arc::clone(&binary)),
            binary,
            probes,
            maps: MapRegistry::default(),
            log: FindingLog::default(),
            report,
            goroutines: HashSet::new(),
            status: StatusLine::new(opts.quiet || opts.no_status_line),
            tally: OpTally::default(),
            series: opts.html.as_ref().map(|_| OpSeries::default()),

            opts,
        })
    }

    /// Watches until the target ends, a signal, or the time limit; then detaches.
    pub fn run(mut self, mut target: Target) -> Result<Outcome> {
        install_signal_handlers();
        let pid = target.pid();
        let mut reader = self.probes.reader()?;
        let mut records = Vec::new();
        let start = Instant::now();
        let mut last_tick = start;
        let mut last_counters = Counters::default();
        let mut exit = None;
        let mut wait = POLL;
        loop {
            // Behind the producer: read on without waiting.
            wait = if reader.drain(wait, &mut records)? == BATCH {
                Duration::ZERO
            } else {
                POLL
            };
            for record in records.drain(..) {
                self.handle(record)?;
            }
            match &mut target {
                Target::Child(child) => {
                    let sig = SIGNALLED.swap(0, Ordering::SeqCst);
                    if sig != 0 {
                        // The child decides how to end; its exit ends the watch.
                        unsafe { libc::kill(pid, sig) };
                    }
                    if let Some(status) = child.try_wait()? {
                        exit = Some(status);
                        break;
                    }
                }
                Target::Pid(_) => {
                    // Not taken: every watch of a daemon stops on it, and the daemon too.
                    if stop_requested() || !process::is_alive(pid) {
                        break;
                    }
                }
            }
            if self.opts.duration.is_some_and(|d| start.elapsed() >= d) {
                break;
            }
            if last_tick.elapsed() >= Duration::from_secs(1) {
                let counters = self.probes.counters()?;
                let rate = (counters.total_ops() - last_counters.total_ops()) as f64
                    / last_tick.elapsed().as_secs_f64();
                self.flush_ops(start.elapsed(), &counters);
                self.status.draw(&format!(
                    "mapwatch: pid {pid} | {rate:.0} map ops/s | {} maps | {} goroutines | {} findings | {} drops",
                    self.maps.len(),
                    self.goroutines.len(),
                    self.log.findings().len(),
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
        reader.drain_all(&mut records)?;
        for record in records.drain(..) {
            self.handle(record)?;
        }
        self.status.clear();
        if reader.malformed() > 0 {
            eprintln!(
                "mapwatch: {} event records did not decode (layout mismatch)",
                reader.malformed()
            );
        }
        self.flush_ops(start.elapsed(), &counters);
        // The process is no longer watched: its share of the gauges goes.
        self.metrics = None;
        self.print_summary(pid, start.elapsed(), &counters, exit);
        if let Some(report) = &mut self.report {
            report.finish(self.log.findings())?;
        }
        self.write_html(pid)?;
        Ok(Outcome {
            findings: self.log.findings().to_vec(),
            exit,
            counters,
        })
    }

    fn handle(&mut self, record: Record) -> Result<()> {
        let (ev, conflict) = match record {
            Record::Op(ev) => (ev, None),
            Record::Conflict {
                access,
                stack,
                writer,
            } => (access, Some((stack, writer))),
        };
        let made_at = self.maps.observe(&ev).and_then(|info| info.made_at);
        if !ev.runtime_fatal {
            self.tally.count(ev.op, made_at);
            self.audit_op(&ev, made_at)?;
        }
        if self.goroutines.len() < GOROUTINES_REMEMBERED {
            self.goroutines.insert(ev.goid);
        }
        let Some((stack, writer)) = conflict else {
            if ev.runtime_fatal {
                self.status.clear();
                eprintln!(
                    "mapwatch: the Go runtime caught goroutine {} in a conflict on map {:#x}, but no other goroutine's write to it was recorded",
                    ev.goid, ev.map
                );
            }
            return Ok(());
        };
        let mut describer = Describer {
            binary: &self.binary,
            resolver: &mut self.resolver,
            maps: &self.maps,
        };
        let finding = conflict_finding(
            &ev,
            &stack,
            &writer,
            &mut describer,
            &self.binary.go_version().raw,
        );
        if let Some(feed) = &self.metrics {
            feed.metrics().count_finding(&finding);
        }
        if let Some(audit) = &mut self.audit {
            audit.finding(&finding)?;
        }
        if let Some(new) = self.log.add(finding) {
            if let Some(report) = &mut self.report {
                report.append(new)?;
            }
            if !self.opts.quiet {
                self.status.clear();
                print_finding(&mut std::io::stderr(), new);
            }
        }
        Ok(())
    }

    /// Offers an operation to the audit log (which keeps one in N).
    fn audit_op(&mut self, ev: &MapEvent, made_at: Option<u64>) -> Result<()> {
        let Some(audit) = &mut self.audit else {
            return Ok(());
        };
        let resolver = &mut self.resolver;
        audit.op(ev, || made_at.and_then(|ret| resolver.call_site_line(ret)))
    }

    /// Hands the operations counted since the last tick to the metrics and the series (as
    /// the second that just ended, `elapsed` into the watch).
    fn flush_ops(&mut self, elapsed: Duration, counters: &Counters) {
        let resolver = &mut self.resolver;
        let ops = self.tally.drain(|ret| resolver.call_site_line(ret));
        if let Some(series) = &mut self.series {
            series.add_all(
                (elapsed.as_secs_f64().ceil() as u64).saturating_sub(1),
                &ops,
            );
        }
        if let Some(feed) = &mut self.metrics {
            feed.metrics().add_ops(&ops);
            feed.update(counters, self.goroutines.len(), self.maps.len());
        }
    }

    fn write_html(&self, pid: i32) -> Result<()> {
        let (Some(path), Some(series)) = (&self.opts.html, &self.series) else {
            return Ok(());
        };
        let title = format!(
            "pid {pid}: {} ({})",
            self.executable.display(),
            self.binary.go_version().raw
        );
        html::write(
            path,
            &html::Page {
                title: &title,
                findings: self.log.findings(),
                ops: html::OpsOverTime::Series(series),
            },
        )?;
        eprintln!("mapwatch: HTML report in {}", path.display());
        Ok(())
    }

    fn print_summary(&self, pid: i32, elapsed: Duration, c: &Counters, exit: Option<ExitStatus>) {
        let by_op: Vec<String> = gotarget::MapOp::ALL
            .iter()
            .map(|&op| (op, c.ops[op as usize]))
            .filter(|&(_, n)| n > 0)
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        let goroutines = if self.goroutines.len() >= GOROUTINES_REMEMBERED {
            format!("{}+", GOROUTINES_REMEMBERED)
        } else {
            self.goroutines.len().to_string()
        };
        eprintln!(
            "mapwatch: watched pid {pid} ({}) for {:.1}s: {} map ops ({}), {} maps, {goroutines} goroutines, {} findings ({} occurrences), {} events dropped",
            self.binary.go_version().raw,
            elapsed.as_secs_f64(),
            c.total_ops(),
            if by_op.is_empty() { "none".to_string() } else { by_op.join(", ") },
            self.maps.len(),
            self.log.findings().len(),
            self.log.occurrences(),
            c.drops,
        );
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

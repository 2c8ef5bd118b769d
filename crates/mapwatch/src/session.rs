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
use crate::detect::racewatch::{RaceOccurrence, RaceScope, RaceWatch};
use crate::event::{MapEvent, Record};
use crate::export::audit::{AuditLog, TargetAudit};
use crate::export::metrics::{Metrics, MetricsFeed};
use crate::opcount::{OpSeries, OpTally};
use crate::probe::{Counters, Probes, BATCH};
use crate::process;
use crate::report::html;
use crate::report::jsonl::JsonlReport;
use crate::report::terminal::{print_finding, StatusLine};
use crate::report::{Finding, FindingKind};
use crate::stacks::StackResolver;

/// How often the status line, the metrics and the op series are refreshed: often enough
/// that a scrape of a target that dies a second into the watch still sees its counts.
const TICK: Duration = Duration::from_millis(250);
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
    /// Look for races (happens-before analysis) besides conflicts.
    pub races: bool,
    /// Map-access probes attached this share of the time (percent), with `duty_period`.
    pub duty_cycle: Option<u8>,
    /// Length of one duty cycle.
    pub duty_period: Duration,
    /// Only maps made at these source positions (`file.go:LINE`, matched as a suffix).
    pub map_sites: Vec<String>,
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
    /// Race watching, when races are looked for and can be told apart.
    races: Option<RaceWatch>,
    /// Reused buffer of what the race detector found at one access.
    race_occurrences: Vec<RaceOccurrence>,
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
        let mut notes = Vec::new();
        let races_possible = probes.sync_plan_inlined_known();
        if opts.races && !races_possible {
            eprintln!(
                "mapwatch: races: off (no DWARF: inlined sync.Mutex and friends cannot be seen, so locked accesses would look like races); conflicts are still reported"
            );
        }
        if opts.races && races_possible {
            for why in probes.unobservable_sync() {
                notes.push(format!("unobservable synchronisation: {why}"));
            }
            if let Some(pct) = opts.duty_cycle {
                notes.push(format!(
                    "sampled: map accesses watched {pct}% of the time ({:.1}s on per {:.0}s); synchronisation watched throughout",
                    opts.duty_period.as_secs_f64() * f64::from(pct) / 100.0,
                    opts.duty_period.as_secs_f64()
                ));
            }
            if !opts.map_sites.is_empty() {
                notes.push(format!(
                    "sampled: only maps made at {}",
                    opts.map_sites.join(", ")
                ));
            }
            notes.push("races on maps made by (or, for maps made before the watch, used by) Go's standard library are not looked for".into());
        }
        Ok(Session {
            audit,
            executable,
            tally: OpTally::starting_at(crate::clock::monotonic_ns()),
            series: opts.html.as_ref().map(|_| OpSeries::default()),
            races: (opts.races && races_possible).then(|| {
                RaceWatch::new(RaceScope {
                    map_sites: opts.map_sites.clone(),
                    notes,
                })
            }),
            race_occurrences: Vec::new(),
            metrics,
            resolver: StackResolver::new(Arc::clone(&binary)),
            binary,
            probes,
            maps: MapRegistry::default(),
            log: FindingLog::default(),
            report,
            goroutines: HashSet::new(),
            status: StatusLine::new(opts.quiet || opts.no_status_line),
            opts,
        })
    }

    /// Watches until the target ends, a signal, or the time limit; then detaches.
    pub fn run(mut self, mut target: Target) -> Result<Outcome> {
        install_signal_handlers();
        let pid = target.pid();
        if let (Target::Pid(_), Some(races)) = (&target, &mut self.races) {
            races.joined_late();
        }
        let mut reader = self.probes.reader()?;
        let mut records = Vec::new();
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
            if last_tick.elapsed() >= TICK {
                let counters = self.probes.counters()?;
                let rate = (counters.total_ops() - last_counters.total_ops()) as f64
                    / last_tick.elapsed().as_secs_f64();
                self.flush_ops(&counters);
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
        self.flush_ops(&counters);
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
            Record::Sync(ev) => {
                if let Some(races) = &mut self.races {
                    races.sync(&ev);
                }
                return Ok(());
            }
            Record::Op(ev) => (ev, None),
            Record::Conflict {
                access,
                stack,
                writer,
            } => (access, Some((stack, writer))),
        };
        let made_at = self.maps.observe(&ev).and_then(|info| info.made_at);
        if !ev.runtime_fatal {
            self.tally.count(ev.op, made_at, ev.ts);
            self.audit_op(&ev, made_at)?;
        }
        if self.goroutines.len() < GOROUTINES_REMEMBERED {
            self.goroutines.insert(ev.goid);
        }
        self.check_races(&ev, made_at)?;
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
        self.record_finding(finding)
    }

    /// Sends a finding to the metrics and the audit log, and, when it is new, to the report
    /// and the terminal.
    fn record_finding(&mut self, finding: Finding) -> Result<()> {
        let ts_ns = finding.second.ts_ns;
        match self.log.add_indexed(finding) {
            (i, true) => {
                self.sink_occurrence(i, true, ts_ns)?;
                self.report_new(i)
            }
            (i, false) => self.sink_occurrence(i, false, ts_ns),
        }
    }

    /// Counts one occurrence (at `ts_ns`) of finding `index` in the metrics and the audit log.
    fn sink_occurrence(&mut self, index: usize, new: bool, ts_ns: u64) -> Result<()> {
        let finding = &self.log.findings()[index];
        if let Some(feed) = &self.metrics {
            feed.metrics().count_finding(finding);
        }
        if let Some(audit) = &mut self.audit {
            audit.finding(finding, new, ts_ns)?;
        }
        Ok(())
    }

    /// Writes new finding `index` to the report and the terminal, and brings the metrics'
    /// event counters up to it: a scrape that counts the finding counts the operations that
    /// made it (else, until the next tick, a target that died within one left its findings
    /// beside `mapwatch_events_total 0` on the last page served).
    fn report_new(&mut self, index: usize) -> Result<()> {
        if self.metrics.is_some() {
            let counters = self.probes.counters()?;
            self.update_metrics(&counters);
        }
        let new = &self.log.findings()[index];
        if let Some(report) = &mut self.report {
            report.append(new)?;
        }
        if !self.opts.quiet {
            self.status.clear();
            print_finding(&mut std::io::stderr(), new);
        }
        Ok(())
    }

    /// Runs the race detector over a map access and records what it finds.
    fn check_races(&mut self, ev: &MapEvent, made_at: Option<u64>) -> Result<()> {
        let Some(races) = &mut self.races else {
            return Ok(());
        };
        let mut describer = Describer {
            binary: &self.binary,
            resolver: &mut self.resolver,
            maps: &self.maps,
        };
        let mut found = std::mem::take(&mut self.race_occurrences);
        races.access(ev, made_at, &mut describer, &mut found);
        for occurrence in found.drain(..) {
            match occurrence {
                RaceOccurrence::Repeat(i) => {
                    if self.log.repeat(i).is_some() {
                        self.sink_occurrence(i, false, ev.ts)?;
                    }
                }
                RaceOccurrence::New { finding, site } => {
                    let (i, new) = self.log.add_indexed(*finding);
                    if let Some(races) = &mut self.races {
                        races.remember(site, i);
                    }
                    self.sink_occurrence(i, new, ev.ts)?;
                    if new {
                        self.report_new(i)?;
                    }
                }
            }
        }
        self.race_occurrences = found;
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

    /// Hands the operations counted since the last tick to the metrics and the series.
    fn flush_ops(&mut self, counters: &Counters) {
        let resolver = &mut self.resolver;
        let ops = self.tally.drain(|ret| resolver.call_site_line(ret));
        if let Some(series) = &mut self.series {
            series.add_all(&ops);
        }
        if let Some(feed) = &self.metrics {
            feed.metrics().add_ops(&ops);
        }
        self.update_metrics(counters);
    }

    /// Brings the metrics' event counters and this process's gauges up to date.
    fn update_metrics(&mut self, counters: &Counters) {
        if let Some(feed) = &mut self.metrics {
            feed.update(counters, self.goroutines.len(), self.maps.len());
            if let Some(races) = &self.races {
                feed.update_detector(races.size());
            }
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
        let count = |kind| {
            self.log
                .findings()
                .iter()
                .filter(|f| f.kind == kind)
                .count()
        };
        eprintln!(
            "mapwatch: watched pid {pid} ({}) for {:.1}s: {} map ops ({}), {} sync ops, {} maps, {goroutines} goroutines, {} findings ({} conflicts, {} races; {} occurrences), {} events dropped",
            self.binary.go_version().raw,
            elapsed.as_secs_f64(),
            c.total_ops(),
            if by_op.is_empty() { "none".to_string() } else { by_op.join(", ") },
            c.sync,
            self.maps.len(),
            self.log.findings().len(),
            count(FindingKind::Conflict),
            count(FindingKind::Race),
            self.log.occurrences(),
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

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
use crate::probe::{Counters, EventReader, HitCost, Probes, SitePolicy, BATCH};
use crate::report::{Finding, FindingKind};
use crate::sampling::{Budget, CostReading, Sampler};
use crate::sink::Sinks;
use crate::{process, signals};

/// How often the status line, the metrics and the op series are refreshed: often enough
/// that a scrape of a target that dies a second into the watch still sees its counts.
const TICK: Duration = Duration::from_millis(250);
/// How long the reader sleeps between looks at the ring buffer when nothing wakes it.
const POLL: Duration = Duration::from_millis(100);
/// Records analysed between two looks at the sampling schedule (a few ms of work).
const SCHEDULE_CHECK_EVERY: usize = 4096;

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
    /// Map-access and synchronisation probes attached this share of the time (percent), with
    /// `duty_period`.
    pub duty_cycle: Option<u8>,
    /// Keep the probes' cost within this percentage of the target's CPU time (adapting the
    /// share of each `duty_period` they are attached).
    pub overhead_budget: Option<f64>,
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
    /// Records the BPF side could not write (ring buffer full), as last read.
    drops_seen: u64,
    /// Reads still to analyse blind since records were last found dropped.
    blind_reads: u8,
    /// The share of the watch so far that the sampled probes were on.
    sampled_share: f64,
    /// The sampling schedule, when the watch samples.
    sampler: Option<Sampler>,
    /// The sampled probes came off: a barrier is due once what they recorded is analysed.
    barrier_pending: bool,
    /// What a probe hit costs here (calibrated for an overhead budget).
    hit_cost: Option<HitCost>,
    /// When the watch ends (`--duration`).
    deadline: Option<Instant>,
}

/// Inspects process `pid`'s binary, attaches the probes and opens the sinks.
pub fn prepare(pid: i32, opts: WatchOptions) -> Result<Watch> {
    let exe = process::exe_of(pid)?;
    let binary = Arc::new(GoBinary::open(&exe).with_context(|| format!("pid {pid}"))?);
    for d in binary.degradations() {
        eprintln!("mapwatch: degraded: {d}");
    }
    let mut probes = Probes::load(&binary, opts.races)?;
    // Calibrated before the probes go on, so that the target does not pay for the time it
    // takes.
    let hit_cost = match opts.overhead_budget {
        Some(_) => {
            probes.enable_run_stats()?;
            Some(probes.calibrate_hit_cost()?)
        }
        None => None,
    };
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
    let sinks = Sinks::open(pid, &opts, &binary, &probes)?;
    let analysis = Analysis::new(binary, &probes, &opts);
    Ok(Watch {
        pid,
        probes,
        analysis,
        sinks,
        opts,
        executable,
        records: Vec::new(),
        drops_seen: 0,
        blind_reads: 0,
        sampled_share: 1.0,
        sampler: None,
        barrier_pending: false,
        hit_cost,
        deadline: None,
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
        self.deadline = self.opts.duration.map(|d| start + d);
        let mut last_tick = start;
        let mut last_counters = Counters::default();
        let mut exit = None;
        let mut wait = POLL;
        self.sampler = self.sampler()?;
        loop {
            self.follow_schedule()?;
            // Behind the producer: read on without waiting.
            wait = if self.read(&mut reader, wait)? == BATCH {
                Duration::ZERO
            } else {
                POLL
            };
            if target.ended(&mut exit)? {
                break;
            }
            if self.past_deadline() {
                break;
            }
            if last_tick.elapsed() >= TICK {
                let counters = self.probes.counters()?;
                let rate = (counters.total_ops() - last_counters.total_ops()) as f64
                    / last_tick.elapsed().as_secs_f64();
                self.tick(&counters);
                let sampled = self.sampler.as_ref().map_or(String::new(), |s| {
                    format!(" | watching {:.1}% of the time", s.duty() * 100.0)
                });
                self.sinks.status(&format!(
                    "mapwatch: pid {pid} | {rate:.0} map ops/s | {} maps | {} goroutines | {} findings | {} drops{sampled}",
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
        self.sampler = None;
        self.probes.detach();
        // What the target did in its last moments is still in the ring buffer.
        while self.read(&mut reader, Duration::ZERO)? == BATCH {}
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

    /// The schedule of the sampled probes, when the watch samples.
    fn sampler(&mut self) -> Result<Option<Sampler>> {
        let period = self.opts.duty_period;
        if let (Some(pct), Some(hit)) = (self.opts.overhead_budget, self.hit_cost) {
            eprintln!(
                "mapwatch: overhead budget {pct}%: a probe hit costs the kernel {} ns here, {} ns single-stepped (calibrated); the share of each {:.1}s watched adapts",
                hit.emulated.as_nanos(),
                hit.stepped.as_nanos(),
                period.as_secs_f64()
            );
            let budget = Budget::new(pct / 100.0, hit, period, self.cost_reading()?);
            return Ok(Some(Sampler::budgeted(budget, period)));
        }
        Ok(self.opts.duty_cycle.map(|pct| Sampler::fixed(pct, period)))
    }

    /// What the probes and the processes have cost so far (for an overhead budget).
    fn cost_reading(&self) -> Result<CostReading> {
        let runs = self.probes.sampled_runs()?;
        Ok(CostReading {
            emulated_hits: runs.emulated,
            stepped_hits: runs.stepped,
            program_ns: runs.run_ns,
            mapwatch_cpu_ns: process::own_cpu_time_ns(),
            target_cpu_ns: process::cpu_time_ns(self.pid),
        })
    }

    /// Switches the sampled probes (map accesses and synchronisation) on or off as the
    /// schedule says. Called between chunks of analysis too, so that a reader behind a busy
    /// target does not keep the probes on past their time. A pause is a barrier, applied
    /// once everything recorded before it is analysed (see [`Watch::read`]).
    fn follow_schedule(&mut self) -> Result<()> {
        if self.past_deadline() {
            // The watch is over: no more switching (it takes time).
            return Ok(());
        }
        let Some(mut sampler) = self.sampler.take() else {
            return Ok(());
        };
        let on = sampler.on_now(|| self.cost_reading());
        let switched = on.and_then(|on| {
            // Not back on before the last pause's barrier: records from after it would be
            // analysed before it.
            if on != self.probes.sampled_probes_on() && !(on && self.barrier_pending) {
                // Off counts from the moment the probes start coming off.
                sampler.switched(false);
                self.switch_probes(on)?;
                sampler.switched(on);
                self.barrier_pending |= !on;
            }
            Ok(())
        });
        self.sampled_share = sampler.on_fraction();
        self.sampler = Some(sampler);
        switched
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn switch_probes(&mut self, on: bool) -> Result<()> {
        match self.probes.set_sampled_probes(on) {
            // The probes attach to /proc/PID/exe, which goes with the process as it exits:
            // then the watch's exit checks end it, as any exit does.
            Err(e) if process::exe_of(self.pid).is_ok() => Err(e),
            _ => Ok(()),
        }
    }

    /// Waits up to `wait` for records and analyses them; returns how many there were.
    ///
    /// When the BPF side dropped records since the last read, the records just read and the
    /// next read's are analysed blind (no race is judged among them; a barrier follows):
    /// the lost ones lie somewhere before the end of the next read, which starts after the
    /// drop was seen and reads up to the ring buffer's head.
    fn read(&mut self, reader: &mut EventReader, wait: Duration) -> Result<usize> {
        let n = self.read_once(reader, wait)?;
        if self.barrier_pending && self.probes.sampled_probes_settled() {
            // The probes are off: what they recorded is in the ring. They stay off until the
            // barrier (see `follow_schedule`), so this ends.
            while self.read_once(reader, Duration::ZERO)? == BATCH {}
            self.analysis.barrier();
            self.barrier_pending = false;
        }
        Ok(n)
    }

    fn read_once(&mut self, reader: &mut EventReader, wait: Duration) -> Result<usize> {
        let mut records = std::mem::take(&mut self.records);
        let n = reader.drain(wait, &mut records)?;
        let drops = self.probes.counters()?.drops;
        if drops > self.drops_seen {
            self.drops_seen = drops;
            self.blind_reads = 2;
        }
        self.analysis.set_observed(self.sampled_share, drops);
        self.analysis.set_blind(self.blind_reads > 0);
        self.analyse(records)?;
        if self.blind_reads > 0 {
            self.blind_reads -= 1;
            self.analysis.set_blind(self.blind_reads > 0);
        }
        Ok(n)
    }

    /// Analyses `records` (following the sampling schedule between chunks), then keeps the
    /// emptied buffer for the next read.
    fn analyse(&mut self, mut records: Vec<Record>) -> Result<()> {
        let mut done = 0;
        for record in records.drain(..) {
            self.analysis.handle(record, &mut self.sinks)?;
            done += 1;
            if done % SCHEDULE_CHECK_EVERY == 0 {
                self.follow_schedule()?;
            }
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
        let coverage = self.analysis.coverage();
        if coverage < 1.0 {
            eprintln!(
                "mapwatch: coverage {:.1}%: probes on {:.1}% of the time{}; each pause and each loss was taken as a barrier (races across one are missed, never invented)",
                coverage * 100.0,
                self.sampled_share * 100.0,
                match (self.opts.duty_cycle, self.opts.overhead_budget) {
                    (_, Some(pct)) => format!(" (--overhead-budget {pct})"),
                    (Some(pct), None) => format!(" (--duty-cycle {pct})"),
                    (None, None) => String::new(),
                }
            );
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

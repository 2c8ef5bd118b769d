//! A watch's analysis: decoded records in, findings out. It keeps the maps' identities, runs
//! the conflict and race detectors, and logs each finding once (repeats counted); every
//! occurrence goes to the [`Sinks`].

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use gotarget::GoBinary;

use super::conflict::{conflict_finding, Describer};
use super::findings::FindingLog;
use super::maps::MapRegistry;
use super::racewatch::{RaceOccurrence, RaceScope, RaceWatch};
use crate::event::{MapEvent, Record};
use crate::opcount::{OpTally, SiteOps};
use crate::probe::Probes;
use crate::report::Finding;
use crate::sink::{Gauges, Sinks};
use crate::stacks::StackResolver;
use crate::watch::WatchOptions;

/// Goroutine ids remembered for the "goroutines seen" figure; past this it reads "N+".
pub const GOROUTINES_REMEMBERED: usize = 1 << 20;

/// What one watch has learnt so far.
pub struct Analysis {
    binary: Arc<GoBinary>,
    maps: MapRegistry,
    log: FindingLog,
    resolver: StackResolver,
    goroutines: HashSet<u64>,
    /// Map operations by op and map site since the last [`Analysis::drain_ops`].
    tally: OpTally,
    /// Race watching, when races are looked for and can be told apart.
    races: Option<RaceWatch>,
    /// Reused buffer of what the race detector found at one access.
    race_occurrences: Vec<RaceOccurrence>,
    /// Records may be missing among the ones being read now: accesses are not judged.
    blind: bool,
    /// Map accesses judged, and not judged for being read blind.
    judged: u64,
    unjudged: u64,
    /// The share of the watch the sampled probes were on, and the records they dropped.
    sampled_share: f64,
    dropped: u64,
}

impl Analysis {
    /// The analysis of a watch of `binary` through `probes`, as `opts` asks.
    pub fn new(binary: Arc<GoBinary>, probes: &Probes, opts: &WatchOptions) -> Analysis {
        Analysis {
            races: race_watch(probes, opts),
            race_occurrences: Vec::new(),
            tally: OpTally::starting_at(crate::clock::monotonic_ns()),
            resolver: StackResolver::new(Arc::clone(&binary)),
            binary,
            maps: MapRegistry::default(),
            log: FindingLog::default(),
            goroutines: HashSet::new(),
            blind: false,
            judged: 0,
            unjudged: 0,
            sampled_share: 1.0,
            dropped: 0,
        }
    }

    /// Declares that records may be missing among those handled from now on (the ring
    /// buffer overflowed), or, with `false`, that none are missing after them. Accesses read
    /// blind are not judged for races: a lost synchronisation record among them could make a
    /// false race. Ending blindness is a [`barrier`](Analysis::barrier).
    pub fn set_blind(&mut self, blind: bool) {
        if self.blind && !blind {
            self.barrier();
        }
        self.blind = blind;
    }

    /// Everything handled so far happened before everything to come (a stretch of the run
    /// went unobserved): see [`RaceDetector::barrier`](super::race::RaceDetector::barrier).
    pub fn barrier(&mut self) {
        if let Some(races) = &mut self.races {
            races.barrier();
        }
    }

    /// Declares the share of the watch so far that the sampled probes were on, and how many
    /// records the BPF side has dropped.
    pub fn set_observed(&mut self, sampled_share: f64, dropped: u64) {
        self.sampled_share = sampled_share;
        self.dropped = dropped;
    }

    /// The share of the target's map accesses judged so far: those seen while the probes were
    /// on, less those read blind or dropped (a dropped record is counted as an access).
    pub fn coverage(&self) -> f64 {
        let seen = self.judged + self.unjudged + self.dropped;
        let judged = if seen == 0 {
            1.0
        } else {
            self.judged as f64 / seen as f64
        };
        self.sampled_share * judged
    }

    /// The watch began on a running process: what happened before it was not seen.
    pub fn joined_late(&mut self) {
        if let Some(races) = &mut self.races {
            races.joined_late();
        }
    }

    /// Takes in one record; what it finds goes to `sinks`.
    pub fn handle(&mut self, record: Record, sinks: &mut Sinks) -> Result<()> {
        let (ev, conflict) = match record {
            Record::Sync(ev) => {
                if let Some(races) = &mut self.races {
                    races.sync(&ev);
                }
                return Ok(());
            }
            Record::Op(ev) => (ev, None),
            Record::OpAtNewSite { access, stack } => {
                self.resolver
                    .remember_site(access.ret, access.caller, stack);
                (access, None)
            }
            Record::Conflict {
                access,
                stack,
                writer,
            } => (access, Some((stack, writer))),
        };
        let (made_at, renewed) = self
            .maps
            .observe(&ev)
            .map_or((None, false), |(info, renewed)| (info.made_at, renewed));
        if renewed && ev.op != gotarget::MapOp::Make {
            // A map whose making was not seen took the address (it has another seed).
            if let Some(races) = &mut self.races {
                races.forget_map(ev.pid, ev.map);
            }
        }
        if !ev.runtime_fatal {
            self.tally.count(ev.op, made_at, ev.ts);
            let resolver = &mut self.resolver;
            sinks.op(&ev, || made_at.and_then(|ret| resolver.call_site_line(ret)))?;
        }
        if self.goroutines.len() < GOROUTINES_REMEMBERED {
            self.goroutines.insert(ev.goid);
        }
        let is_access = ev.op != gotarget::MapOp::Make && !ev.runtime_fatal;
        if is_access && self.blind && self.races.is_some() {
            self.unjudged += 1;
        } else {
            self.judged += u64::from(is_access);
            self.check_races(&ev, made_at, sinks)?;
        }
        let Some((stack, writer)) = conflict else {
            if ev.runtime_fatal {
                sinks.clear_status();
                eprintln!(
                    "mapwatch: the Go runtime caught goroutine {} in a conflict on map {:#x}, but no other goroutine's write to it was recorded",
                    ev.goid, ev.map
                );
            }
            return Ok(());
        };
        let finding = conflict_finding(
            &ev,
            &stack,
            &writer,
            &mut Describer {
                binary: &self.binary,
                resolver: &mut self.resolver,
                maps: &self.maps,
            },
            &self.binary.go_version().raw,
        );
        self.record(finding, sinks).map(|_| ())
    }

    /// Runs the race detector over a map access and records what it finds.
    fn check_races(
        &mut self,
        ev: &MapEvent,
        made_at: Option<u64>,
        sinks: &mut Sinks,
    ) -> Result<()> {
        let Some(races) = &mut self.races else {
            return Ok(());
        };
        let mut found = std::mem::take(&mut self.race_occurrences);
        races.access(
            ev,
            made_at,
            &mut Describer {
                binary: &self.binary,
                resolver: &mut self.resolver,
                maps: &self.maps,
            },
            &mut found,
        );
        for occurrence in found.drain(..) {
            match occurrence {
                RaceOccurrence::Repeat(i) => {
                    if self.log.repeat(i).is_some() {
                        self.send(i, false, ev.ts, sinks)?;
                    }
                }
                RaceOccurrence::New { finding, site } => {
                    let i = self.record(*finding, sinks)?;
                    if let Some(races) = &mut self.races {
                        races.remember(site, i);
                    }
                }
            }
        }
        self.race_occurrences = found;
        Ok(())
    }

    /// Logs a finding and sends the occurrence to `sinks`; returns its index in the log.
    fn record(&mut self, finding: Finding, sinks: &mut Sinks) -> Result<usize> {
        let ts_ns = finding.second.ts_ns;
        let (i, new) = self.log.add(finding);
        self.send(i, new, ts_ns, sinks)?;
        Ok(i)
    }

    /// Sends an occurrence of logged finding `index` to `sinks`.
    fn send(&self, index: usize, new: bool, ts_ns: u64, sinks: &mut Sinks) -> Result<()> {
        sinks.finding(&self.log.findings()[index], new, ts_ns, || self.gauges())
    }

    /// The operations counted since the last call, by map site.
    pub fn drain_ops(&mut self) -> Vec<SiteOps> {
        let resolver = &mut self.resolver;
        self.tally.drain(|ret| resolver.call_site_line(ret))
    }

    /// What the metrics show of this process now (the detector's size walks its clocks).
    pub fn gauges(&self) -> Gauges {
        Gauges {
            goroutines: self.goroutines_seen(),
            maps: self.maps_seen(),
            detector: self.races.as_ref().map(RaceWatch::size),
            coverage: self.coverage(),
        }
    }

    /// Goroutines seen (up to [`GOROUTINES_REMEMBERED`]).
    pub fn goroutines_seen(&self) -> usize {
        self.goroutines.len()
    }

    /// Maps seen.
    pub fn maps_seen(&self) -> usize {
        self.maps.len()
    }

    /// Distinct findings, in the order found.
    pub fn findings(&self) -> &[Finding] {
        self.log.findings()
    }

    /// Occurrences of all findings together.
    pub fn occurrences(&self) -> u64 {
        self.log.occurrences()
    }

    /// The binary watched.
    pub fn binary(&self) -> &GoBinary {
        &self.binary
    }
}

/// Race watching as `opts` asks and `probes` allow, with the notes every race finding carries
/// about what limited the watch; `None` when races are not looked for.
fn race_watch(probes: &Probes, opts: &WatchOptions) -> Option<RaceWatch> {
    if !opts.races {
        return None;
    }
    if !probes.sync_plan_inlined_known() {
        eprintln!(
            "mapwatch: races: off (no DWARF: inlined sync.Mutex and friends cannot be seen, so locked accesses would look like races); conflicts are still reported"
        );
        return None;
    }
    let mut notes: Vec<String> = probes
        .unobservable_sync()
        .iter()
        .map(|why| format!("unobservable synchronisation: {why}"))
        .collect();
    let pause = "each pause is a barrier: races across one are missed, never invented";
    match (opts.duty_cycle, opts.overhead_budget) {
        (_, Some(pct)) => notes.push(format!(
            "sampled: map accesses and synchronisation watched for the share of each {:.1}s that keeps their cost within {pct}% of the target's CPU time; {pause}",
            opts.duty_period.as_secs_f64()
        )),
        (Some(pct), None) => notes.push(format!(
            "sampled: map accesses and synchronisation watched {pct}% of the time ({:.1}s on per {:.1}s); {pause}",
            opts.duty_period.as_secs_f64() * f64::from(pct) / 100.0,
            opts.duty_period.as_secs_f64()
        )),
        (None, None) => {}
    }
    if !opts.map_sites.is_empty() {
        notes.push(format!(
            "sampled: only maps made at {}",
            opts.map_sites.join(", ")
        ));
    }
    notes.push(if opts.all_maps {
        "races on maps made by (or, for maps made before the watch, used by) Go's standard library are not looked for".into()
    } else {
        "only the program's own map operations (and those of maps and reflect) are probed: the standard library's accesses to its maps and the program's are not judged, and maps it made count as the program's if the program uses them first".into()
    });
    Some(RaceWatch::new(RaceScope {
        map_sites: opts.map_sites.clone(),
        notes,
    }))
}

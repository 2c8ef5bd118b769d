//! Races: two accesses to one map by different goroutines, at least one a write, that no
//! observed synchronisation orders. Happens-before over vector clocks, FastTrack-style: a map
//! keeps the epoch (goroutine, tick) of its last write and of each goroutine's reads since.
//!
//! Edges come from the sync events (see `gotarget::SyncKind`):
//! - goroutine creation: the child starts with its parent's clock;
//! - release (Unlock, RUnlock, channel send/receive/close, WaitGroup.Add, Value.Store): the
//!   object's clock takes the goroutine's, then the goroutine ticks;
//! - acquire (Lock, RLock, channel ops, Wait, Once.Do, Value.Load): a probe fires before the
//!   operation completes, so the acquire is applied when the goroutine next accesses a map or
//!   releases: it cannot get there until the operation completed, and every release it may
//!   have waited for was recorded before that. (Not at its next acquire: that may be nested in
//!   the operation itself.)
//!
//! Channel operations both release and acquire, through the clock of the buffer slot they use
//! where the probe saw it (see `chan`), else through the whole channel; a select does so on
//! all its channels. These over-approximate the Go memory model's edges: the detector may miss
//! a race, never invent one. An operation whose object could not be recovered synchronises
//! with everything.

use std::collections::HashMap;

use gotarget::{MapOp, SyncKind};

use super::chan::{self, ChanSync};
use super::clock::{Tick, VectorClock};
use super::conflict::Describer;
use super::objects::{Key, Objects};
use crate::event::{MapEvent, SyncEvent};
use crate::report::{Access, Finding, FindingKind};

type Hasher = foldhash::fast::RandomState;

/// Reads remembered per map since its last write (one per goroutine, the oldest dropped
/// first: a race with a dropped read goes unreported, never a false one).
const READERS_PER_MAP: usize = 16;
/// Maps tracked per detector; past this, tracking starts over for new maps (silence, not
/// false alarms, for the forgotten ones).
const MAX_MAPS: usize = 1 << 20;
/// Sync events between two sweeps of clock entries no access can be compared against (or as
/// many as the sweep walks, if more: it stays amortised).
const SWEEP_EVERY: usize = 1024;

/// One access as remembered for the race check and the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRecord {
    /// Goroutine.
    pub goid: u64,
    /// Its tick at the access.
    pub tick: Tick,
    /// Operation.
    pub op: MapOp,
    /// Return address into the code that made the access.
    pub ret: u64,
    /// That code's own return address (0 if unknown).
    pub caller: u64,
    /// Thread.
    pub tid: u32,
    /// Kernel monotonic time, ns.
    pub ts: u64,
}

/// A race found: `earlier` was not ordered before `later`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Race {
    /// Process.
    pub pid: u32,
    /// The map's header address.
    pub map: u64,
    /// The access recorded first.
    pub earlier: AccessRecord,
    /// The access that found it unordered.
    pub later: AccessRecord,
}

/// Kinds of synchronisation object, so a Mutex and a channel at one address stay apart (an
/// RWMutex's embedded Mutex shares its address, for one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Class {
    /// Every release on a channel.
    Chan,
    /// Releases on a channel by operations whose buffer slot is unknown.
    ChanUnknown,
    /// A buffered channel's barrier: what was released on it before its latest hand-off.
    ChanBase,
    /// A channel's close.
    ChanClosed,
    /// One buffer slot of a channel.
    ChanSlot(u32),
    Mutex,
    RwWriter,
    RwReaders,
    WaitGroup,
    Value,
}

type ObjectKey = Key<Class>;

#[derive(Default)]
struct Goroutine {
    clock: VectorClock,
    /// Acquires whose operation had not completed when probed: applied at the next event.
    pending: Vec<ObjectKey>,
    /// The process's [`RaceDetector::unpaired`] releases already joined into `clock`.
    unpaired_seen: u64,
    /// An acquire on an unknown object is pending.
    pending_everything: bool,
    /// Entry time of the select whose per-channel events are being applied.
    select_ts: Option<u64>,
}

#[derive(Default)]
struct MapState {
    write: Option<AccessRecord>,
    reads: Vec<AccessRecord>,
}

/// Sizes, for metrics and the bounded-memory tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectorSize {
    /// Goroutines with state.
    pub goroutines: usize,
    /// Synchronisation objects with a clock.
    pub objects: usize,
    /// Maps with access state.
    pub maps: usize,
    /// Vector clock entries over all goroutines and objects.
    pub clock_entries: usize,
}

/// The happens-before race detector over one or more processes' events.
#[derive(Default)]
pub struct RaceDetector {
    goroutines: HashMap<(u32, u64), Goroutine, Hasher>,
    objects: Objects<Class>,
    maps: HashMap<(u32, u64), MapState, Hasher>,
    /// Per process: every release joined, for acquires of unknown objects.
    everything: HashMap<u32, VectorClock, Hasher>,
    /// Per process: every release by an atomic whose loads are invisible, and how many there
    /// were; every map access acquires it first (the access may follow an unseen load).
    unpaired: HashMap<u32, (u64, VectorClock), Hasher>,
    /// Per goroutine, the earliest tick of its accesses that maps remember (at most: it is
    /// exact after a sweep, and accesses since only add to it). Clock entries are kept only
    /// where they can order one of those (see [`RaceDetector::sweep`]).
    remembered: HashMap<(u32, u64), Tick, Hasher>,
    syncs_since_sweep: usize,
    /// The watch began while the process ran (attach): goroutines may predate it.
    joined_late: bool,
}

impl RaceDetector {
    /// An empty detector, for a process watched from its first instruction.
    pub fn new() -> RaceDetector {
        RaceDetector::default()
    }

    /// Declares that the watch began on a running process: a goroutine first seen without
    /// its creation having been seen may have started an acquire before the watch (blocked in
    /// a Lock, say), so it acquires everything released so far (silence over false alarms).
    pub fn joined_late(&mut self) {
        self.joined_late = true;
    }

    /// Applies a synchronisation operation.
    pub fn sync(&mut self, ev: &SyncEvent) {
        self.apply_sync(ev);
        self.syncs_since_sweep += 1;
        let walked = self.objects.len() + self.goroutines.len() + self.maps.len();
        if self.syncs_since_sweep >= SWEEP_EVERY.max(walked) {
            self.sweep();
        }
    }

    fn apply_sync(&mut self, ev: &SyncEvent) {
        let pid = ev.pid;
        match ev.kind {
            SyncKind::GoStart => {
                let parent = self.settled(pid, ev.goid).clock.clone();
                let mut clock = parent;
                clock.observe(ev.child, 1);
                self.goroutines.insert(
                    (pid, ev.child),
                    Goroutine {
                        clock,
                        ..Goroutine::default()
                    },
                );
                self.settled(pid, ev.goid).clock.tick(ev.goid);
                return;
            }
            SyncKind::GoExit => {
                self.settled(pid, ev.goid);
                self.goroutines.remove(&(pid, ev.goid));
                return;
            }
            SyncKind::CoroSwitch if ev.child != 0 => {
                // The resumed goroutine is parked until now: it simply learns the switcher's
                // past.
                let from = self.settled(pid, ev.goid).clock.clone();
                self.goroutine(pid, ev.child).clock.join(&from);
                self.settled(pid, ev.goid).clock.tick(ev.goid);
                return;
            }
            _ => {}
        }
        if ev.object == 0 {
            // The probe could not tell which object: synchronise with everything, in the
            // directions the operation has (a store only releases, a load only acquires).
            self.settled(pid, ev.goid);
            if ev.kind != SyncKind::ValueLoad {
                self.release_everything(pid, ev.goid);
            }
            if ev.kind != SyncKind::ValueStore {
                if let Some(g) = self.goroutines.get_mut(&(pid, ev.goid)) {
                    g.pending_everything = true;
                }
            }
            return;
        }
        let (releases, acquires): (&[Class], &[Class]) = match ev.kind {
            SyncKind::ChanSend | SyncKind::ChanRecv | SyncKind::Select | SyncKind::ChanHandoff => {
                return self.channel(ev, chan::classify(ev.kind, ev.chan.as_ref()));
            }
            SyncKind::ChanClose => (&[Class::ChanClosed, Class::Chan], &[]),
            SyncKind::ChanPoll => (&[], &[Class::ChanClosed]),
            SyncKind::MutexLock | SyncKind::OnceDo => (&[], &[Class::Mutex]),
            SyncKind::MutexUnlock => (&[Class::Mutex], &[]),
            SyncKind::RLock => (&[], &[Class::RwWriter]),
            SyncKind::RUnlock => (&[Class::RwReaders], &[]),
            SyncKind::RwLock => (&[], &[Class::RwWriter, Class::RwReaders]),
            SyncKind::RwUnlock => (&[Class::RwWriter], &[]),
            SyncKind::WgAdd => (&[Class::WaitGroup], &[]),
            SyncKind::WgWait => (&[], &[Class::WaitGroup]),
            SyncKind::ValueLoad => (&[], &[Class::Value]),
            SyncKind::ValueStore => (&[Class::Value], &[]),
            SyncKind::ValueSwap => (&[Class::Value], &[Class::Value]),
            // A coroutine switch lands here when the resumed goroutine could not be read: like
            // an unpaired atomic, ordered before every goroutine's later accesses.
            SyncKind::AtomicUnpaired | SyncKind::CoroSwitch => {
                self.release_unpaired(pid, ev.goid);
                (&[Class::Value], &[Class::Value])
            }
            SyncKind::GoStart | SyncKind::GoExit => unreachable!("handled above"),
        };
        self.apply(ev, releases, acquires);
    }

    /// Applies channel operation `ev`, which synchronises through `how`.
    fn channel(&mut self, ev: &SyncEvent, how: ChanSync) {
        let (pid, c) = (ev.pid, ev.object);
        match how {
            ChanSync::Slot(s) => self.apply(
                ev,
                &[Class::ChanSlot(s), Class::Chan],
                &[
                    Class::ChanSlot(s),
                    Class::ChanUnknown,
                    Class::ChanBase,
                    Class::ChanClosed,
                ],
            ),
            ChanSync::Whole => self.apply(
                ev,
                &[Class::Chan, Class::ChanUnknown],
                &[Class::Chan, Class::ChanClosed],
            ),
            ChanSync::ClosedEmpty => self.apply(ev, &[], &[Class::ChanClosed]),
            ChanSync::Barrier => {
                if let Some(all) = self.objects.get((pid, Class::Chan, c)).cloned() {
                    self.objects.release((pid, Class::ChanBase, c), &all);
                }
            }
            ChanSync::Nothing => {}
        }
    }

    /// Goroutine `ev.goid` releases its clock to the `releases` objects of `ev.object`, and
    /// will acquire the `acquires` ones once its operation completed.
    fn apply(&mut self, ev: &SyncEvent, releases: &[Class], acquires: &[Class]) {
        let pid = ev.pid;
        if !releases.is_empty() {
            // What this goroutine acquired is part of what it releases. Acquires alone don't
            // settle: an acquire's own code may hold another (RWMutex.Lock takes its inner
            // Mutex before waiting for readers), which must not complete the outer one early.
            // One select sends an event per channel, all with its entry time: the later
            // ones must not complete the acquires of the first.
            let same_select = ev.kind == SyncKind::Select
                && self
                    .goroutines
                    .get(&(pid, ev.goid))
                    .is_some_and(|g| g.select_ts == Some(ev.ts));
            if same_select {
                self.goroutine(pid, ev.goid);
            } else {
                self.settled(pid, ev.goid);
            }
            let g = self
                .goroutines
                .get_mut(&(pid, ev.goid))
                .expect("goroutine() creates it");
            g.select_ts = (ev.kind == SyncKind::Select).then_some(ev.ts);
            // Only what can order a remembered access travels: clocks stay as wide as the
            // goroutines whose accesses maps remember, not as all the goroutines there were.
            let remembered = &self.remembered;
            g.clock
                .retain(|x, t| x == ev.goid || can_order(remembered, pid, x, t));
            for &class in releases {
                self.objects.release((pid, class, ev.object), &g.clock);
            }
            if let Some(all) = self.everything.get_mut(&pid) {
                all.join(&g.clock);
            }
            g.clock.tick(ev.goid);
        }
        if !acquires.is_empty() {
            let g = self.goroutine(pid, ev.goid);
            g.pending
                .extend(acquires.iter().map(|&class| (pid, class, ev.object)));
        }
    }

    /// Forgets the accesses to the map at `map` in process `pid`: a new map has the address.
    pub fn forget_map(&mut self, pid: u32, map: u64) {
        self.maps.remove(&(pid, map));
    }

    /// Declares a barrier: every access so far happened before every access to come. It stands
    /// for a stretch of the target's run that was not observed (probes off, records lost):
    /// races across it are missed, never invented by the edges it hid.
    pub fn barrier(&mut self) {
        self.maps.clear();
    }

    /// Checks a map access against the map's earlier ones, records it, and appends any races
    /// found to `races`. Accesses with `in_scope` false only advance the goroutine's state.
    pub fn access(&mut self, ev: &MapEvent, in_scope: bool, races: &mut Vec<Race>) {
        if ev.goid == 0 || ev.runtime_fatal {
            return;
        }
        let pid = ev.pid;
        self.settled(pid, ev.goid);
        if ev.op == MapOp::Make {
            self.forget_map(pid, ev.map);
            return;
        }
        if !in_scope || ev.map == 0 {
            return;
        }
        self.acquire_unpaired(pid, ev.goid);
        if self.maps.len() >= MAX_MAPS && !self.maps.contains_key(&(pid, ev.map)) {
            self.maps.clear();
        }
        let clock = &self.goroutines[&(pid, ev.goid)].clock;
        let record = AccessRecord {
            goid: ev.goid,
            tick: clock.get(ev.goid),
            op: ev.op,
            ret: ev.ret,
            caller: ev.caller,
            tid: ev.tid,
            ts: ev.ts,
        };
        self.remembered.entry((pid, ev.goid)).or_insert(record.tick);
        let unordered = |a: &AccessRecord| a.goid != record.goid && a.tick > clock.get(a.goid);
        let state = self.maps.entry((pid, ev.map)).or_default();
        let mut report = |earlier: &AccessRecord| {
            races.push(Race {
                pid,
                map: ev.map,
                earlier: earlier.clone(),
                later: record.clone(),
            })
        };
        if let Some(w) = state.write.as_ref().filter(|w| unordered(w)) {
            report(w);
        }
        if is_write(ev.op) {
            state.reads.iter().filter(|r| unordered(r)).for_each(report);
            state.reads.clear();
            state.write = Some(record);
        } else {
            if let Some(i) = state.reads.iter().position(|r| r.goid == record.goid) {
                state.reads.remove(i);
            } else if state.reads.len() >= READERS_PER_MAP {
                state.reads.remove(0);
            }
            state.reads.push(record);
        }
    }

    /// Current sizes.
    pub fn size(&self) -> DetectorSize {
        DetectorSize {
            goroutines: self.goroutines.len(),
            objects: self.objects.len(),
            maps: self.maps.len(),
            clock_entries: self
                .goroutines
                .values()
                .map(|g| g.clock.len())
                .sum::<usize>()
                + self.objects.entries(),
        }
    }

    /// The goroutine's state with its pending acquires applied (created on first sight).
    fn settled(&mut self, pid: u32, goid: u64) -> &mut Goroutine {
        self.goroutine(pid, goid);
        let g = self
            .goroutines
            .get_mut(&(pid, goid))
            .expect("goroutine() creates it");
        for key in g.pending.drain(..) {
            if let Some(c) = self.objects.acquire(key) {
                g.clock.join(c);
            }
        }
        if std::mem::take(&mut g.pending_everything) {
            if let Some(all) = self.everything.get(&pid) {
                g.clock.join(all);
            }
        }
        g
    }

    /// The goroutine's state, as it is (created on first sight).
    fn goroutine(&mut self, pid: u32, goid: u64) -> &mut Goroutine {
        if self.joined_late && !self.goroutines.contains_key(&(pid, goid)) {
            // A goroutine from before the watch: it may have been blocked in a Lock, a
            // receive or a Wait whose probe fired before the watch began. Everything released
            // since then may be what it waited for.
            let mut clock = VectorClock::start(goid);
            for c in self.objects.of_process(pid) {
                clock.join(c);
            }
            self.goroutines.insert(
                (pid, goid),
                Goroutine {
                    clock,
                    ..Goroutine::default()
                },
            );
        }
        self.goroutines
            .entry((pid, goid))
            .or_insert_with(|| Goroutine {
                clock: VectorClock::start(goid),
                ..Goroutine::default()
            })
    }

    /// Goroutine `goid` releases to every later access of the process (before the release
    /// `apply` makes, which ticks its clock).
    fn release_unpaired(&mut self, pid: u32, goid: u64) {
        let g = self.settled(pid, goid);
        let clock = g.clock.clone();
        let (count, all) = self.unpaired.entry(pid).or_default();
        *count += 1;
        all.join(&clock);
    }

    /// Joins the process's unpaired atomic releases into goroutine `goid`'s clock, if any
    /// came since it last did.
    fn acquire_unpaired(&mut self, pid: u32, goid: u64) {
        let Some((count, all)) = self.unpaired.get(&pid) else {
            return;
        };
        if let Some(g) = self.goroutines.get_mut(&(pid, goid)) {
            if g.unpaired_seen != *count {
                g.clock.join(all);
                g.unpaired_seen = *count;
            }
        }
    }

    /// A release on an unknown object: from now on every release is remembered in one
    /// clock that acquires of unknown objects take.
    fn release_everything(&mut self, pid: u32, goid: u64) {
        let everything = self.everything.entry(pid).or_insert_with(|| {
            // Everything released so far, too.
            let mut all = VectorClock::default();
            for c in self.objects.of_process(pid) {
                all.join(c);
            }
            all
        });
        if let Some(g) = self.goroutines.get_mut(&(pid, goid)) {
            everything.join(&g.clock);
            g.clock.tick(goid);
        }
    }

    /// Drops every clock entry no access can be compared against, and the objects left with
    /// none: memory stays bounded under goroutine and object churn (a service makes locks,
    /// contexts and goroutines per request).
    ///
    /// An entry (g, t) outside g's own clock came from a release of g's, after which g's
    /// tick passed t: every access g makes from then on has a later tick, so the entry only
    /// ever orders the accesses of g at or before t that some map remembers now. Without
    /// one, it can go from every clock but g's own, for good.
    fn sweep(&mut self) {
        self.syncs_since_sweep = 0;
        let earliest = &mut self.remembered;
        earliest.clear();
        for (&(pid, _), m) in &self.maps {
            for a in m.write.iter().chain(&m.reads) {
                let t = earliest.entry((pid, a.goid)).or_insert(a.tick);
                *t = (*t).min(a.tick);
            }
        }
        let useful = |pid: u32, g: u64, t: Tick| can_order(earliest, pid, g, t);
        for (&(pid, goid), g) in self.goroutines.iter_mut() {
            g.clock.retain(|x, t| x == goid || useful(pid, x, t));
        }
        self.objects.prune(useful);
        for (&pid, c) in self.everything.iter_mut() {
            c.retain(|x, t| useful(pid, x, t));
        }
        for (&pid, (_, c)) in self.unpaired.iter_mut() {
            c.retain(|x, t| useful(pid, x, t));
        }
    }
}

/// Whether clock entry (`goroutine`, `tick`) of process `pid` can order an access `remembered`
/// holds.
fn can_order(
    remembered: &HashMap<(u32, u64), Tick, Hasher>,
    pid: u32,
    goroutine: u64,
    tick: Tick,
) -> bool {
    remembered
        .get(&(pid, goroutine))
        .is_some_and(|&earliest| earliest <= tick)
}

/// The finding for `race`, found at access `ev` (the later one).
pub fn race_finding(
    race: &Race,
    ev: &MapEvent,
    d: &mut Describer<'_>,
    go_version: &str,
) -> Finding {
    let side = |d: &mut Describer<'_>, a: &AccessRecord| {
        let stack = d.resolver.site_stack(a.ret, a.caller);
        Access::new(a.op, a.goid, stack, a.tid, a.ts)
    };
    let first = side(d, &race.earlier);
    let second = side(d, &race.later);
    d.finding(FindingKind::Race, ev, first, second, go_version)
}

fn is_write(op: MapOp) -> bool {
    matches!(op, MapOp::Write | MapOp::Delete | MapOp::Clear)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ChanState;

    const PID: u32 = 1;
    const MAP: u64 = 0xc000;

    fn op(goid: u64, op: MapOp) -> MapEvent {
        MapEvent {
            ts: 0,
            map: MAP,
            map_type: 0,
            goid,
            ret: 0x1000 + goid,
            key: 0,
            caller: 0,
            seed: 0,
            pid: PID,
            tid: goid as u32,
            cpu: 0,
            op,
            saw_writing: false,
            runtime_fatal: false,
        }
    }

    fn sync(goid: u64, kind: SyncKind, object: u64) -> SyncEvent {
        SyncEvent {
            ts: 0,
            kind,
            object,
            goid,
            child: 0,
            pc: 0,
            pid: PID,
            tid: 0,
            chan: None,
        }
    }

    fn spawn(d: &mut RaceDetector, parent: u64, child: u64) {
        d.sync(&SyncEvent {
            child,
            ..sync(parent, SyncKind::GoStart, 0)
        });
    }

    fn races(d: &mut RaceDetector, ev: MapEvent) -> Vec<Race> {
        let mut out = Vec::new();
        d.access(&ev, true, &mut out);
        out
    }

    #[test]
    fn unordered_writes_race() {
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        spawn(&mut d, 1, 3);
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        let r = races(&mut d, op(3, MapOp::Write));
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].earlier.goid, r[0].later.goid), (2, 3));
    }

    #[test]
    fn parent_writes_before_go_are_ordered() {
        let mut d = RaceDetector::new();
        assert!(races(&mut d, op(1, MapOp::Write)).is_empty());
        spawn(&mut d, 1, 2);
        assert!(races(&mut d, op(2, MapOp::Read)).is_empty());
        // ...but the parent's write after the go statement is not.
        assert_eq!(races(&mut d, op(1, MapOp::Write)).len(), 1);
    }

    #[test]
    fn mutex_orders_and_reads_do_not_race_with_reads() {
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        spawn(&mut d, 1, 3);
        let mu = 0xd000;
        d.sync(&sync(2, SyncKind::MutexLock, mu));
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        d.sync(&sync(2, SyncKind::MutexUnlock, mu));
        d.sync(&sync(3, SyncKind::MutexLock, mu));
        assert!(races(&mut d, op(3, MapOp::Write)).is_empty());
        d.sync(&sync(3, SyncKind::MutexUnlock, mu));
        // Two readers after the last write, unordered among themselves: fine.
        d.sync(&sync(2, SyncKind::MutexLock, mu));
        assert!(races(&mut d, op(2, MapOp::Read)).is_empty());
        d.sync(&sync(2, SyncKind::MutexUnlock, mu));
        spawn(&mut d, 3, 4);
        assert!(races(&mut d, op(4, MapOp::Read)).is_empty());
        // A write by 4 without the lock races with 2's read.
        let r = races(&mut d, op(4, MapOp::Delete));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].earlier.goid, 2);
    }

    #[test]
    fn goroutines_from_before_an_attach_acquire_what_was_released() {
        // Goroutine 3 was blocked in mu.Lock() when the watch began: its acquire was never seen.
        let mu = 0xd000;
        let run = |late: bool| {
            let mut d = RaceDetector::new();
            if late {
                d.joined_late();
            }
            assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
            d.sync(&sync(2, SyncKind::MutexUnlock, mu));
            races(&mut d, op(3, MapOp::Write)).len()
        };
        assert_eq!(run(true), 0);
        assert_eq!(run(false), 1);
    }

    #[test]
    fn a_goroutine_first_seen_at_an_acquire_has_a_clock_of_its_own() {
        let mut d = RaceDetector::new();
        d.sync(&sync(2, SyncKind::ChanRecv, 0xa000));
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        assert_eq!(races(&mut d, op(3, MapOp::Write)).len(), 1);
    }

    #[test]
    fn a_selects_channels_are_one_operation() {
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        let (a, b) = (0xa000, 0xb000);
        let select = |goid, object| SyncEvent {
            ts: 77 + goid,
            ..sync(goid, SyncKind::Select, object)
        };
        d.sync(&select(1, a));
        d.sync(&select(1, b));
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        d.sync(&select(2, a));
        assert!(races(&mut d, op(1, MapOp::Read)).is_empty());
    }

    #[test]
    fn nested_acquires_do_not_complete_an_outer_one_early() {
        // RWMutex.Lock takes its inner Mutex, then waits for the reader to RUnlock.
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        spawn(&mut d, 1, 3);
        let rw = 0xe000;
        d.sync(&sync(2, SyncKind::RLock, rw));
        assert!(races(&mut d, op(2, MapOp::Read)).is_empty());
        d.sync(&sync(3, SyncKind::RwLock, rw));
        d.sync(&sync(3, SyncKind::MutexLock, rw));
        d.sync(&sync(2, SyncKind::RUnlock, rw));
        assert!(races(&mut d, op(3, MapOp::Write)).is_empty());
    }

    #[test]
    fn rlock_readers_are_ordered_before_the_next_writer() {
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        spawn(&mut d, 1, 3);
        let rw = 0xe000;
        d.sync(&sync(2, SyncKind::RLock, rw));
        assert!(races(&mut d, op(2, MapOp::Read)).is_empty());
        d.sync(&sync(2, SyncKind::RUnlock, rw));
        d.sync(&sync(3, SyncKind::RwLock, rw));
        assert!(races(&mut d, op(3, MapOp::Write)).is_empty());
        d.sync(&sync(3, SyncKind::RwUnlock, rw));
        d.sync(&sync(2, SyncKind::RLock, rw));
        assert!(races(&mut d, op(2, MapOp::IterStart)).is_empty());
    }

    #[test]
    fn channel_handoff_and_waitgroup() {
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        let ch = 0xf000;
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        d.sync(&sync(2, SyncKind::ChanSend, ch));
        d.sync(&sync(1, SyncKind::ChanRecv, ch));
        assert!(races(&mut d, op(1, MapOp::Read)).is_empty());

        let wg = 0xf100;
        spawn(&mut d, 1, 3);
        assert!(races(&mut d, op(3, MapOp::Clear)).is_empty());
        d.sync(&sync(3, SyncKind::WgAdd, wg));
        d.sync(&sync(1, SyncKind::WgWait, wg));
        assert!(races(&mut d, op(1, MapOp::Write)).is_empty());
    }

    const CH: u64 = 0xa000;

    /// A channel operation probed with the channel locked, in state (len, cap, sendx, recvx).
    fn chan_op(
        goid: u64,
        kind: SyncKind,
        (len, cap, sendx, recvx): (u32, u32, u32, u32),
    ) -> SyncEvent {
        SyncEvent {
            chan: Some(ChanState {
                len,
                cap,
                sendx,
                recvx,
                ..ChanState::default()
            }),
            ..sync(goid, kind, CH)
        }
    }

    fn with(mut ev: SyncEvent, change: impl FnOnce(&mut ChanState)) -> SyncEvent {
        change(ev.chan.as_mut().expect("a locked channel's event"));
        ev
    }

    /// `sem := make(chan int, cap)`: goroutine 2 sends, writes, receives; then goroutine 3
    /// sends and writes. With capacity 1, 2's receive frees the slot 3's send fills; with
    /// capacity 2, 3's send fills the other slot and waits for nothing.
    fn semaphore(cap: u32) -> Vec<Race> {
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        spawn(&mut d, 1, 3);
        d.sync(&chan_op(2, SyncKind::ChanSend, (0, cap, 0, 0)));
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        d.sync(&chan_op(2, SyncKind::ChanRecv, (1, cap, 1 % cap, 0)));
        d.sync(&chan_op(3, SyncKind::ChanSend, (0, cap, 1 % cap, 1 % cap)));
        races(&mut d, op(3, MapOp::Write))
    }

    #[test]
    fn a_receive_orders_only_the_send_that_reuses_its_slot() {
        assert!(semaphore(1).is_empty());
        let r = semaphore(2);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].earlier.goid, r[0].later.goid), (2, 3));
    }

    #[test]
    fn a_blocked_sender_acquires_the_receive_that_frees_its_slot() {
        // Capacity 1, full: 1's second send waits at the head of sendq for slot recvx.
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        d.sync(&chan_op(1, SyncKind::ChanSend, (0, 1, 0, 0)));
        d.sync(&chan_op(1, SyncKind::ChanSend, (1, 1, 0, 0)));
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        d.sync(&with(chan_op(2, SyncKind::ChanRecv, (1, 1, 0, 0)), |s| {
            s.sender_waiting = true
        }));
        assert!(races(&mut d, op(1, MapOp::Read)).is_empty());
    }

    /// Capacity 2. 2 writes and takes the first value (slot 0); 3 waits and is handed the
    /// second (slot 1, which the hand-off leaves current); 1's third send then fills slot 1
    /// again, though it is the one 2's receive (the first) orders: only the barrier at the
    /// hand-off makes up for the indices that did not move.
    fn handoff(barrier: bool) -> Vec<Race> {
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        spawn(&mut d, 1, 3);
        d.sync(&chan_op(1, SyncKind::ChanSend, (0, 2, 0, 0)));
        // 1 has gone on (a read of another map): its send completed before 2's receive.
        let other_map = MapEvent {
            map: MAP + 1,
            ..op(1, MapOp::Read)
        };
        assert!(races(&mut d, other_map).is_empty());
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        d.sync(&chan_op(2, SyncKind::ChanRecv, (1, 2, 1, 0)));
        d.sync(&chan_op(3, SyncKind::ChanRecv, (0, 2, 1, 1)));
        let waiting = |s: &mut ChanState| s.receiver_waiting = true;
        d.sync(&with(chan_op(1, SyncKind::ChanSend, (0, 2, 1, 1)), waiting));
        if barrier {
            d.sync(&chan_op(1, SyncKind::ChanHandoff, (0, 2, 1, 1)));
        }
        d.sync(&chan_op(1, SyncKind::ChanSend, (0, 2, 1, 1)));
        races(&mut d, op(1, MapOp::Read))
    }

    #[test]
    fn a_handoff_on_a_buffered_channel_is_a_barrier() {
        assert!(handoff(true).is_empty());
        assert_eq!(handoff(false).len(), 1, "the case needs the barrier");
    }

    #[test]
    fn operations_of_unknown_slot_synchronise_with_every_slot() {
        // A select takes 2's value from slot 0 (its slot unknown), then 1 sends into slot 1:
        // ordered after the select's receive, whatever slot it used.
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        spawn(&mut d, 1, 3);
        d.sync(&chan_op(2, SyncKind::ChanSend, (0, 2, 0, 0)));
        assert!(races(&mut d, op(3, MapOp::Write)).is_empty());
        d.sync(&sync(3, SyncKind::Select, CH));
        d.sync(&chan_op(1, SyncKind::ChanSend, (0, 2, 1, 1)));
        assert!(races(&mut d, op(1, MapOp::Write)).is_empty());
    }

    #[test]
    fn a_close_orders_the_receives_that_see_it() {
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        d.sync(&sync(2, SyncKind::ChanClose, CH));
        d.sync(&with(chan_op(1, SyncKind::ChanRecv, (0, 2, 0, 0)), |s| {
            s.closed = true
        }));
        assert!(races(&mut d, op(1, MapOp::Write)).is_empty());
    }

    #[test]
    fn a_non_blocking_receives_entry_acquires_only_the_close() {
        // 2 sends (slot 0) after writing; 3 polls the channel (its receive, if any, has a
        // locked event of its own): that alone orders nothing but a close.
        let run = |close: bool| {
            let mut d = RaceDetector::new();
            spawn(&mut d, 1, 2);
            spawn(&mut d, 1, 3);
            assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
            d.sync(&chan_op(2, SyncKind::ChanSend, (0, 2, 0, 0)));
            if close {
                d.sync(&sync(2, SyncKind::ChanClose, CH));
            }
            d.sync(&sync(3, SyncKind::ChanPoll, CH));
            races(&mut d, op(3, MapOp::Write)).len()
        };
        assert_eq!(run(false), 1);
        assert_eq!(run(true), 0);
    }

    #[test]
    fn an_unknown_object_synchronises_with_everything() {
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        spawn(&mut d, 1, 3);
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        d.sync(&sync(2, SyncKind::MutexUnlock, 0));
        d.sync(&sync(3, SyncKind::MutexLock, 0));
        assert!(races(&mut d, op(3, MapOp::Write)).is_empty());
    }

    #[test]
    fn make_starts_a_new_identity() {
        let mut d = RaceDetector::new();
        spawn(&mut d, 1, 2);
        spawn(&mut d, 1, 3);
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        assert!(races(&mut d, op(3, MapOp::Make)).is_empty());
        assert!(races(&mut d, op(3, MapOp::Write)).is_empty());
    }

    #[test]
    fn memory_stays_bounded_under_goroutine_churn() {
        let mut d = RaceDetector::new();
        let mu = 0xd000;
        for child in 2..50_000u64 {
            spawn(&mut d, 1, child);
            d.sync(&sync(child, SyncKind::MutexLock, mu));
            d.sync(&sync(child, SyncKind::MutexUnlock, mu));
            d.sync(&sync(child, SyncKind::GoExit, 0));
        }
        let size = d.size();
        assert!(size.goroutines <= 2, "{size:?}");
        assert!(size.clock_entries <= SWEEP_EVERY, "{size:?}");
    }

    #[test]
    fn memory_stays_bounded_under_object_churn() {
        let mut d = RaceDetector::new();
        for g in 2..6 {
            spawn(&mut d, 1, g);
        }
        for i in 0..200_000u64 {
            let g = 2 + i % 4;
            let per_request = 0x10_0000 + i * 64;
            d.sync(&sync(g, SyncKind::MutexLock, per_request));
            assert!(races(&mut d, op(g, MapOp::Read)).is_empty());
            d.sync(&sync(g, SyncKind::MutexUnlock, per_request));
        }
        let size = d.size();
        assert!(size.objects < 2 * SWEEP_EVERY, "{size:?}");
        assert!(size.clock_entries < 16 * SWEEP_EVERY, "{size:?}");
    }

    #[test]
    fn entries_an_access_is_compared_against_survive_sweeps() {
        let mut d = RaceDetector::new();
        let mu = 0xd000;
        for g in 2..=4 {
            spawn(&mut d, 1, g);
        }
        assert!(races(&mut d, op(2, MapOp::Write)).is_empty());
        d.sync(&sync(2, SyncKind::MutexUnlock, mu));
        d.sync(&sync(2, SyncKind::GoExit, 0));
        for i in 0..4 * SWEEP_EVERY as u64 {
            d.sync(&sync(1, SyncKind::MutexUnlock, 0x10_0000 + i * 64));
        }
        d.sync(&sync(3, SyncKind::MutexLock, mu));
        assert!(races(&mut d, op(3, MapOp::Read)).is_empty());
        assert_eq!(races(&mut d, op(4, MapOp::Read)).len(), 1);
    }
}

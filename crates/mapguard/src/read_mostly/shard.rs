//! One shard of the read-mostly engine: the table readers start from, the
//! writer lock, and the incremental, cooperative migration protocol.
//!
//! ## Migration
//!
//! When a write needs room (or removals left the table mostly empty), the
//! writer allocates the new table `N` and publishes it as the old table's
//! `next` (release) — nothing else. From then on, under the writer lock:
//!
//! 1. every write first moves a share of the old slots ([`slots_per_write`]), in
//!    order, a group of eight at a time: each live old slot's entry is copied
//!    to a slot of `N` and published there (the copy owns it from then on),
//!    then the group's moved slots are marked `MOVED` in one store (release);
//!    readers still in the old table read the same bytes;
//! 2. a write to key `k` first moves `k`'s old slot, if `k` is still live
//!    there, then writes `k` in `N` only. So `k` is live in at most one of the
//!    two tables, and any value newer than the one left in the old table is in
//!    `N`;
//! 3. after the last old slot is moved, the shard's `current` pointer is
//!    switched to `N` (release) and the old table is retired; readers still in
//!    it find everything through `next`.
//!
//! A reader searches the table it loaded and goes on into `next` when its
//! probe ends without a live match (`Table::find`). It never sees a removed
//! key again (removal happens in the table where the key is live), never a
//! stale value (a live old entry has no newer version), and never misses a
//! present key (a moved key reached `N` before its old slot was marked, which
//! the reader saw or passed before its probe ended; a key inserted during the
//! migration is in `N`, published before the insert).
//!
//! The old table's slots only ever change from an entry to `MOVED` during a
//! migration (writes go to `N`), never back to empty, so its probe
//! sequences stay intact. A migration target never fills: if a write would
//! push it past three quarters used, the writer finishes the migration first.
//! Writes stay short otherwise: a migration costs each write at most
//! [`MAX_MIGRATE_STEP`] slot visits, and readers never wait for any of it.
//!
//! Migrations should also end soon: until one does, a reader of a moved key
//! probes the old table to its end before the new one. Only writes move
//! slots, so a read-mostly map whose last burst of writes started a migration
//! pays that for as long as it is only read (filling 32k keys into 8 shards
//! leaves about 3 of them migrating); so a small table's migration
//! finishes within [`MIGRATION_WRITES`] writes to its shard (a big one's
//! steps are capped, for write latency), and `shrink_to_fit` finishes any at
//! once (worth calling after a bulk load).

use std::ptr;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::time::Instant;

use crossbeam_utils::CachePadded;

use super::reclaim::{self, Garbage, Guard};
use super::table::{max_used, Entry, Table, Took};
#[cfg(not(loom))]
use super::table::{pages, Preparing};
use crate::api::WouldBlock;
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Mutex, MutexGuard};
use crate::telemetry::recorder::{Probe, ShardCounts, ShardTelemetry};

/// Writes to a shard within which a migration finishes (bigger tables move
/// more slots per write, up to [`MAX_MIGRATE_STEP`]).
const MIGRATION_WRITES: usize = 16;

/// Fewest old-table slots a write moves while migrating.
const MIN_MIGRATE_STEP: usize = 32;

/// Most old-table slots one write moves, so no write pauses long however big
/// the table. Each move writes a random slot of the new table, often on a
/// page not yet mapped in: with 1024 a step, 1 insert in 100 takes over 15 us
/// (p99, single thread, bench VM); with 64, 8 us.
const MAX_MIGRATE_STEP: usize = 64;

/// Old-table slots each write moves while migrating a table of `capacity`.
fn slots_per_write(capacity: usize) -> usize {
    (capacity / MIGRATION_WRITES).clamp(MIN_MIGRATE_STEP, MAX_MIGRATE_STEP)
}

/// Smallest table (slots).
const MIN_CAPACITY: usize = 8;

/// Tables at or below this size are never shrunk automatically.
const MIN_AUTO_SHRINK_CAPACITY: usize = 64;

/// Slots for a table that should hold `len` entries with room to grow: at
/// most half full. At the migration threshold (three quarters used) that
/// doubles a table of live entries, and gives one whose used slots are partly
/// removed and replaced entries' (dead, waiting for reuse, see `table.rs`) the
/// same size or less, dropping them.
///
/// Why not emptier: a fitted table three eighths full (the next power of two
/// above that, so a quarter full for the bench's 2,048 keys a shard) makes a
/// read-mostly map half again as big as with pointers to entries, and reads
/// at times slower than papaya's in the bench's short cells; at most half
/// full, reads run 1.14x-1.32x papaya's and `exchange` faster too.
fn capacity_for(len: usize) -> usize {
    (len.max(1) * 2).next_power_of_two().max(MIN_CAPACITY)
}

/// Slots for a table that holds `entries` before it must grow (derived from
/// [`max_used`], where the growth threshold is defined).
fn capacity_holding(entries: usize) -> usize {
    let mut slots = MIN_CAPACITY;
    while max_used(slots) < entries {
        slots *= 2;
    }
    slots
}

/// Entries a table of `slots` slots holds before it must grow.
pub(crate) fn entries_for(slots: usize) -> usize {
    max_used(slots)
}

/// State only the writer touches, under the shard's writer lock.
///
/// `repr(C)`, what every write touches first: the four words after the lock
/// and the garbage's oldest stamp, which end the cache line the shard's counts
/// start (see [`Shard`]).
#[repr(C)]
pub(crate) struct Writer<K, V> {
    /// The migration target (the current table's `next`), null when none.
    target: *mut Table<K, V>,
    /// Used slots (all but never-used ones) of the table writes go to.
    used: usize,
    /// Source of entry versions: bumped by every write, never reset, so a
    /// version never repeats for a key (no ABA for `compare_and_update`).
    clock: u64,
    /// Old-table slots moved so far (in order; a key's own slot may have been
    /// moved early by a write to it).
    moved: usize,
    /// The tables this shard's writes retired, which readers may still hold.
    garbage: Garbage<K, V>,
    /// The table the next growth will probably migrate to, made ready just
    /// ahead of it a page per write ([`Edit::prepare_growth`]).
    #[cfg(not(loom))]
    next_growth: Option<Preparing<K, V>>,
}

// SAFETY: the raw pointers (the migration target, retired objects) are owned by
// the shard and only used under the writer lock.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Writer<K, V> {}

/// One shard. `repr(C)`, laid out for writes on several cores: a write
/// finds each cache line it touches on the core that last wrote the shard
/// (half the time, at two threads), so everything a write touches is packed
/// into one line: the entry and write counts, the lock, the writer's state
/// and the garbage's oldest stamp. (Bench `exchange` loop: 2 threads on
/// disjoint shards run a third faster than on shared ones; with five lines
/// a write, 7 % fewer writes per second go through than with two, and with
/// three, 4-11 % fewer than with one.) Test
/// `a_write_touches_one_cache_line_of_its_shard`.
#[repr(C)]
pub(crate) struct Shard<K, V> {
    /// The table readers start from, on cache lines of its own: every write
    /// changes the lock and counts next to it, and a reader (or the next
    /// write) on another core would then miss on this pointer, which changes
    /// only when a migration ends (bench `exchange` loop, 2 threads: a cache
    /// miss here is a write's most frequent stall when they share a line).
    current: CachePadded<Current<K, V>>,
    /// Entries: changed by the writer under its lock, read by `len()`
    /// without it.
    len: AtomicUsize,
    /// Writes, counted by the writer under its lock when telemetry is on
    /// (here, not in `telemetry`, for the layout above).
    writes: AtomicU64,
    writer: Mutex<Writer<K, V>>,
    pub(crate) telemetry: ShardTelemetry,
}

/// The current table, where its tag words are for [`Shard::prefetch`], and
/// the shard's capacity: what changes only when a migration starts or ends.
struct Current<K, V> {
    table: AtomicPtr<Table<K, V>>,
    /// Entries the table writes go to holds before it must grow, for
    /// `capacity()` (set when the write table changes).
    capacity: AtomicUsize,
    /// Mirrors of the table's tag array, set with `table`: a prefetch reads
    /// them with no epoch guard, where a stale or mixed pair is harmless (a
    /// prefetch of any address never faults), so a write prefetches without
    /// pinning (a pin and unpin cost ~35 instructions per write, callgrind).
    #[cfg(not(loom))]
    tags: std::sync::atomic::AtomicUsize,
    #[cfg(not(loom))]
    mask: std::sync::atomic::AtomicUsize,
}

impl<K, V> Current<K, V> {
    fn new(table: Table<K, V>) -> Self {
        let table = Box::into_raw(Box::new(table));
        let current = Current {
            table: AtomicPtr::new(table),
            // SAFETY: just allocated.
            capacity: AtomicUsize::new(entries_for(unsafe { &*table }.capacity())),
            #[cfg(not(loom))]
            tags: Default::default(),
            #[cfg(not(loom))]
            mask: Default::default(),
        };
        current.mirror(table);
        current
    }

    /// Makes `table` (owned by the shard) current; returns the one it replaces.
    fn swap(&self, table: *mut Table<K, V>) -> *mut Table<K, V> {
        self.mirror(table);
        self.table.swap(table, Release)
    }

    fn mirror(&self, table: *mut Table<K, V>) {
        #[cfg(not(loom))]
        {
            // SAFETY: the caller passes a live table.
            let (tags, mask) = unsafe { &*table }.tags_at();
            self.tags.store(tags, Relaxed);
            self.mask.store(mask, Relaxed);
        }
        #[cfg(loom)]
        let _ = table;
    }
}

impl<K, V> Shard<K, V> {
    pub(crate) fn with_capacity(entries: usize) -> Self {
        let slots = capacity_holding(entries);
        Shard {
            current: CachePadded::new(Current::new(Table::new(slots))),
            writer: Mutex::new(Writer {
                target: ptr::null_mut(),
                moved: 0,
                used: 0,
                clock: 0,
                garbage: Garbage::new(),
                #[cfg(not(loom))]
                next_growth: None,
            }),
            len: AtomicUsize::new(0),
            writes: AtomicU64::new(0),
            telemetry: ShardTelemetry::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.current.capacity.load(Relaxed)
    }

    pub(crate) fn counts(&self) -> ShardCounts {
        ShardCounts {
            len: self.len(),
            capacity: self.capacity(),
            writes: self.writes.load(Relaxed),
        }
    }

    /// The table a reader starts from.
    #[inline]
    pub(crate) fn table<'g>(&self, guard: &'g Guard) -> &'g Table<K, V> {
        // SAFETY: the current table is retired only after being replaced, and
        // `guard` keeps retired tables allocated.
        unsafe { &*guard.protect(&self.current.table) }
    }

    /// Asks the processor to start loading `hash`'s home tag word in the
    /// current table (a hint: nothing under loom), so that a write's cache
    /// miss on it overlaps the work the write does before it probes
    /// (re-entry record, lock, telemetry). Bench `exchange` loop, one thread:
    /// ~8 % more writes per second.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        #[cfg(not(loom))]
        super::table::prefetch_group(
            self.current.tags.load(Relaxed),
            self.current.mask.load(Relaxed),
            hash,
        );
        #[cfg(loom)]
        let _ = hash;
    }

    /// Runs `f` with the writer lock held, waiting for it if needed.
    /// `hash_of` is the map's hash of a key, for the entries a migration moves.
    ///
    /// Inlined into each write, with `edit` and the hot `Edit` methods: out of
    /// line, their prologues and epilogues alone would add ~60 instructions per
    /// write (callgrind).
    #[inline]
    pub(crate) fn write<R>(
        &self,
        probe: Probe,
        hash_of: &dyn Fn(&K) -> u64,
        f: impl FnOnce(&mut Edit<'_, K, V>) -> R,
    ) -> R {
        let writer = match self.writer.try_lock() {
            Some(writer) => {
                self.telemetry.uncontended(probe);
                writer
            }
            None => self.telemetry.contended(probe, || self.writer.lock()),
        };
        self.edit(probe, writer, hash_of, f)
    }

    /// Runs `f` with the writer lock held if it can be had without waiting.
    pub(crate) fn try_write<R>(
        &self,
        probe: Probe,
        hash_of: &dyn Fn(&K) -> u64,
        f: impl FnOnce(&mut Edit<'_, K, V>) -> R,
    ) -> Result<R, WouldBlock> {
        let Some(writer) = self.writer.try_lock() else {
            if probe.telemetry {
                self.telemetry.contended.fetch_add(1, Relaxed);
            }
            return Err(WouldBlock);
        };
        self.telemetry.uncontended(probe);
        Ok(self.edit(probe, writer, hash_of, f))
    }

    #[inline]
    fn edit<R>(
        &self,
        probe: Probe,
        mut writer: MutexGuard<'_, Writer<K, V>>,
        hash_of: &dyn Fn(&K) -> u64,
        f: impl FnOnce(&mut Edit<'_, K, V>) -> R,
    ) -> R {
        let held: Option<Instant> = self.telemetry.held_since(probe);
        if probe.telemetry {
            // Only writers, under this lock, change it.
            self.writes.store(self.writes.load(Relaxed) + 1, Relaxed);
        }
        let mut edit = Edit {
            shard: self,
            writer: &mut writer,
            hash_of,
            dropped: None,
        };
        edit.migrate_step();
        let result = f(&mut edit);
        edit.prepare_growth();
        let dropped = edit.dropped.take();
        drop(edit);
        let freed = writer.garbage.collect();
        self.telemetry.record_hold(held);
        drop(writer);
        // Destructors of what the write freed run here, outside the lock.
        drop(dropped);
        drop(freed);
        reclaim::advance_if_due();
        result
    }

    /// Frees every table and entry.
    ///
    /// # Safety
    /// No operation on the shard may be in progress or start later: the map
    /// is being dropped. (Its telemetry and counts stay readable.)
    pub(crate) unsafe fn free_all(&self) {
        let mut writer = self.writer.lock();
        // SAFETY: the caller's contract: no reader is left.
        unsafe { writer.garbage.free_all() };
        let mut table = self.current.table.load(Relaxed);
        while !table.is_null() {
            // SAFETY: nothing else can reach the shard; the tables on the `next`
            // chain from `current` are owned by it (older ones were retired), and a
            // live entry is in exactly one of them, which drops it.
            let owned = unsafe { Box::from_raw(table) };
            table = owned.next.load(Relaxed);
        }
    }
}

/// The writer's view of a shard, under its lock: every change to the shard's
/// tables goes through it.
pub(crate) struct Edit<'a, K, V> {
    shard: &'a Shard<K, V>,
    writer: &'a mut Writer<K, V>,
    /// The map's hash of a key (entries keep none).
    hash_of: &'a dyn Fn(&K) -> u64,
    /// The dead entry a new one replaced in its slot, to drop after the lock.
    dropped: Option<Entry<K, V>>,
}

impl<K, V> Edit<'_, K, V> {
    fn current(&self) -> &Table<K, V> {
        // SAFETY: only the writer replaces or retires the current table.
        unsafe { &*self.shard.current.table.load(Relaxed) }
    }

    fn target(&self) -> Option<&Table<K, V>> {
        // SAFETY: the target is owned by the shard until it becomes current.
        unsafe { self.writer.target.as_ref() }
    }

    /// The table writes go to: the migration target while migrating.
    pub(crate) fn write_table(&self) -> &Table<K, V> {
        self.target().unwrap_or_else(|| self.current())
    }

    pub(crate) fn len(&self) -> usize {
        self.shard.len()
    }

    /// Sets the entry count (only the writer changes it).
    fn set_len(&self, len: usize) {
        self.shard.len.store(len, Relaxed);
    }

    /// Refreshes the capacity `capacity()` reports, after the write table
    /// changed.
    fn set_capacity(&self) {
        let capacity = entries_for(self.write_table().capacity());
        self.shard.current.capacity.store(capacity, Relaxed);
    }

    pub(crate) fn next_version(&mut self) -> u64 {
        self.writer.clock += 1;
        self.writer.clock
    }

    /// The slot of `key`'s live entry in the write table, moving it there first
    /// when it is still in the table being migrated away from.
    #[inline]
    pub(crate) fn locate<Q>(&mut self, hash: u64, key: &Q) -> Option<usize>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.target().is_some() {
            self.move_key(hash, key);
        }
        self.write_table().locate(hash, key)
    }

    /// Moves `key`'s entry, if it is still live in the table being migrated
    /// away from, to the target. Out of line: most writes find no migration,
    /// and inlined, this path would make every write save and restore six
    /// registers around its probe (callgrind).
    #[cold]
    #[inline(never)]
    fn move_key<Q>(&mut self, hash: u64, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if let Some(i) = self.current().locate(hash, key) {
            self.move_slot(i);
        }
    }

    /// The live entry in the write table's slot `i`.
    pub(crate) fn entry(&self, i: usize) -> &Entry<K, V> {
        self.write_table().entry(i)
    }

    /// Replaces the entry in slot `i` with a new one; the old one's slot is
    /// marked dead.
    #[inline]
    pub(crate) fn replace(&mut self, i: usize, key: K, value: V) -> u64 {
        let version = self.next_version();
        let entry = Entry {
            key,
            value,
            version,
        };
        let took = self.write_table().replace(i, entry);
        self.took(took);
        // The new entry may have taken a never-used slot.
        self.reserve(0);
        version
    }

    /// Accounts for what a new entry's slot held.
    #[inline]
    fn took(&mut self, took: Took<K, V>) {
        match took {
            Took::Empty => self.writer.used += 1,
            Took::Dead(None) => {}
            // Every write fills at most one slot (else the earlier entry is
            // dropped here, under the lock: still correct, only slower).
            Took::Dead(entry) => drop(std::mem::replace(&mut self.dropped, entry)),
        }
    }

    /// Removes the entry in slot `i` (marked dead), then shrinks when the table
    /// became mostly empty.
    pub(crate) fn remove(&mut self, i: usize) {
        self.take(i);
        self.maybe_shrink();
    }

    /// Marks the write table's slot `i` dead.
    fn take(&mut self, i: usize) {
        self.write_table().remove(i);
        self.set_len(self.len() - 1);
    }

    /// Inserts a key known to be absent (checked with [`locate`](Self::locate)
    /// in this edit).
    #[inline]
    pub(crate) fn insert_new(&mut self, hash: u64, key: K, value: V) -> u64 {
        self.reserve(1);
        let version = self.next_version();
        let entry = Entry {
            key,
            value,
            version,
        };
        let took = self.write_table().publish_new(hash, entry);
        self.took(took);
        self.set_len(self.len() + 1);
        version
    }

    /// Removes the entries `keep` rejects (after finishing any migration, so
    /// every entry is in one table).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.finish_migration();
        let doomed: Vec<usize> = self
            .current()
            .live()
            .filter(|(_, e)| !keep(&e.key, &e.value))
            .map(|(i, _)| i)
            .collect();
        // No migration now: the write table is the current one.
        for i in doomed {
            self.take(i);
        }
        self.maybe_shrink();
    }

    /// Calls `f` on every live entry (a consistent view of the shard: no
    /// writer can run meanwhile).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Entry<K, V>)) {
        let tables = [Some(self.current()), self.target()];
        for table in tables.into_iter().flatten() {
            for (_, entry) in table.live() {
                f(entry);
            }
        }
    }

    /// Empties the shard: readers switch to a fresh empty table at once; the old
    /// tables, with their entries, are retired.
    pub(crate) fn clear(&mut self) {
        let fresh = Box::into_raw(Box::new(Table::new(MIN_CAPACITY)));
        let old = self.shard.current.swap(fresh);
        let mut table = old;
        while !table.is_null() {
            // SAFETY: `table` is `old` or on its `next` chain, owned by the shard
            // until now, unreachable for new readers after the swap.
            let next = unsafe { &*table }.next.load(Relaxed);
            unsafe { self.writer.garbage.retire_table(table) };
            table = next;
        }
        let w = &mut *self.writer;
        (w.target, w.moved, w.used) = (ptr::null_mut(), 0, 0);
        self.set_len(0);
        self.set_capacity();
    }

    /// Migrates to a table sized for the current entries, also when the
    /// table is smaller than that (a bulk load leaves tables
    /// up to half full, at their growth threshold, and the next writes would
    /// start a growth whose migration the rare writes of a read-mostly map
    /// take long to finish, reads of moved keys probing two tables meanwhile).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.finish_migration();
        let fit = capacity_for(self.len());
        if fit != self.current().capacity() {
            self.start_migration(fit);
            self.finish_migration();
        }
    }

    /// Makes room for `more` used slots in the write table (after a
    /// replacement, `0`: it may have taken one already).
    #[inline]
    fn reserve(&mut self, more: usize) {
        if self.writer.used + more > max_used(self.write_table().capacity()) {
            self.make_room(more);
        }
    }

    #[cold]
    fn make_room(&mut self, more: usize) {
        while self.writer.used + more > max_used(self.write_table().capacity()) {
            if self.target().is_some() {
                // A target must never fill: finish this migration first.
                self.finish_migration();
            } else {
                self.start_migration(capacity_for(self.len() + 1));
            }
        }
    }

    /// Shrinks once the table is less than a sixteenth full, to one at most
    /// half full, so a shrunken table must grow its entries half again before
    /// it grows again: with the threshold at an eighth, a map whose size
    /// hovers around a power of two would grow and shrink on alternate writes
    /// (in the bench: 4,096 entries a shard, a 32k-slot table after growing,
    /// shrunk by the next removal, grown by the next insert).
    fn maybe_shrink(&mut self) {
        let capacity = self.current().capacity();
        if self.target().is_none()
            && capacity > MIN_AUTO_SHRINK_CAPACITY
            && self.len() < capacity / 16
        {
            self.start_migration(capacity_for(self.len()));
        }
    }

    fn start_migration(&mut self, capacity: usize) {
        debug_assert!(self.target().is_none());
        // The prepared table if its size fits (else it is dropped): up to twice
        // the size asked for, as the prediction may have been one key above a
        // power of two; the table is then half as full as asked.
        #[cfg(not(loom))]
        let prepared = self
            .writer
            .next_growth
            .take()
            .filter(|table| (capacity..=2 * capacity).contains(&table.capacity()))
            .map(Preparing::finish);
        #[cfg(loom)]
        let prepared = None;
        let target = Box::into_raw(Box::new(prepared.unwrap_or_else(|| Table::new(capacity))));
        // Published before any slot is marked moved and before any key is
        // written there: a reader that finds a marker or ends its probe finds
        // the target too.
        self.current().next.store(target, Release);
        self.writer.target = target;
        self.writer.moved = 0;
        self.writer.used = 0;
        self.set_capacity();
    }

    /// Readies the next growth's table a page per write (maps in a fresh
    /// page, or clears one of a reused mapping), from as many used slots before
    /// the growth as that table has pages, so the growth finds it ready.
    ///
    /// Why: a migration moves its first slots to random places in the new
    /// table, so its first writes would map in many of its pages at once (up to
    /// ten page faults in one write for a 512 KiB table, test
    /// `a_growing_table_is_mapped_in_a_page_per_write`; ~10 us a fault on the
    /// bench's VM), and a reused mapping must be cleared before use (~15 us
    /// for 256 KiB at once). A page per write is what papaya's inserts pay too.
    /// The table exists only over that last stretch before the growth, so a
    /// shard that stays just below its threshold is the only one that keeps
    /// it. Off under loom: it is no part of the protocol the models check.
    #[inline]
    fn prepare_growth(&mut self) {
        #[cfg(not(loom))]
        if self.target().is_none() {
            let current = self.current().capacity();
            let to_growth = max_used(current).saturating_sub(self.writer.used);
            // Most writes: farther from the growth than any next table has
            // pages (it has at most about 4x the slots).
            if to_growth <= pages::<K, V>(4 * current) + 1 {
                self.prepare_growth_page(to_growth);
            }
        }
    }

    #[cfg(not(loom))]
    #[cold]
    fn prepare_growth_page(&mut self, to_growth: usize) {
        let table = match &mut self.writer.next_growth {
            Some(table) => table,
            None => {
                // What `reserve` will ask for if every write until then adds a key.
                let capacity = capacity_for(self.len() + to_growth + 1);
                if to_growth > pages::<K, V>(capacity) {
                    return;
                }
                self.writer.next_growth.insert(Preparing::new(capacity))
            }
        };
        table.step();
    }

    /// While migrating, moves a share of the old slots. Called at the start of
    /// every edit (inlined: most edits find no migration).
    #[inline]
    fn migrate_step(&mut self) {
        if self.target().is_some() {
            self.move_share();
        }
    }

    /// Moves the next [`slots_per_write`] old slots, finishing the migration when
    /// none are left.
    fn move_share(&mut self) {
        let capacity = self.current().capacity();
        let end = (self.writer.moved + slots_per_write(capacity)).min(capacity);
        let target = self.target().expect("moving only while migrating");
        self.writer.used += self
            .current()
            .move_slots(self.writer.moved, end, target, self.hash_of);
        self.writer.moved = end;
        if end == self.current().capacity() {
            self.complete_migration();
        }
    }

    fn finish_migration(&mut self) {
        while self.target().is_some() {
            self.migrate_step();
        }
    }

    /// Moves old slot `i`'s entry, if live, to the target and marks the slot.
    fn move_slot(&mut self, i: usize) {
        let target = self.target().expect("moving only while migrating");
        // The key is absent from the target: it is live here, and a key is
        // written in the target only after it was moved.
        if self.current().move_slot(i, target, self.hash_of) {
            self.writer.used += 1;
        }
    }

    fn complete_migration(&mut self) {
        let target = self.writer.target;
        let old = self.shard.current.swap(target);
        self.writer.target = ptr::null_mut();
        self.writer.moved = 0;
        // SAFETY: the old table is unreachable for readers entering from now on
        // (they start at `current`); readers inside it reach everything through
        // its `next`, the new current table, which stays.
        unsafe { self.writer.garbage.retire_table(old) };
    }
}

/// For tests: whether `shard` is between tables right now.
#[cfg(all(test, not(loom)))]
pub(crate) fn migrating<K, V>(shard: &Shard<K, V>) -> bool {
    !shard.writer.lock().target.is_null()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_write_touches_one_cache_line_of_its_shard() {
        let shard: Shard<u64, u64> = Shard::with_capacity(0);
        let at = |p: *const u8| p.addr() - ptr::from_ref(&shard).addr();
        let writer = shard.writer.data_ptr();
        // SAFETY: only addresses are taken; nothing is read or locked.
        let (lock, target, used, clock, moved, garbage) = unsafe {
            (
                at(ptr::from_ref(shard.writer.raw()).cast()),
                at(ptr::addr_of!((*writer).target).cast()),
                at(ptr::addr_of!((*writer).used).cast()),
                at(ptr::addr_of!((*writer).clock).cast()),
                at(ptr::addr_of!((*writer).moved).cast()),
                at(ptr::addr_of!((*writer).garbage).cast()),
            )
        };
        let line = |offset: usize| offset / 64;
        let first = line(at(ptr::from_ref(&shard.len).cast()));
        // The garbage's oldest stamp, its first field (`repr(C)`), is what a
        // write reads of it; the rest is on the next line.
        let oldest_end = garbage + std::mem::size_of::<Option<u8>>() - 1;
        for (name, offset) in [
            ("write count", at(ptr::from_ref(&shard.writes).cast())),
            ("lock", lock),
            ("target", target),
            ("used", used),
            ("clock", clock),
            ("moved", moved),
            ("the garbage's oldest stamp", oldest_end),
        ] {
            assert_eq!(line(offset), first, "{name} at {offset}");
        }
        let current = at(ptr::from_ref(&shard.current).cast());
        assert!(line(current + std::mem::size_of_val(&shard.current) - 1) < first);
        // SAFETY: nothing else uses the shard.
        unsafe { shard.free_all() };
    }
}

//! One shard: a hashbrown table behind a read-write lock, its version clock, and
//! its telemetry, in one cache-padded block.
//!
//! Every access goes through [`Shard::read`] / [`Shard::write`] (or their `try_`
//! forms), which is where contention is counted and sampled. A table only ever
//! grows or shrinks inside `write`, under the exclusive lock, so no reader can
//! observe a half-moved table.
//!
//! The common path is inlined into each operation and does only what every
//! operation must: count it (one relaxed add for a read; a plain load and
//! store for a write, which holds the lock), draw the thread's sampling tick,
//! take the lock, run the closure, refresh the length mirrors (a write) and
//! release. Timing and the hot-key sketch live in the `*_sampled` forms, out
//! of line, for the one operation in
//! [`SAMPLE_EVERY`](crate::reentry::SAMPLE_EVERY) the tick picks; a busy lock
//! goes out of line too.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use hashbrown::HashTable;

use crate::api::WouldBlock;
use crate::reentry;
use crate::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use crate::table_alloc::TableAlloc;
use crate::telemetry::recorder::{Probe, ShardCounts, ShardTelemetry};

/// Tables at or below this capacity are never shrunk automatically: shrinking a
/// small table saves nothing and would make insert/remove cycles reallocate.
const MIN_AUTO_SHRINK_CAPACITY: usize = 64;

/// A stored entry. The hash is kept so resizing never re-hashes keys (and never
/// runs user `Hash` code under the lock).
#[derive(Clone)]
pub(crate) struct Slot<K, V> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) version: u64,
}

pub(crate) fn slot_hash<K, V>(slot: &Slot<K, V>) -> u64 {
    slot.hash
}

/// The data under a shard's lock.
pub(crate) struct Table<K, V> {
    pub(crate) slots: HashTable<Slot<K, V>, TableAlloc>,
    /// When a write the telemetry samples took the lock, with the version
    /// that write gets (its holder alone sets and takes it; a start left by a
    /// write that panicked has an older version and is ignored).
    sampled_since: Option<(u64, Instant)>,
}

impl<K, V> Table<K, V> {
    /// Gives memory back after mass removal: when fewer than a quarter of the
    /// slots are used, shrink to twice the length (hysteresis: the table must
    /// lose half again before the next shrink, or double before it grows).
    #[inline]
    pub(crate) fn maybe_shrink(&mut self) {
        let (len, cap) = (self.slots.len(), self.slots.capacity());
        if cap > MIN_AUTO_SHRINK_CAPACITY && len < cap / 4 {
            self.shrink(len * 2);
        }
    }

    #[cold]
    #[inline(never)]
    fn shrink(&mut self, capacity: usize) {
        self.slots.shrink_to(capacity, slot_hash);
    }
}

pub(crate) struct Shard<K, V> {
    lock: RwLock<Table<K, V>>,
    /// Mirrors of the table's length and capacity, written under the write
    /// lock only, so `len()` and `stats()` never take a lock.
    len: AtomicUsize,
    capacity: AtomicUsize,
    /// The shard's clock: one tick per write operation, taken under the write
    /// lock (a plain load and store: only the lock holder writes it). The new
    /// value is the version of whatever that write changes, so a version is
    /// never reused for the same key, even across remove and re-insert (no ABA
    /// for `compare_and_update`); it is also the write count of the telemetry.
    clock: AtomicU64,
    /// The map's telemetry switch, for the paths out of line (the inlined
    /// ones are given it).
    telemetry_on: bool,
    pub(crate) telemetry: ShardTelemetry,
}

impl<K, V> Shard<K, V> {
    pub(crate) fn with_capacity(capacity: usize, telemetry: bool) -> Self {
        let slots = HashTable::with_capacity_in(capacity, TableAlloc::default());
        let cap = slots.capacity();
        Shard {
            lock: RwLock::new(Table {
                slots,
                sampled_since: None,
            }),
            len: AtomicUsize::new(0),
            capacity: AtomicUsize::new(cap),
            clock: AtomicU64::new(0),
            telemetry_on: telemetry,
            telemetry: ShardTelemetry::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity.load(Relaxed)
    }

    pub(crate) fn counts(&self) -> ShardCounts {
        ShardCounts {
            len: self.len(),
            capacity: self.capacity(),
            writes: if self.telemetry_on {
                self.clock.load(Relaxed)
            } else {
                0
            },
        }
    }

    /// Runs `f` under the shared lock, waiting for it if needed. `hash` is the
    /// key's, for the hot-key sketch.
    #[inline]
    pub(crate) fn read<R>(
        &self,
        telemetry: bool,
        hash: Option<u64>,
        f: impl FnOnce(&Table<K, V>) -> R,
    ) -> R {
        if telemetry {
            self.telemetry.reads.fetch_add(1, Relaxed);
            if reentry::sample() {
                return self.read_sampled(hash, f);
            }
        }
        let guard = match self.lock.try_read() {
            Some(guard) => guard,
            None => self.read_contended(telemetry),
        };
        f(&guard)
    }

    #[cold]
    #[inline(never)]
    fn read_contended(&self, telemetry: bool) -> RwLockReadGuard<'_, Table<K, V>> {
        if telemetry {
            self.telemetry.contended.fetch_add(1, Relaxed);
        }
        self.lock.read()
    }

    /// [`read`](Self::read) for an operation the sampling tick picked: timed,
    /// its key offered to the hot-key sketch (already counted).
    #[cold]
    #[inline(never)]
    fn read_sampled<R>(&self, hash: Option<u64>, f: impl FnOnce(&Table<K, V>) -> R) -> R {
        let probe = Probe {
            telemetry: true,
            sampled: true,
            hash,
        };
        let guard = match self.lock.try_read() {
            Some(guard) => {
                self.telemetry.uncontended(probe);
                guard
            }
            None => self.telemetry.contended(probe, || self.lock.read()),
        };
        let held = self.telemetry.held_since(probe);
        let result = f(&guard);
        drop(guard);
        self.telemetry.record_hold(held);
        result
    }

    /// Runs `f` under the shared lock if it can be had without waiting.
    pub(crate) fn try_read<R>(
        &self,
        telemetry: bool,
        hash: Option<u64>,
        f: impl FnOnce(&Table<K, V>) -> R,
    ) -> Result<R, WouldBlock> {
        let Some(guard) = self.lock.try_read() else {
            if telemetry {
                self.telemetry.contended.fetch_add(1, Relaxed);
            }
            return Err(WouldBlock);
        };
        let probe = Probe {
            telemetry,
            sampled: telemetry && reentry::sample(),
            hash,
        };
        if telemetry {
            self.telemetry.reads.fetch_add(1, Relaxed);
        }
        self.telemetry.uncontended(probe);
        let held = self.telemetry.held_since(probe);
        let result = f(&guard);
        drop(guard);
        self.telemetry.record_hold(held);
        Ok(result)
    }

    /// Runs `f` under the exclusive lock, waiting for it if needed. `f` is
    /// given the version of whatever it changes.
    #[inline]
    pub(crate) fn write<R>(
        &self,
        hash: Option<u64>,
        f: impl FnOnce(&mut Table<K, V>, u64) -> R,
    ) -> R {
        // Only the tick is tested here, and the out-of-line work is done
        // before and after `f` rather than around it: a closure passed to a
        // function that is not inlined would be built in memory on every path.
        let guard = if reentry::sample() {
            self.lock_ticked(hash)
        } else {
            match self.lock.try_write() {
                Some(guard) => guard,
                None => self.write_contended(),
            }
        };
        self.write_locked(guard, f)
    }

    /// [`write`](Self::write) for an `f` that returns, with its result,
    /// whether it changed the table's length or capacity: the mirrors are
    /// refreshed only then. `f` must not be able to panic after such a change
    /// (no caller's code may run after it). The caller draws the sampling
    /// tick and passes it as `SAMPLED`, so that the common path tests it once,
    /// before this, and the sampled one is a copy of its own.
    #[inline]
    pub(crate) fn write_exact<const SAMPLED: bool, R>(
        &self,
        hash: Option<u64>,
        f: impl FnOnce(&mut Table<K, V>, Version<'_>) -> (R, bool),
    ) -> R {
        let mut guard = if SAMPLED {
            self.lock_ticked(hash)
        } else {
            match self.lock.try_write() {
                Some(guard) => guard,
                None => self.write_contended(),
            }
        };
        self.clock
            .store(self.clock.load(Relaxed).wrapping_add(1), Relaxed);
        let (result, changed) = f(&mut guard, Version(&self.clock));
        if changed {
            self.refresh(&guard);
        }
        if SAMPLED {
            self.unlock_ticked(guard);
        } else {
            drop(guard);
        }
        result
    }

    /// Grows `table` (under this shard's write lock) for one more entry,
    /// refreshing the mirrors.
    #[cold]
    #[inline(never)]
    pub(crate) fn grow(&self, table: &mut Table<K, V>) {
        table.slots.reserve(1, slot_hash);
        self.refresh(table);
    }

    /// Refreshes the length and capacity mirrors from `table`.
    #[inline]
    fn refresh(&self, table: &Table<K, V>) {
        self.len.store(table.slots.len(), Relaxed);
        self.capacity.store(table.slots.capacity(), Relaxed);
    }

    /// Releases the exclusive lock, timing the hold if the sampling tick
    /// picked this operation.
    #[inline]
    fn unlock(&self, guard: RwLockWriteGuard<'_, Table<K, V>>) {
        // The tick is read again rather than kept across the write, which
        // costs more (a register through the whole write). If the write ran
        // other operations on this thread the two reads may disagree: a hold
        // then goes untimed, or `unlock_ticked` finds no start of this write's
        // and times nothing.
        if reentry::ticked() {
            self.unlock_ticked(guard);
        } else {
            drop(guard);
        }
    }

    #[cold]
    #[inline(never)]
    fn write_contended(&self) -> RwLockWriteGuard<'_, Table<K, V>> {
        if self.telemetry_on {
            self.telemetry.contended.fetch_add(1, Relaxed);
        }
        self.lock.write()
    }

    /// Takes the exclusive lock for an operation the sampling tick picked:
    /// with telemetry on, its wait is timed, its key offered to the hot-key
    /// sketch, and the start of its hold noted in the table.
    #[cold]
    #[inline(never)]
    fn lock_ticked(&self, hash: Option<u64>) -> RwLockWriteGuard<'_, Table<K, V>> {
        if !self.telemetry_on {
            return match self.lock.try_write() {
                Some(guard) => guard,
                None => self.lock.write(),
            };
        }
        let probe = Probe {
            telemetry: true,
            sampled: true,
            hash,
        };
        let mut guard = match self.lock.try_write() {
            Some(guard) => {
                self.telemetry.uncontended(probe);
                guard
            }
            None => self.telemetry.contended(probe, || self.lock.write()),
        };
        self.note_hold_start(&mut guard, probe);
        guard
    }

    /// Notes in the table when the hold of a sampled write began, for
    /// [`unlock_ticked`](Self::unlock_ticked).
    fn note_hold_start(&self, table: &mut Table<K, V>, probe: Probe) {
        let version = self.clock.load(Relaxed).wrapping_add(1);
        table.sampled_since = self.telemetry.held_since(probe).map(|s| (version, s));
    }

    /// Releases a lock taken by [`lock_ticked`](Self::lock_ticked), timing
    /// the hold.
    #[cold]
    #[inline(never)]
    fn unlock_ticked(&self, mut guard: RwLockWriteGuard<'_, Table<K, V>>) {
        let version = self.clock.load(Relaxed);
        let since = guard
            .sampled_since
            .take()
            .filter(|(v, _)| *v == version)
            .map(|(_, s)| s);
        drop(guard);
        self.telemetry.record_hold(since);
    }

    /// Runs `f` under the exclusive lock if it can be had without waiting.
    pub(crate) fn try_write<R>(
        &self,
        hash: Option<u64>,
        f: impl FnOnce(&mut Table<K, V>, u64) -> R,
    ) -> Result<R, WouldBlock> {
        let Some(mut guard) = self.lock.try_write() else {
            if self.telemetry_on {
                self.telemetry.contended.fetch_add(1, Relaxed);
            }
            return Err(WouldBlock);
        };
        let probe = Probe {
            telemetry: self.telemetry_on,
            sampled: reentry::sample(),
            hash,
        };
        self.telemetry.uncontended(probe);
        self.note_hold_start(&mut guard, probe);
        Ok(self.write_locked(guard, f))
    }

    /// Runs `f` under the exclusive lock `guard`, then releases it, timing
    /// the hold if the sampling tick picked this operation.
    #[inline]
    fn write_locked<R>(
        &self,
        mut guard: RwLockWriteGuard<'_, Table<K, V>>,
        f: impl FnOnce(&mut Table<K, V>, u64) -> R,
    ) -> R {
        let version = self.clock.load(Relaxed).wrapping_add(1);
        self.clock.store(version, Relaxed);
        // The mirrors must be refreshed even when `f` panics (it may have
        // inserted before panicking), hence the guard-like struct.
        let result = {
            let mirror = MirrorOnDrop {
                shard: self,
                table: &mut *guard,
            };
            f(&mut *mirror.table, version)
        };
        self.unlock(guard);
        result
    }
}

/// The version of what a [`Shard::write_exact`] changes, read where it is
/// needed rather than held in a register through the whole write.
#[derive(Clone, Copy)]
pub(crate) struct Version<'a>(&'a AtomicU64);

impl Version<'_> {
    #[inline]
    pub(crate) fn get(self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Refreshes the shard's length/capacity mirrors when the write closure ends,
/// normally or by unwinding.
struct MirrorOnDrop<'a, K, V> {
    shard: &'a Shard<K, V>,
    table: &'a mut Table<K, V>,
}

impl<K, V> Drop for MirrorOnDrop<'_, K, V> {
    #[inline]
    fn drop(&mut self) {
        self.shard.refresh(self.table);
    }
}

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
    /// Source of entry versions: bumped by every write to any entry of the
    /// shard, never reset, so a version is never reused for the same key even
    /// across remove and re-insert (no ABA for `compare_and_update`).
    pub(crate) clock: u64,
}

impl<K, V> Table<K, V> {
    #[inline]
    pub(crate) fn next_version(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

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
    /// Mirrors of the table's length and capacity, and the write count, all
    /// written under the write lock only (plain loads and stores, no atomic
    /// read-modify-write), so `len()` and `stats()` never take a lock.
    len: AtomicUsize,
    capacity: AtomicUsize,
    writes: AtomicU64,
    pub(crate) telemetry: ShardTelemetry,
}

impl<K, V> Shard<K, V> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let slots = HashTable::with_capacity_in(capacity, TableAlloc::default());
        let cap = slots.capacity();
        Shard {
            lock: RwLock::new(Table { slots, clock: 0 }),
            len: AtomicUsize::new(0),
            capacity: AtomicUsize::new(cap),
            writes: AtomicU64::new(0),
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
            writes: self.writes.load(Relaxed),
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

    /// Runs `f` under the exclusive lock, waiting for it if needed.
    #[inline]
    pub(crate) fn write<R>(
        &self,
        telemetry: bool,
        hash: Option<u64>,
        f: impl FnOnce(&mut Table<K, V>) -> R,
    ) -> R {
        // The tick first: counting down whatever `telemetry` says costs less
        // than a branch on it.
        if reentry::sample() && telemetry {
            return self.write_sampled(hash, f);
        }
        let guard = match self.lock.try_write() {
            Some(guard) => guard,
            None => self.write_contended(telemetry),
        };
        self.write_locked(telemetry, guard, f)
    }

    #[cold]
    #[inline(never)]
    fn write_contended(&self, telemetry: bool) -> RwLockWriteGuard<'_, Table<K, V>> {
        if telemetry {
            self.telemetry.contended.fetch_add(1, Relaxed);
        }
        self.lock.write()
    }

    /// [`write`](Self::write) for an operation the sampling tick picked.
    #[cold]
    #[inline(never)]
    fn write_sampled<R>(&self, hash: Option<u64>, f: impl FnOnce(&mut Table<K, V>) -> R) -> R {
        let probe = Probe {
            telemetry: true,
            sampled: true,
            hash,
        };
        let guard = match self.lock.try_write() {
            Some(guard) => {
                self.telemetry.uncontended(probe);
                guard
            }
            None => self.telemetry.contended(probe, || self.lock.write()),
        };
        let held = self.telemetry.held_since(probe);
        let result = self.write_locked(true, guard, f);
        self.telemetry.record_hold(held);
        result
    }

    /// Runs `f` under the exclusive lock if it can be had without waiting.
    pub(crate) fn try_write<R>(
        &self,
        telemetry: bool,
        hash: Option<u64>,
        f: impl FnOnce(&mut Table<K, V>) -> R,
    ) -> Result<R, WouldBlock> {
        let Some(guard) = self.lock.try_write() else {
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
        self.telemetry.uncontended(probe);
        let held = self.telemetry.held_since(probe);
        let result = self.write_locked(telemetry, guard, f);
        self.telemetry.record_hold(held);
        Ok(result)
    }

    /// Runs `f` under the exclusive lock `guard`, then releases it.
    #[inline]
    fn write_locked<R>(
        &self,
        telemetry: bool,
        mut guard: RwLockWriteGuard<'_, Table<K, V>>,
        f: impl FnOnce(&mut Table<K, V>) -> R,
    ) -> R {
        // Only the lock holder writes the count: no atomic read-modify-write
        // needed, and adding 0 when telemetry is off costs less than a branch.
        self.writes.store(
            self.writes.load(Relaxed).wrapping_add(u64::from(telemetry)),
            Relaxed,
        );
        // The mirrors must be refreshed even when `f` panics (it may have
        // inserted before panicking), hence the guard-like struct.
        let result = {
            let mirror = MirrorOnDrop {
                shard: self,
                table: &mut *guard,
            };
            f(&mut *mirror.table)
        };
        drop(guard);
        result
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
        self.shard.len.store(self.table.slots.len(), Relaxed);
        self.shard
            .capacity
            .store(self.table.slots.capacity(), Relaxed);
    }
}

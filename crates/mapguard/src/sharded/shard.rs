//! One shard: a hashbrown table behind a read-write lock, its version clock, and
//! its telemetry, in one cache-padded block.
//!
//! Every access goes through [`Shard::read`] / [`Shard::write`] (or their `try_`
//! forms), which is where contention is counted and sampled. A table only ever
//! grows or shrinks inside `write`, under the exclusive lock, so no reader can
//! observe a half-moved table.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use hashbrown::HashTable;

use crate::api::WouldBlock;
use crate::sync::{RwLock, RwLockWriteGuard};
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
    /// Write operations, counted under the exclusive lock (a plain add, not an
    /// atomic read-modify-write) and mirrored into the telemetry on unlock.
    writes: u64,
}

impl<K, V> Table<K, V> {
    pub(crate) fn next_version(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Gives memory back after mass removal: when fewer than a quarter of the
    /// slots are used, shrink to twice the length (hysteresis: the table must
    /// lose half again before the next shrink, or double before it grows).
    pub(crate) fn maybe_shrink(&mut self) {
        let (len, cap) = (self.slots.len(), self.slots.capacity());
        if cap > MIN_AUTO_SHRINK_CAPACITY && len < cap / 4 {
            self.slots.shrink_to(len * 2, slot_hash);
        }
    }
}

pub(crate) struct Shard<K, V> {
    lock: RwLock<Table<K, V>>,
    /// Mirrors of the table's length, capacity and write count, updated under
    /// the write lock, so `len()` and `stats()` never take a lock.
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
            lock: RwLock::new(Table {
                slots,
                clock: 0,
                writes: 0,
            }),
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

    /// Runs `f` under the shared lock, waiting for it if needed.
    pub(crate) fn read<R>(&self, probe: Probe, f: impl FnOnce(&Table<K, V>) -> R) -> R {
        if probe.telemetry {
            self.telemetry.reads.fetch_add(1, Relaxed);
        }
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
        probe: Probe,
        f: impl FnOnce(&Table<K, V>) -> R,
    ) -> Result<R, WouldBlock> {
        let Some(guard) = self.lock.try_read() else {
            if probe.telemetry {
                self.telemetry.contended.fetch_add(1, Relaxed);
            }
            return Err(WouldBlock);
        };
        if probe.telemetry {
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
    pub(crate) fn write<R>(&self, probe: Probe, f: impl FnOnce(&mut Table<K, V>) -> R) -> R {
        let guard = match self.lock.try_write() {
            Some(guard) => {
                self.telemetry.uncontended(probe);
                guard
            }
            None => self.telemetry.contended(probe, || self.lock.write()),
        };
        self.write_locked(probe, guard, f)
    }

    /// Runs `f` under the exclusive lock if it can be had without waiting.
    pub(crate) fn try_write<R>(
        &self,
        probe: Probe,
        f: impl FnOnce(&mut Table<K, V>) -> R,
    ) -> Result<R, WouldBlock> {
        let Some(guard) = self.lock.try_write() else {
            if probe.telemetry {
                self.telemetry.contended.fetch_add(1, Relaxed);
            }
            return Err(WouldBlock);
        };
        self.telemetry.uncontended(probe);
        Ok(self.write_locked(probe, guard, f))
    }

    /// Runs `f` under the exclusive lock `guard`, then releases it.
    fn write_locked<R>(
        &self,
        probe: Probe,
        mut guard: RwLockWriteGuard<'_, Table<K, V>>,
        f: impl FnOnce(&mut Table<K, V>) -> R,
    ) -> R {
        let held = self.telemetry.held_since(probe);
        // The mirrors must be refreshed even when `f` panics (it may have
        // inserted before panicking), hence the guard-like closure.
        let result = {
            let table = &mut *guard;
            table.writes += u64::from(probe.telemetry);
            let mirror = MirrorOnDrop { shard: self, table };
            f(&mut *mirror.table)
        };
        drop(guard);
        self.telemetry.record_hold(held);
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
    fn drop(&mut self) {
        self.shard.len.store(self.table.slots.len(), Relaxed);
        self.shard
            .capacity
            .store(self.table.slots.capacity(), Relaxed);
        self.shard.writes.store(self.table.writes, Relaxed);
    }
}

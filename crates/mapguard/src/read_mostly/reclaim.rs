//! Memory reclamation for the read-mostly engine: readers pin the process-wide
//! epoch (`epoch.rs`); writers retire what they unlink (dead slots, old
//! tables) into their shard's [`Garbage`], under the shard's writer lock,
//! which seals it in bags and frees a bag two epochs later: its slots become
//! free for reuse, under the lock; the destructors of their entries and the
//! old tables run after the lock is released.
//!
//! Under `--cfg loom` a guard is a plain acquire load and garbage is freed only
//! with the map, which is always safe: the loom models of the engine check its
//! own protocol (publication, migration, forwarding), and the epoch protocol
//! has a model of its own.

use std::collections::VecDeque;

use super::table::{Entry, Table};

#[cfg(loom)]
pub(crate) use self::loom_guard::{pin, Guard};
#[cfg(not(loom))]
pub(crate) use super::epoch::global::{pin, Guard};

/// Objects a writer retires before it seals them. Each seal costs one
/// process-wide barrier: ~0.7 us alone, but 2-5 us on this VM when it must
/// interrupt a CPU running another thread of the process; sealing every 64
/// made that the insert p99 with two threads (2-3 us; 0.8-1.3 us at 256), and
/// every 256 still the p99.9 (7-10 us, read_heavy mix: one insert in ~500
/// sealed; 4-5 us at 1024, below papaya's 6-7 us).
pub(crate) const SEAL_EVERY: usize = 1024;

/// Objects per bag: what one write frees at most, so that freeing stays a
/// short step of a write whatever `SEAL_EVERY` is (1024 objects freed at once
/// took ~15 us). Bags are freed by the shard's own later writes (or the
/// map's drop): a shard that stops being written keeps its last few until
/// then.
const BAG: usize = 64;

/// A retired slot: slot `.1` of table `.0`.
type DeadSlot<K, V> = (*const Table<K, V>, usize);

/// Retired objects sealed together.
#[repr(C)] // `slots` first: see `Garbage`.
struct Bag<K, V> {
    slots: Vec<DeadSlot<K, V>>,
    tables: Vec<*mut Table<K, V>>,
}

impl<K, V> Bag<K, V> {
    /// Empty, with nothing allocated: a map has many shards, and one that is
    /// never written should not hold a seal's worth of room (16 KiB here).
    fn new() -> Self {
        Bag {
            slots: Vec::new(),
            tables: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.slots.len() + self.tables.len()
    }

    /// Frees the slots for reuse (the writer's part), handing over what must
    /// be dropped.
    ///
    /// # Safety
    /// No reader can reach the objects any more, this runs once, and under
    /// the writer lock.
    unsafe fn free(self) -> Freed<K, V> {
        let mut entries = Vec::new();
        for (table, i) in self.slots {
            // SAFETY: the caller's contract; a slot's table is retired after
            // it (in this bag or a later one), so it is still allocated.
            entries.extend(unsafe { (*table).free(i) });
        }
        Freed(Some(Dropped {
            entries,
            tables: self.tables,
        }))
    }
}

/// What one shard's writer retired and has not freed yet.
///
/// `repr(C)`, what every write touches first (the oldest stamp, the pending
/// slots): 32 bytes, within the cache line the shard starts it at (see
/// `Shard`).
#[repr(C)]
pub(crate) struct Garbage<K, V> {
    /// The stamp of the oldest sealed bag, [`NONE_SEALED`] when there is none:
    /// what every write checks, without reading `sealed` (two more cache
    /// lines).
    oldest: u64,
    /// Retired since the last seal.
    pending: Bag<K, V>,
    /// Sealed bags with their stamps, oldest first.
    sealed: VecDeque<(u64, Bag<K, V>)>,
}

/// [`Garbage::oldest`] when no bag is sealed.
const NONE_SEALED: u64 = u64::MAX;

/// What an expired bag leaves to drop: dropping this drops the entries of its
/// slots and its tables (do it after releasing the writer lock: destructors
/// run here).
#[must_use]
pub(crate) struct Freed<K, V>(Option<Dropped<K, V>>);

struct Dropped<K, V> {
    entries: Vec<Entry<K, V>>,
    tables: Vec<*mut Table<K, V>>,
}

impl<K, V> Freed<K, V> {
    fn nothing() -> Self {
        Freed(None)
    }
}

impl<K, V> Drop for Freed<K, V> {
    #[inline]
    fn drop(&mut self) {
        // Most writes free nothing.
        if let Some(dropped) = self.0.take() {
            dropped.drop_all();
        }
    }
}

impl<K, V> Dropped<K, V> {
    #[cold]
    fn drop_all(self) {
        // The entries first: their slots' tables are in this bag or a later one.
        drop(self.entries);
        for table in self.tables {
            // SAFETY: the bag expired: every reader that could reach the
            // table left; tables are `Box`es.
            drop(unsafe { Box::from_raw(table) });
        }
    }
}

impl<K, V> Garbage<K, V> {
    pub(crate) fn new() -> Self {
        Garbage {
            oldest: NONE_SEALED,
            pending: Bag::new(),
            sealed: VecDeque::new(),
        }
    }

    /// Frees `table`'s slot `i` (dead: see [`Table::free`]) once no reader
    /// that might have seen it live is left.
    ///
    /// # Safety
    /// The slot is dead, retired once, and `table` is retired after it (or
    /// outlives the shard's garbage).
    pub(crate) unsafe fn retire_slot(&mut self, table: *const Table<K, V>, i: usize) {
        self.pending.slots.push((table, i));
    }

    /// Frees `table` (a `Box`) once no reader that might have loaded it is
    /// left.
    ///
    /// # Safety
    /// It is retired once, and already unreachable for readers that start
    /// from now on.
    pub(crate) unsafe fn retire_table(&mut self, table: *mut Table<K, V>) {
        self.pending.tables.push(table);
    }

    /// After a write: seals the pending objects when there are enough of them,
    /// and frees the oldest bag if it expired.
    #[inline]
    pub(crate) fn collect(&mut self) -> Freed<K, V> {
        if self.pending.len() >= SEAL_EVERY {
            self.seal();
        }
        // Most writes: the oldest bag (if any) is not expired yet.
        if self.oldest != NONE_SEALED && expired(self.oldest) {
            self.take_expired()
        } else {
            Freed::nothing()
        }
    }

    /// Frees the oldest bag, expired.
    #[cold]
    fn take_expired(&mut self) -> Freed<K, V> {
        let expired = self.sealed.pop_front().map(|(_, bag)| bag);
        self.oldest = self.oldest_stamp();
        // SAFETY: the bag expired: every reader that could reach it left; we
        // hold the writer lock.
        expired.map_or_else(Freed::nothing, |bag| unsafe { bag.free() })
    }

    /// Stamps the pending objects with one barrier, in bags of [`BAG`].
    #[cold]
    fn seal(&mut self) {
        let stamp = seal();
        let bags = self.pending.slots.chunks(BAG).map(|chunk| Bag {
            slots: chunk.to_vec(),
            tables: Vec::new(),
        });
        // After the slots: a table outlives its retired slots.
        let tables = std::mem::take(&mut self.pending.tables);
        let tables = (!tables.is_empty()).then(|| Bag {
            slots: Vec::new(),
            tables,
        });
        self.sealed
            .extend(bags.chain(tables).map(|bag| (stamp, bag)));
        self.oldest = self.oldest_stamp();
        // Kept with its capacity: a shard that sealed once is being written.
        self.pending.slots.clear();
    }

    fn oldest_stamp(&self) -> u64 {
        self.sealed.front().map_or(NONE_SEALED, |&(stamp, _)| stamp)
    }

    /// Frees everything now, oldest first.
    ///
    /// # Safety
    /// No reader can be inside the map: it is being dropped.
    pub(crate) unsafe fn free_all(&mut self) {
        let pending = std::mem::replace(&mut self.pending, Bag::new());
        self.oldest = NONE_SEALED;
        let sealed = self.sealed.drain(..).map(|(_, bag)| bag);
        for bag in sealed.chain([pending]) {
            // SAFETY: the caller's contract.
            drop(unsafe { bag.free() });
        }
    }
}

impl<K, V> Drop for Garbage<K, V> {
    fn drop(&mut self) {
        // SAFETY: a shard's garbage is dropped with the shard, after the map
        // (no reader can be inside it).
        unsafe { self.free_all() }
    }
}

#[cfg(not(loom))]
use super::epoch::global::{expired, seal};

/// Under loom no bag ever expires: garbage is kept until the map drops.
#[cfg(loom)]
fn seal() -> u64 {
    0
}

#[cfg(loom)]
fn expired(_stamp: u64) -> bool {
    false
}

#[cfg(loom)]
mod loom_guard {
    use loom::sync::atomic::{AtomicPtr, Ordering::Acquire};

    pub(crate) struct Guard;

    pub(crate) fn pin() -> Guard {
        Guard
    }

    impl Guard {
        pub(crate) fn protect<T>(&self, ptr: &AtomicPtr<T>) -> *mut T {
            ptr.load(Acquire)
        }
    }
}

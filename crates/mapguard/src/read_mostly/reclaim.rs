//! Memory reclamation for the read-mostly engine: readers pin the process-wide
//! epoch (`epoch.rs`); writers retire what they unlink into their shard's
//! [`Garbage`], under the shard's writer lock, which seals it in bags and frees
//! a bag two epochs later, after the lock is released. Expired entries of
//! types without destructors are kept for reuse instead (a bounded number per
//! shard), so steady writes of such entries allocate nothing.
//!
//! Under `--cfg loom` a guard is a plain acquire load and garbage is freed only
//! with the map, which is always safe: the loom models of the engine check its
//! own protocol (publication, migration, forwarding), and the epoch protocol
//! has a model of its own.

use std::collections::VecDeque;
use std::mem::needs_drop;

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

/// Most expired entries a shard keeps for reuse: a seal's worth, since a
/// seal's bags expire together (with fewer kept, the rest are freed while the
/// next writes allocate anew).
const MAX_SPARE: usize = SEAL_EVERY;

/// Retired objects sealed together. Typed (not a list of type-erased
/// destructors): freeing an entry is then a direct, inlined drop, about half
/// of what a call through a function pointer per object cost (callgrind, a
/// 50/50 insert/remove loop).
#[repr(C)] // `entries` first: see `Garbage`.
struct Bag<K, V> {
    entries: Vec<*mut Entry<K, V>>,
    tables: Vec<*mut Table<K, V>>,
}

impl<K, V> Bag<K, V> {
    /// Empty, with nothing allocated: a map has many shards, and one that is
    /// never written should not hold a seal's worth of room (8 KiB here).
    fn new() -> Self {
        Bag {
            entries: Vec::new(),
            tables: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.entries.len() + self.tables.len()
    }

    /// Runs the destructors and frees the memory.
    ///
    /// # Safety
    /// No reader can reach the objects any more, and this runs once.
    unsafe fn free(self) {
        for entry in self.entries {
            // SAFETY: the caller's contract; entries are `Box`es.
            drop(unsafe { Box::from_raw(entry) });
        }
        for table in self.tables {
            // SAFETY: as for entries.
            drop(unsafe { Box::from_raw(table) });
        }
    }
}

/// What one shard's writer retired and has not freed yet, and the expired
/// entries it keeps for reuse.
///
/// `repr(C)`, what every write touches first (spare entries, the oldest
/// stamp, the pending entries): 56 bytes, within the cache line the shard
/// starts it at (see `Shard`).
#[repr(C)]
pub(crate) struct Garbage<K, V> {
    /// Expired entries whose memory new entries reuse (only when neither `K`
    /// nor `V` has a destructor, so that recycling one under the writer lock
    /// runs no user code). A malloc and a free per write were a quarter of a
    /// write's instructions.
    spare: Vec<*mut Entry<K, V>>,
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

/// A bag whose readers are gone, if any: dropping this frees it (do it after
/// releasing the writer lock: destructors run here).
#[must_use]
pub(crate) struct Freed<K, V>(Option<Bag<K, V>>);

impl<K, V> Drop for Freed<K, V> {
    #[inline]
    fn drop(&mut self) {
        // Most writes free nothing.
        if let Some(bag) = self.0.take() {
            // SAFETY: the bag expired: every reader that could reach it left.
            unsafe { bag.free() };
        }
    }
}

impl<K, V> Garbage<K, V> {
    /// Whether expired entries are recycled: dropping their contents is a no-op.
    const RECYCLES: bool = !needs_drop::<K>() && !needs_drop::<V>();

    pub(crate) fn new() -> Self {
        Garbage {
            spare: Vec::new(),
            oldest: NONE_SEALED,
            pending: Bag::new(),
            sealed: VecDeque::new(),
        }
    }

    /// A heap entry holding `entry`, in recycled memory when there is some.
    pub(crate) fn new_entry(&mut self, entry: Entry<K, V>) -> *mut Entry<K, V> {
        match self.spare.pop().filter(|_| Self::RECYCLES) {
            Some(p) => {
                // SAFETY: a spare entry expired (no reader can reach it) and its
                // old contents need no drop (`RECYCLES`); it is a `Box`'s memory.
                unsafe { p.write(entry) };
                p
            }
            None => Box::into_raw(Box::new(entry)),
        }
    }

    /// Frees `entry` once no reader that might have loaded it is left.
    ///
    /// # Safety
    /// `entry` came from [`new_entry`](Self::new_entry) or `Box::into_raw`, is
    /// retired once, and is already unreachable for readers that start from
    /// now on.
    pub(crate) unsafe fn retire_entry(&mut self, entry: *mut Entry<K, V>) {
        self.pending.entries.push(entry);
    }

    /// Frees `table` (a `Box`) like [`retire_entry`](Self::retire_entry).
    ///
    /// # Safety
    /// As for `retire_entry`.
    pub(crate) unsafe fn retire_table(&mut self, table: *mut Table<K, V>) {
        self.pending.tables.push(table);
    }

    /// After a write: seals the pending objects when there are enough of them,
    /// and hands over the oldest bag if it may be freed now (recycling what
    /// entries it can).
    #[inline]
    pub(crate) fn collect(&mut self) -> Freed<K, V> {
        if self.pending.len() >= SEAL_EVERY {
            self.seal();
        }
        // Most writes: the oldest bag (if any) is not expired yet.
        if self.oldest != NONE_SEALED && expired(self.oldest) {
            self.take_expired()
        } else {
            Freed(None)
        }
    }

    /// Takes the oldest bag, expired, keeping what entries it may for reuse.
    #[cold]
    fn take_expired(&mut self) -> Freed<K, V> {
        let mut expired = self.sealed.pop_front().map(|(_, bag)| bag);
        self.oldest = self.oldest_stamp();
        if let Some(bag) = expired.as_mut().filter(|_| Self::RECYCLES) {
            let keep = bag.entries.len().min(MAX_SPARE - self.spare.len());
            let start = bag.entries.len() - keep;
            self.spare.extend(bag.entries.drain(start..));
        }
        Freed(expired)
    }

    /// Stamps the pending objects with one barrier, in bags of [`BAG`].
    #[cold]
    fn seal(&mut self) {
        let stamp = seal();
        let bags = self.pending.entries.chunks(BAG).map(|chunk| Bag {
            entries: chunk.to_vec(),
            tables: Vec::new(),
        });
        let tables = std::mem::take(&mut self.pending.tables);
        let tables = (!tables.is_empty()).then(|| Bag {
            entries: Vec::new(),
            tables,
        });
        self.sealed
            .extend(bags.chain(tables).map(|bag| (stamp, bag)));
        self.oldest = self.oldest_stamp();
        // Kept with its capacity: a shard that sealed once is being written.
        self.pending.entries.clear();
    }

    fn oldest_stamp(&self) -> u64 {
        self.sealed.front().map_or(NONE_SEALED, |&(stamp, _)| stamp)
    }

    /// Frees everything now.
    ///
    /// # Safety
    /// No reader can be inside the map: it is being dropped.
    pub(crate) unsafe fn free_all(&mut self) {
        let spare = Bag {
            entries: std::mem::take(&mut self.spare),
            tables: Vec::new(),
        };
        let pending = Bag {
            entries: std::mem::take(&mut self.pending.entries),
            tables: std::mem::take(&mut self.pending.tables),
        };
        self.oldest = NONE_SEALED;
        let sealed = self.sealed.drain(..).map(|(_, bag)| bag);
        // Dropping a spare entry again is sound: its contents have no
        // destructor.
        for bag in sealed.chain([pending, spare]) {
            drop(Freed(Some(bag)));
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

//! One open-addressing table of the read-mostly engine and the reader's search.
//!
//! A slot holds a key hash and a pointer to an immutable, heap-allocated
//! [`Entry`]. Writers (one per shard at a time, under the shard's writer lock)
//! never change an entry in place: they publish a new one with a release store
//! of the slot pointer and retire the old one through the reclaimer, so a
//! reader that loaded a pointer reads a whole, committed entry. Linear probing;
//! a slot pointer is one of:
//!
//! - null: never used; a probe for any key ends here;
//! - [`TOMBSTONE`]: its entry was removed; probes continue past it;
//! - [`MOVED`]: (only in a table being migrated away from) its entry now lives
//!   in the table's `next` table; probes continue past it;
//! - an entry.
//!
//! The hash is stored before the pointer is published (release), so a reader
//! that loads the pointer with acquire and then the hash sees at least that
//! hash; a newer one (the slot reused for another key meanwhile) only makes it
//! skip the slot, which is a read that linearizes after the removal that freed
//! the slot. See `shard.rs` for the migration protocol.

use std::borrow::Borrow;
use std::ptr;
use std::sync::atomic::Ordering::{Relaxed, Release};

use super::reclaim::Guard;
use crate::sync::{AtomicPtr, AtomicU64};

/// A committed key-value pair. Never mutated after publication.
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    /// From the shard's clock: changes with every write of the key.
    pub(crate) version: u64,
}

/// A removed entry's slot. `Entry` is 8-aligned, so no entry lives at 1 or 2.
pub(crate) fn tombstone<K, V>() -> *mut Entry<K, V> {
    ptr::without_provenance_mut(1)
}

/// A slot whose entry was migrated to the next table.
pub(crate) fn moved<K, V>() -> *mut Entry<K, V> {
    ptr::without_provenance_mut(2)
}

/// Whether a slot pointer points to an entry (not null or a marker).
pub(crate) fn is_entry<K, V>(p: *mut Entry<K, V>) -> bool {
    p.addr() > 2
}

pub(crate) struct Slot<K, V> {
    pub(crate) hash: AtomicU64,
    pub(crate) entry: AtomicPtr<Entry<K, V>>,
}

/// Most slots a table may have in use (entries, tombstones and moved markers)
/// before it must be migrated: half, which keeps probes short.
pub(crate) fn max_used(capacity: usize) -> usize {
    capacity / 2
}

pub(crate) struct Table<K, V> {
    pub(crate) slots: Box<[Slot<K, V>]>,
    mask: usize,
    /// The table this one is being (or was) migrated to; null until a
    /// migration starts, never changed after.
    pub(crate) next: AtomicPtr<Table<K, V>>,
}

impl<K, V> Table<K, V> {
    /// An empty table of `capacity` slots (a power of two).
    pub(crate) fn new(capacity: usize) -> Self {
        debug_assert!(capacity.is_power_of_two());
        Table {
            slots: (0..capacity)
                .map(|_| Slot {
                    hash: AtomicU64::new(0),
                    entry: AtomicPtr::new(ptr::null_mut()),
                })
                .collect(),
            mask: capacity - 1,
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Slot indices in probe order for `hash`, once around the table.
    fn probe(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let home = hash as usize & self.mask;
        (0..self.slots.len()).map(move |i| (home + i) & self.mask)
    }

    /// The reader's search: `key`'s entry in this table, or else in the tables
    /// it was migrated to. Lock-free; loads only.
    ///
    /// Why the answer is current: an entry found live here has not been moved
    /// yet, and a writer moves a key (marking its slot [`MOVED`]) before it
    /// writes that key in the next table, so no newer version of it exists.
    /// A key that is not live here (its slot moved, or the key never here) is
    /// in the next table, published before any slot was marked and before any
    /// key was inserted there; so the search goes on there when this table's
    /// probe ends.
    pub(crate) fn find<'g, Q>(
        &'g self,
        guard: &'g Guard<'_>,
        hash: u64,
        key: &Q,
    ) -> Option<&'g Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut table = self;
        loop {
            // A plain index loop: the iterator version of this probe cost ~15
            // instructions per read more (callgrind, `bench count-gets`).
            let slots = &table.slots[..];
            // `len - 1` rather than the stored mask lets the compiler see that
            // every index is in bounds.
            let mask = slots.len() - 1;
            let mut i = hash as usize & mask;
            for _ in 0..slots.len() {
                let slot = &slots[i];
                let p = guard.protect(&slot.entry);
                if p.is_null() {
                    break;
                }
                if is_entry(p) && slot.hash.load(Relaxed) == hash {
                    // SAFETY: a published entry stays allocated while `guard` lives.
                    let entry = unsafe { &*p };
                    if entry.key.borrow() == key {
                        return Some(entry);
                    }
                }
                i = (i + 1) & mask;
            }
            let next = guard.protect(&table.next);
            if next.is_null() {
                return None;
            }
            // SAFETY: tables are retired only after the shard stops pointing at them,
            // and `guard` keeps retired ones allocated.
            table = unsafe { &*next };
        }
    }

    /// The writer's search: the slot of `key`'s live entry in this table only.
    /// Only the writer (under the shard lock) may call it: it reads entries
    /// without a guard because only the writer retires them.
    pub(crate) fn locate<Q>(&self, hash: u64, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        for i in self.probe(hash) {
            let slot = &self.slots[i];
            let p = slot.entry.load(Relaxed);
            if p.is_null() {
                return None;
            }
            // SAFETY: live entries are retired only by the writer, which is us.
            if is_entry(p) && slot.hash.load(Relaxed) == hash && unsafe { (*p).key.borrow() } == key
            {
                return Some(i);
            }
        }
        None
    }

    /// The entry in slot `i` (the writer's view; `i` from [`locate`](Self::locate)).
    pub(crate) fn entry(&self, i: usize) -> &Entry<K, V> {
        let p = self.slots[i].entry.load(Relaxed);
        debug_assert!(is_entry(p));
        // SAFETY: only the writer, the caller, retires entries.
        unsafe { &*p }
    }

    /// Publishes `entry` (a new key, known absent) in the first free slot of its
    /// probe sequence; returns whether that slot was never used before.
    pub(crate) fn publish_new(&self, hash: u64, entry: *mut Entry<K, V>) -> bool {
        for i in self.probe(hash) {
            let slot = &self.slots[i];
            let p = slot.entry.load(Relaxed);
            if p.is_null() || p == tombstone() {
                slot.hash.store(hash, Relaxed);
                slot.entry.store(entry, Release);
                return p.is_null();
            }
        }
        unreachable!("the writer migrates a table before it fills up")
    }

    /// Every live entry's slot pointer (the writer's view).
    pub(crate) fn live(&self) -> impl Iterator<Item = (usize, *mut Entry<K, V>)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.entry.load(Relaxed)))
            .filter(|&(_, p)| is_entry(p))
    }
}

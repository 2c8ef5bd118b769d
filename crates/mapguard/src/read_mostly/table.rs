//! One open-addressing table of the read-mostly engine and the reader's search.
//!
//! A slot is one atomic pointer to an immutable, heap-allocated [`Entry`].
//! Writers (one per shard at a time, under the shard's writer lock) never
//! change an entry in place: they publish a new one with a release store of
//! the slot and retire the old one through the reclaimer, so a reader that
//! loaded a pointer reads a whole, committed entry. Linear probing; a slot is
//! one of:
//!
//! - null: never used; a probe for any key ends here;
//! - the tombstone marker: its entry was removed; probes continue past it;
//! - the moved marker: (only in a table being migrated away from) its entry
//!   now lives in the table's `next` table; probes continue past it;
//! - an entry pointer, carrying 3 bits of the key's hash in its low bits
//!   (entries are 8-aligned, so those bits are free).
//!
//! Why tagged pointers: a slot of 8 bytes instead of a (hash, pointer) pair of
//! 16 halves the table a read walks through, and the tag still lets a probe
//! skip 7 in 8 slots of other keys without touching their entries. With 16-byte
//! slots, random reads of a 32k-entry map took ~45 ns against papaya's ~25 ns;
//! the footprint, not instructions, made the difference. The full hash lives
//! in the entry, for the writer's migrations (no user `Hash` code under the
//! lock). See `shard.rs` for the migration protocol.

use std::borrow::Borrow;
use std::ptr;
use std::sync::atomic::Ordering::{Relaxed, Release};

use super::reclaim::Guard;
use crate::sync::AtomicPtr;

/// A committed key-value pair. Never mutated after publication.
pub(crate) struct Entry<K, V> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
    /// From the shard's clock: changes with every write of the key.
    pub(crate) version: u64,
}

/// The low bits of an entry pointer that carry a hash tag.
const TAG_BITS: usize = 0b111;
const _: () = assert!(std::mem::align_of::<Entry<(), ()>>() > TAG_BITS);

/// A removed entry's slot (a marker: its address bits are clear).
fn tombstone<K, V>() -> *mut Entry<K, V> {
    ptr::without_provenance_mut(1)
}

/// A slot whose entry was migrated to the next table.
fn moved<K, V>() -> *mut Entry<K, V> {
    ptr::without_provenance_mut(2)
}

/// The hash bits a slot carries: the top three, independent of the low bits
/// that pick the slot and the bits that pick the shard.
fn tag(hash: u64) -> usize {
    (hash >> 61) as usize
}

/// Whether a slot value points to an entry (not null or a marker).
fn is_entry<K, V>(p: *mut Entry<K, V>) -> bool {
    p.addr() & !TAG_BITS != 0
}

fn tagged<K, V>(entry: *mut Entry<K, V>, hash: u64) -> *mut Entry<K, V> {
    entry.map_addr(|a| a | tag(hash))
}

fn untagged<K, V>(p: *mut Entry<K, V>) -> *mut Entry<K, V> {
    p.map_addr(|a| a & !TAG_BITS)
}

/// Most slots a table may have in use (entries, tombstones and moved markers)
/// before it must be migrated: half, which keeps probes short.
pub(crate) fn max_used(capacity: usize) -> usize {
    capacity / 2
}

pub(crate) struct Table<K, V> {
    slots: Box<[AtomicPtr<Entry<K, V>>]>,
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
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The reader's search: `key`'s entry in this table, or else in the tables
    /// it was migrated to. Lock-free; loads only.
    ///
    /// Why the answer is current: an entry found live here has not been moved
    /// yet, and a writer moves a key (marking its slot moved) before it writes
    /// that key in the next table, so no newer version of it exists. A key that
    /// is not live here (its slot moved, or the key never here) is in the next
    /// table, published before any slot was marked and before any key was
    /// inserted there; so the search goes on there when this table's probe ends.
    pub(crate) fn find<'g, Q>(
        &'g self,
        guard: &'g Guard,
        hash: u64,
        key: &Q,
    ) -> Option<&'g Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let tag = tag(hash);
        let mut table = self;
        loop {
            // A plain index loop with `len - 1` as the mask: the compiler drops
            // the bounds checks, and the iterator form cost ~15 instructions more
            // per read (callgrind, `bench count-gets`).
            let slots = &table.slots[..];
            let mask = slots.len() - 1;
            let mut i = hash as usize & mask;
            for _ in 0..slots.len() {
                let p = guard.protect(&slots[i]);
                if p.is_null() {
                    break;
                }
                if p.addr() & TAG_BITS == tag && is_entry(p) {
                    // SAFETY: a published entry stays allocated while `guard` lives.
                    let entry = unsafe { &*untagged(p) };
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

    /// Slot indices in probe order for `hash`, once around the table.
    fn probe(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let mask = self.slots.len() - 1;
        let home = hash as usize & mask;
        (0..self.slots.len()).map(move |i| (home + i) & mask)
    }

    /// The entry in slot `i`, if live. The writer's view: only the writer (under
    /// the shard lock) may call the methods from here on, and it reads entries
    /// without a guard because only the writer retires them.
    fn live_at(&self, i: usize) -> Option<&Entry<K, V>> {
        let p = self.slots[i].load(Relaxed);
        // SAFETY: live entries are retired only by the writer, the caller.
        is_entry(p).then(|| unsafe { &*untagged(p) })
    }

    /// The slot of `key`'s live entry in this table only.
    pub(crate) fn locate<Q>(&self, hash: u64, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        for i in self.probe(hash) {
            if self.slots[i].load(Relaxed).is_null() {
                return None;
            }
            if let Some(e) = self.live_at(i) {
                if e.hash == hash && e.key.borrow() == key {
                    return Some(i);
                }
            }
        }
        None
    }

    /// The live entry in slot `i` (from [`locate`](Self::locate)).
    pub(crate) fn entry(&self, i: usize) -> &Entry<K, V> {
        self.live_at(i).expect("a located slot holds an entry")
    }

    /// Publishes `entry` (a new key, known absent) in the first free slot of its
    /// probe sequence; returns whether that slot was never used before.
    pub(crate) fn publish_new(&self, entry: *mut Entry<K, V>) -> bool {
        // SAFETY: `entry` is a live entry the writer owns.
        let hash = unsafe { (*entry).hash };
        for i in self.probe(hash) {
            let p = self.slots[i].load(Relaxed);
            if p.is_null() || p == tombstone() {
                self.slots[i].store(tagged(entry, hash), Release);
                return p.is_null();
            }
        }
        unreachable!("the writer migrates a table before it fills up")
    }

    /// Puts `entry` (same key) in slot `i`; returns the entry it replaced, now
    /// unreachable for new readers, for the caller to retire.
    pub(crate) fn replace(&self, i: usize, entry: *mut Entry<K, V>) -> *mut Entry<K, V> {
        // SAFETY: `entry` is a live entry the writer owns.
        let hash = unsafe { (*entry).hash };
        untagged(self.slots[i].swap(tagged(entry, hash), Release))
    }

    /// Empties slot `i`; returns its entry, for the caller to retire.
    pub(crate) fn remove(&self, i: usize) -> *mut Entry<K, V> {
        untagged(self.slots[i].swap(tombstone(), Release))
    }

    /// Moves slot `i`'s live entry, if any, to `target` (where its key must be
    /// absent), then marks the slot moved. Returns whether a slot of `target`
    /// that was never used got used.
    pub(crate) fn move_slot(&self, i: usize, target: &Table<K, V>) -> bool {
        let p = self.slots[i].load(Relaxed);
        if !is_entry(p) {
            return false;
        }
        // Published in the target before the old slot is marked: a reader that
        // sees the marker, or passes it, finds the entry in the target.
        let fresh = target.publish_new(untagged(p));
        self.slots[i].store(moved(), Release);
        fresh
    }

    /// Every live entry with its slot (the writer's view).
    pub(crate) fn live(&self) -> impl Iterator<Item = (usize, *mut Entry<K, V>)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.load(Relaxed)))
            .filter(|&(_, p)| is_entry(p))
            .map(|(i, p)| (i, untagged(p)))
    }
}

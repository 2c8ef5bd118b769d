//! One open-addressing table of the read-mostly engine and the reader's search.
//!
//! Slot `i` is a tag byte `tags[i]` and an atomic pointer `slots[i]` to an
//! immutable, heap-allocated [`Entry`]. Writers (one per shard at a time,
//! under the shard's writer lock) never change an entry in place: they publish
//! a new one with a release store of the slot and retire the old one through
//! the reclaimer, so a reader that loaded a pointer reads a whole, committed
//! entry. Linear probing; a slot's pointer is one of:
//!
//! - null: never used;
//! - the tombstone marker: its entry was removed; probes continue past it;
//! - the moved marker: (only in a table being migrated away from) its entry
//!   now lives in the table's `next` table; probes continue past it;
//! - an entry pointer.
//!
//! The tag byte is [`EMPTY`] until the slot is first used; a writer stores the
//! key's tag (7 bits of its hash) before it publishes the pointer, and a tag
//! never returns to `EMPTY`. A reader walks the tag bytes: it stops at `EMPTY`
//! (every slot of a key's probe sequence before the key's own was in use when
//! the key was written), and loads a pointer only where the tag matches, which
//! a slot of another key does 1 time in 128.
//!
//! Why a separate tag array: a table's tags are an eighth of its pointers, so
//! a lookup of an absent key, which reads only tags, stays in a small, mostly
//! cached array, and a present key's pointer load can start while its tag
//! loads. With the tag in the pointer's low bits instead (one array of 8-byte
//! slots), random lookups of a 32k-entry map's absent keys took ~18 ns against
//! papaya's ~18 ns (its layout is the same as this one); the footprint, not
//! instructions, made the difference. The full hash lives in the entry, for
//! the writer's migrations (no user `Hash` code under the lock). See
//! `shard.rs` for the migration protocol.

use std::borrow::Borrow;
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::reclaim::Guard;
use crate::sync::{AtomicPtr, AtomicU8};

/// A committed key-value pair. Never mutated after publication.
pub(crate) struct Entry<K, V> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
    /// From the shard's clock: changes with every write of the key.
    pub(crate) version: u64,
}

/// A removed entry's slot (a marker: its address bits are clear).
fn tombstone<K, V>() -> *mut Entry<K, V> {
    ptr::without_provenance_mut(1)
}

/// A slot whose entry was migrated to the next table.
fn moved<K, V>() -> *mut Entry<K, V> {
    ptr::without_provenance_mut(2)
}

/// The tag byte of a slot never used.
const EMPTY: u8 = 0;

/// The tag byte of a slot holding (or once holding) a key with this hash: the
/// top seven bits, independent of the low bits that pick the slot and the
/// bits below the top seven that pick the shard.
fn tag(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

/// Whether a slot value points to an entry (not null or a marker).
fn is_entry<K, V>(p: *mut Entry<K, V>) -> bool {
    p.addr() > 2
}

/// Most slots a table may have in use (entries, tombstones and moved markers)
/// before it must be migrated: half, which keeps probes short.
pub(crate) fn max_used(capacity: usize) -> usize {
    capacity / 2
}

pub(crate) struct Table<K, V> {
    tags: Box<[AtomicU8]>,
    slots: Box<[AtomicPtr<Entry<K, V>>]>,
    /// The table this one is being (or was) migrated to; null until a
    /// migration starts, never changed after.
    pub(crate) next: AtomicPtr<Table<K, V>>,
}

/// `len` atomics that start as zero bits: null pointers, [`EMPTY`] tags.
///
/// Why zeroed memory instead of writing each slot: the allocator hands a big
/// table fresh zero pages, mapped in only as a migration first touches them,
/// a few slots per write, instead of all of them (~36 page faults for 16k
/// slots, ~10 us each on the bench's VM) in the write that starts it.
#[cfg(not(loom))]
fn zeroed<T: Zeroable>(len: usize) -> Box<[T]> {
    use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};
    assert!(len > 0, "tables have slots");
    let layout = Layout::array::<T>(len).expect("table size overflows");
    // SAFETY: the layout has a non-zero size; `T` is an atomic integer or
    // pointer, for which all-zero bits are a valid value (0, or null), so the
    // zeroed allocation is `len` initialized `T`s, owned by the box.
    unsafe {
        let p = alloc_zeroed(layout).cast::<T>();
        if p.is_null() {
            handle_alloc_error(layout);
        }
        Box::from_raw(ptr::slice_from_raw_parts_mut(p, len))
    }
}

/// Atomics whose all-zero bit pattern is a valid value.
trait Zeroable {
    #[cfg(loom)]
    fn zero() -> Self;
}

impl Zeroable for AtomicU8 {
    #[cfg(loom)]
    fn zero() -> Self {
        AtomicU8::new(EMPTY)
    }
}

impl<T> Zeroable for AtomicPtr<T> {
    #[cfg(loom)]
    fn zero() -> Self {
        AtomicPtr::new(ptr::null_mut())
    }
}

/// loom's atomics are objects of its model, not plain memory: built one by one.
#[cfg(loom)]
fn zeroed<T: Zeroable>(len: usize) -> Box<[T]> {
    (0..len).map(|_| T::zero()).collect()
}

impl<K, V> Table<K, V> {
    /// An empty table of `capacity` slots (a power of two).
    pub(crate) fn new(capacity: usize) -> Self {
        debug_assert!(capacity.is_power_of_two());
        Table {
            tags: zeroed(capacity),
            slots: zeroed(capacity),
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
            // A plain index loop with `len - 1` as the mask, and `slots` cut to
            // the tags' length: the compiler drops the bounds checks (the
            // iterator form cost ~15 instructions more per read, callgrind).
            let tags = &table.tags[..];
            let slots = &table.slots[..tags.len()];
            let mask = tags.len() - 1;
            let mut i = hash as usize & mask;
            for _ in 0..tags.len() {
                let t = tags[i].load(Acquire);
                if t == EMPTY {
                    break;
                }
                if t == tag {
                    let p = guard.protect(&slots[i]);
                    if is_entry(p) {
                        // SAFETY: a published entry stays allocated while `guard` lives.
                        let entry = unsafe { &*p };
                        if entry.key.borrow() == key {
                            return Some(entry);
                        }
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
        is_entry(p).then(|| unsafe { &*p })
    }

    /// The slot of `key`'s live entry in this table only.
    pub(crate) fn locate<Q>(&self, hash: u64, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let tag = tag(hash);
        for i in self.probe(hash) {
            let t = self.tags[i].load(Relaxed);
            if t == EMPTY {
                return None;
            }
            if t != tag {
                continue;
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
                // The tag first: the release store of the pointer publishes it.
                self.tags[i].store(tag(hash), Relaxed);
                self.slots[i].store(entry, Release);
                return p.is_null();
            }
        }
        unreachable!("the writer migrates a table before it fills up")
    }

    /// Puts `entry` (same key) in slot `i`; returns the entry it replaced, now
    /// unreachable for new readers, for the caller to retire.
    pub(crate) fn replace(&self, i: usize, entry: *mut Entry<K, V>) -> *mut Entry<K, V> {
        // Same key, same tag.
        self.slots[i].swap(entry, Release)
    }

    /// Empties slot `i`; returns its entry, for the caller to retire.
    pub(crate) fn remove(&self, i: usize) -> *mut Entry<K, V> {
        self.slots[i].swap(tombstone(), Release)
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
        let fresh = target.publish_new(p);
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
    }
}

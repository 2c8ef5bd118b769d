//! One open-addressing table of the read-mostly engine and the reader's search.
//!
//! A table is an array of buckets, each one 64-byte cache line: a tag word
//! and seven atomic pointers to immutable, heap-allocated [`Entry`]s (slot
//! `i` is lane `i % 8` of bucket `i / 8`; lane 7 does not exist). Writers (one
//! per shard at a time, under the shard's writer lock) never change an entry
//! in place: they publish a new one with a release store of the slot and
//! retire the old one through the reclaimer, so a reader that loaded a pointer
//! reads a whole, committed entry. Linear probing over buckets; a key lives in
//! the first bucket of its probe sequence that had a free lane when it was
//! written. A slot's pointer is one of:
//!
//! - null: never used;
//! - the tombstone marker: its entry was removed;
//! - the moved marker: (only in a table being migrated away from) its entry
//!   now lives in the table's `next` table;
//! - an entry pointer.
//!
//! A lane's tag byte is zero (`EMPTY`) until its slot is first used; a writer
//! stores the key's tag (7 bits of its hash, high bit set) before it
//! publishes the pointer, and a tag never returns to `EMPTY`. A reader loads a
//! bucket's tag word, compares all seven tags at once, loads pointers only
//! where a tag matches (a lane of another key matches 1 time in 128), and
//! stops after the first bucket with an `EMPTY` lane: that bucket had a free
//! lane whenever the key could have been written, so the key is there or
//! earlier.
//!
//! Why buckets of one cache line: a lookup reads the tags and the pointer it
//! needs from the same line, then the entry: two cache misses for a hit, one
//! for a miss. Tag bytes in an array of their own cost a third line per hit
//! (callgrind's cache model: 2.8 L1 misses per random hit over a 32k-entry
//! map; papaya, with that layout, 2.5); tags in the pointers' low bits made
//! the table a reader walks eight times bigger. Entries keep no hash: a
//! migration hashes the keys it moves again (see [`Entry`]).
//! See `shard.rs` for the migration protocol.

use std::borrow::Borrow;
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::reclaim::Guard;
use crate::sync::{AtomicPtr, AtomicU64};

/// A committed key-value pair. Never mutated after publication.
///
/// No cached hash: a migration hashes the keys it moves again (with the map's
/// hasher, [`Table::move_slot`]), and a lookup compares keys only where the
/// slot's tag matched. Without it an entry of two 8-byte words and its version
/// is a 32-byte allocator block instead of 48: a third less memory per entry,
/// fewer cache misses per read when the cache is contended, fewer page faults
/// while a map grows.
pub(crate) struct Entry<K, V> {
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

/// Lanes (slots) in a bucket: a tag word and seven pointers fill 64 bytes.
const LANES: usize = 7;

/// Slot ids per bucket: ids are `bucket * 8 + lane`, so that splitting one is
/// a shift (id `bucket * 8 + 7` names no slot).
const IDS_PER_BUCKET: usize = 8;

/// The high bit of each lane's tag byte (lane 7 excluded).
const LANE_HIGH_BITS: u64 = 0x0080_8080_8080_8080;

/// Every lane's byte set to `byte`.
fn splat(byte: u8) -> u64 {
    u64::from(byte) * 0x0101_0101_0101_0101
}

/// Lanes whose tag equals `tag`, as the high bit of their byte (may also flag
/// a lane above a true match: callers check the key anyway).
fn matching(tags: u64, tag: u8) -> u64 {
    let x = tags ^ splat(tag);
    x.wrapping_sub(splat(1)) & !x & LANE_HIGH_BITS
}

/// Whether a lane of the bucket was never used (used tags have the high bit).
fn has_empty(tags: u64) -> bool {
    !tags & LANE_HIGH_BITS != 0
}

/// The lanes of a bucket whose tag may be `tag`, lowest first.
#[inline]
fn candidate_lanes(tags: u64, tag: u8) -> impl Iterator<Item = usize> {
    let mut hits = matching(tags, tag);
    std::iter::from_fn(move || {
        (hits != 0).then(|| {
            let lane = hits.trailing_zeros() as usize / 8;
            hits &= hits - 1;
            lane
        })
    })
}

/// Asks the processor to start loading the bucket `hash` starts at in the
/// bucket array at address `buckets` with `mask + 1` buckets
/// ([`Table::buckets_at`]). Plain address arithmetic, no dereference: the
/// array may be gone, and a prefetch of any address never faults.
#[cfg(not(loom))]
#[inline]
pub(crate) fn prefetch_bucket(buckets: usize, mask: usize, hash: u64) {
    let at = buckets.wrapping_add((hash as usize & mask) * std::mem::size_of::<Bucket<(), ()>>());
    prefetch(ptr::without_provenance::<u8>(at));
}

/// Asks the processor to start loading the cache line at `p` (a hint: it
/// never faults; nothing on other targets).
#[cfg(not(loom))]
#[inline]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sse` is part of the x86_64 baseline; a prefetch never faults
    // and changes nothing the program can observe.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[repr(C, align(64))]
struct Bucket<K, V> {
    /// Lane `l`'s tag is byte `l` (from the least significant); byte 7 is 0.
    tags: AtomicU64,
    slots: [AtomicPtr<Entry<K, V>>; LANES],
}

/// Whole pages of memory (4 KiB) a table of `capacity` slot ids spans.
#[cfg(not(loom))]
pub(crate) fn pages(capacity: usize) -> usize {
    capacity / IDS_PER_BUCKET * std::mem::size_of::<Bucket<(), ()>>() / 4096
}

/// Most slots a table may have in use (entries, tombstones and moved markers)
/// before it must be migrated: half, which keeps probes short.
pub(crate) fn max_used(capacity: usize) -> usize {
    capacity / 2
}

pub(crate) struct Table<K, V> {
    buckets: Buckets<K, V>,
    /// The table this one is being (or was) migrated to; null until a
    /// migration starts, never changed after.
    pub(crate) next: AtomicPtr<Table<K, V>>,
}

/// A table's buckets: zeroed memory, mapped in as it is used (see `zeroed.rs`).
#[cfg(not(loom))]
type Buckets<K, V> = super::zeroed::Zeroed<Bucket<K, V>>;

/// loom's atomics are objects of its model, not plain memory.
#[cfg(loom)]
type Buckets<K, V> = Box<[Bucket<K, V>]>;

impl<K, V> Bucket<K, V> {
    /// `len` buckets that start as zero bits: null pointers, `EMPTY` tags.
    #[cfg(not(loom))]
    fn empty(len: usize) -> Buckets<K, V> {
        // SAFETY: a bucket is atomic integers and pointers, for which all-zero
        // bits are a valid value (0, or null).
        unsafe { super::zeroed::Zeroed::new(len) }
    }

    /// Built one by one under loom.
    #[cfg(loom)]
    fn empty(len: usize) -> Buckets<K, V> {
        (0..len)
            .map(|_| Bucket {
                tags: AtomicU64::new(0),
                slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            })
            .collect()
    }
}

/// A table being made ready ahead of a growth, a page of memory per step (see
/// `Edit::prepare_growth`); not shared with anyone until it is a [`Table`].
#[cfg(not(loom))]
pub(crate) struct Preparing<K, V>(super::zeroed::Clearing<Bucket<K, V>>);

#[cfg(not(loom))]
impl<K, V> Preparing<K, V> {
    /// A table of `capacity` slot ids (as for [`Table::new`]) to prepare.
    pub(crate) fn new(capacity: usize) -> Self {
        debug_assert!(capacity.is_power_of_two() && capacity >= IDS_PER_BUCKET);
        // SAFETY: as in `Bucket::empty`.
        Preparing(unsafe { super::zeroed::Clearing::new(capacity / IDS_PER_BUCKET) })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.0.len() * IDS_PER_BUCKET
    }

    /// Readies one more page.
    pub(crate) fn step(&mut self) {
        self.0.step();
    }

    /// The empty table (readying what is left first).
    pub(crate) fn finish(self) -> Table<K, V> {
        Table {
            buckets: self.0.finish(),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

impl<K, V> Table<K, V> {
    /// An empty table of `capacity` slot ids (a power of two, 8 or more; seven
    /// in eight are slots).
    pub(crate) fn new(capacity: usize) -> Self {
        debug_assert!(capacity.is_power_of_two() && capacity >= IDS_PER_BUCKET);
        Table {
            buckets: Bucket::empty(capacity / IDS_PER_BUCKET),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Slot ids, the unit of [`max_used`] and of migration progress.
    pub(crate) fn capacity(&self) -> usize {
        self.buckets.len() * IDS_PER_BUCKET
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
            // the bounds checks (the iterator form cost ~15 instructions more
            // per read, callgrind).
            let buckets = &table.buckets[..];
            let mask = buckets.len() - 1;
            let mut b = hash as usize & mask;
            for _ in 0..buckets.len() {
                let bucket = &buckets[b];
                let tags = bucket.tags.load(Acquire);
                for lane in candidate_lanes(tags, tag) {
                    let p = guard.protect(&bucket.slots[lane]);
                    if is_entry(p) {
                        // SAFETY: a published entry stays allocated while `guard` lives.
                        let entry = unsafe { &*p };
                        if entry.key.borrow() == key {
                            return Some(entry);
                        }
                    }
                }
                if has_empty(tags) {
                    break;
                }
                b = (b + 1) & mask;
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

    /// The address of the bucket array and its length - 1, for
    /// [`prefetch_bucket`].
    #[cfg(not(loom))]
    pub(crate) fn buckets_at(&self) -> (usize, usize) {
        (self.buckets.as_ptr().addr(), self.buckets.len() - 1)
    }

    /// Bucket indices in probe order for `hash`, once around the table.
    fn probe(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let mask = self.buckets.len() - 1;
        let home = hash as usize & mask;
        (0..self.buckets.len()).map(move |i| (home + i) & mask)
    }

    /// The slot with id `i`, if the id names one.
    fn slot(&self, i: usize) -> Option<&AtomicPtr<Entry<K, V>>> {
        self.buckets[i / IDS_PER_BUCKET]
            .slots
            .get(i % IDS_PER_BUCKET)
    }

    /// The entry in slot `i`, if live. The writer's view: only the writer (under
    /// the shard lock) may call the methods from here on, and it reads entries
    /// without a guard because only the writer retires them.
    fn live_at(&self, i: usize) -> Option<&Entry<K, V>> {
        let p = self.slot(i)?.load(Relaxed);
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
        for b in self.probe(hash) {
            let tags = self.buckets[b].tags.load(Relaxed);
            for lane in candidate_lanes(tags, tag) {
                let i = b * IDS_PER_BUCKET + lane;
                if let Some(e) = self.live_at(i) {
                    if e.key.borrow() == key {
                        return Some(i);
                    }
                }
            }
            if has_empty(tags) {
                return None;
            }
        }
        None
    }

    /// The live entry in slot `i` (from [`locate`](Self::locate)).
    pub(crate) fn entry(&self, i: usize) -> &Entry<K, V> {
        self.live_at(i).expect("a located slot holds an entry")
    }

    fn located(&self, i: usize) -> &AtomicPtr<Entry<K, V>> {
        self.slot(i).expect("a located slot id names a slot")
    }

    /// Publishes `entry` (a new key, known absent, whose hash is `hash`) in the
    /// first free slot of its probe sequence; returns whether that slot was
    /// never used before.
    pub(crate) fn publish_new(&self, hash: u64, entry: *mut Entry<K, V>) -> bool {
        for b in self.probe(hash) {
            let bucket = &self.buckets[b];
            for (lane, slot) in bucket.slots.iter().enumerate() {
                let p = slot.load(Relaxed);
                if p.is_null() || p == tombstone() {
                    // The tag first: the release store of the pointer publishes
                    // it. Only the writer stores tags, so load-then-store loses
                    // nothing.
                    let tags = bucket.tags.load(Relaxed);
                    let shift = lane * 8;
                    let tags = tags & !(0xff << shift) | u64::from(tag(hash)) << shift;
                    bucket.tags.store(tags, Relaxed);
                    slot.store(entry, Release);
                    return p.is_null();
                }
            }
        }
        unreachable!("the writer migrates a table before it fills up")
    }

    /// Puts `entry` (same key) in slot `i`; returns the entry it replaced, now
    /// unreachable for new readers, for the caller to retire.
    pub(crate) fn replace(&self, i: usize, entry: *mut Entry<K, V>) -> *mut Entry<K, V> {
        // Same key, same tag.
        self.exchange(i, entry)
    }

    /// Empties slot `i`; returns its entry, for the caller to retire.
    pub(crate) fn remove(&self, i: usize) -> *mut Entry<K, V> {
        self.exchange(i, tombstone())
    }

    /// Stores `p` in slot `i` (release: it publishes `p`'s entry), returning
    /// what was there. A load and a store, not an atomic swap: only the writer
    /// stores slots, and a swap is a locked instruction (a full barrier on x86).
    fn exchange(&self, i: usize, p: *mut Entry<K, V>) -> *mut Entry<K, V> {
        let slot = self.located(i);
        let old = slot.load(Relaxed);
        slot.store(p, Release);
        old
    }

    /// Moves slot `i`'s live entry, if any, to `target` (where its key must be
    /// absent; `hash_of` hashes it again), then marks the slot moved. Returns
    /// whether a slot of `target` that was never used got used.
    pub(crate) fn move_slot(
        &self,
        i: usize,
        target: &Table<K, V>,
        hash_of: &dyn Fn(&K) -> u64,
    ) -> bool {
        let Some(slot) = self.slot(i) else {
            return false;
        };
        let p = slot.load(Relaxed);
        if !is_entry(p) {
            return false;
        }
        // Published in the target before the old slot is marked: a reader that
        // sees the marker, or passes it, finds the entry in the target.
        // SAFETY: live entries are retired only by the writer, the caller.
        let hash = hash_of(unsafe { &(*p).key });
        let fresh = target.publish_new(hash, p);
        slot.store(moved(), Release);
        fresh
    }

    /// Starts loading the entry in slot `i`, if any (the writer's view): a
    /// migration hashes the key of every entry it moves, a cache miss each,
    /// so it asks for entries a few slots ahead of the one it moves. (Not
    /// under loom: a load the models need not explore.)
    #[cfg(not(loom))]
    pub(crate) fn prefetch_entry(&self, i: usize) {
        if let Some(entry) = self.live_at(i) {
            prefetch(entry);
        }
    }

    /// Every live entry with its slot (the writer's view).
    pub(crate) fn live(&self) -> impl Iterator<Item = (usize, *mut Entry<K, V>)> + '_ {
        self.buckets.iter().enumerate().flat_map(|(b, bucket)| {
            bucket
                .slots
                .iter()
                .enumerate()
                .filter_map(move |(lane, s)| {
                    let p = s.load(Relaxed);
                    is_entry(p).then_some((b * IDS_PER_BUCKET + lane, p))
                })
        })
    }
}

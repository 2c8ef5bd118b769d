//! One open-addressing table of the read-mostly engine and the reader's search.
//!
//! A table is an array of slots that hold their entries inline, and beside it
//! an array of tag words, one `u64` per group of eight slots, a byte per slot
//! (slot `i` is lane `i % 8` of group `i / 8`). Linear probing over groups: a
//! key lives in the first group of its probe sequence that had a free slot
//! when it was written. A slot's byte is its state:
//!
//! - `EMPTY` (0): never used;
//! - a live tag (7 bits of the key's hash, high bit set): the slot holds that
//!   key's committed entry;
//! - `DEAD`: removed or replaced; its entry stays as it was for readers that
//!   found it. Each group keeps the epoch stamp of its latest death
//!   (`reclaim.rs`): once that expired, no reader can still hold any of the
//!   group's dead entries, and a write may reuse the slot (dropping the old
//!   entry first);
//! - `MOVED`: (only in a table being migrated away from) its entry was copied to
//!   the table's `next` table, whose copy owns it.
//!
//! Writers (one per shard at a time, under the shard's writer lock) never
//! change a live entry: a write fills a free slot, then publishes it with a
//! release store of its tag word; a replacement fills another slot and switches
//! the two states. So a reader that read a live tag reads a whole, committed
//! entry, which no writer touches until no reader can hold it. A reader loads
//! a group's tag word, compares all eight tags at once, reads entries only
//! where a tag matches (another key's matches 1 time in 128), and stops after
//! the first group with an `EMPTY` slot: that group had a free slot whenever
//! the key could have been written, so the key is there or earlier.
//!
//! Why entries inline, tags apart: a lookup reads the tag word from an array
//! of one byte per slot, small enough to stay in a core's cache for maps of
//! hundreds of thousands of keys, then the entry: one cache miss for a hit,
//! none for a miss. Buckets of seven pointers to entries allocated one by one
//! (the tags in the bucket's line) cost two misses per hit and one per miss,
//! an allocation per write, and a third of the bench's `exchange` time waiting
//! on them (perf, one thread). The cost: a free slot
//! takes an entry's room (as in `hashbrown`), and a replacement takes another
//! slot until the old one may be reused.
//!
//! Why dead slots are reused in place, by stamp: listing every dead slot in
//! its shard's garbage would make a later write mark a whole expired bag of
//! them free, touching a random tag word for each, and the slots would wait
//! for a thousand others to be listed before their grace period even began.
//! A one-byte stamp per group costs a load of the epoch and a byte
//! stored when a slot dies, and the same two loads when a write meets dead
//! slots, and the slots wait only for the epoch to move on.
//! See `shard.rs` for the migration protocol.

use std::borrow::Borrow;
use std::cell::UnsafeCell;
use std::mem::{needs_drop, MaybeUninit};
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::reclaim::{self, Guard};
use crate::sync::{AtomicPtr, AtomicU64, AtomicU8};

/// A committed key-value pair. Never mutated after publication.
///
/// No cached hash: a migration hashes the keys it moves again (with the map's
/// hasher, [`Table::move_slot`]), and a lookup compares keys only where the
/// slot's tag matched; every slot has an entry's room, so every byte saved
/// here is saved per slot.
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    /// From the shard's clock: changes with every write of the key.
    pub(crate) version: u64,
}

/// A slot's memory: an entry while its state is a live tag or `DEAD`.
type Slot<K, V> = UnsafeCell<MaybeUninit<Entry<K, V>>>;

/// Slot states other than a live tag (see the module docs).
const EMPTY: u8 = 0;
const DEAD: u8 = 1;
const MOVED: u8 = 2;

/// The tag byte of a slot holding a key with this hash: the top seven bits,
/// independent of the low bits that pick the group and the bits below the top
/// seven that pick the shard; the high bit marks it live.
fn tag(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

fn is_live(state: u8) -> bool {
    state & 0x80 != 0
}

/// Slots in a group: one tag word.
const LANES: usize = 8;

const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Every lane's byte set to `byte`.
fn splat(byte: u8) -> u64 {
    u64::from(byte) * 0x0101_0101_0101_0101
}

/// The lanes whose state is `state`, as the high bit of their byte (exact:
/// the writer picks slots with it).
#[inline]
fn lanes_in(tags: u64, state: u8) -> u64 {
    let x = tags ^ splat(state);
    !(((x & !HIGH_BITS).wrapping_add(!HIGH_BITS)) | x) & HIGH_BITS
}

/// Whether a slot of the group was never used.
fn has_empty(tags: u64) -> bool {
    lanes_in(tags, EMPTY) != 0
}

/// The lanes flagged in `lanes` (from [`lanes_in`]), lowest first.
#[inline]
fn each_lane(mut lanes: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (lanes != 0).then(|| {
            let lane = lanes.trailing_zeros() as usize / 8;
            lanes &= lanes - 1;
            lane
        })
    })
}

/// The lowest lane flagged in `lanes` (from [`lanes_in`]).
fn first_lane(lanes: u64) -> Option<usize> {
    each_lane(lanes).next()
}

/// The live lanes of a group, flagged as [`lanes_in`] flags them (a live tag
/// is the only state with the high bit set).
fn live_in(tags: u64) -> u64 {
    tags & HIGH_BITS
}

/// The live lanes of a group, lowest first.
fn live_lanes(tags: u64) -> impl Iterator<Item = usize> {
    each_lane(live_in(tags))
}

/// Lane `lane`'s state in `tags`.
fn state_in(tags: u64, lane: usize) -> u8 {
    (tags >> (lane * 8)) as u8
}

/// A free slot the writer found, with its group's tag word as loaded.
struct FreeSlot {
    group: usize,
    lane: usize,
    /// Never used before (else dead, with an entry to drop).
    fresh: bool,
    tags: u64,
}

/// What a new entry's slot held: nothing (a never-used slot, one more used
/// slot of the table), or a dead entry, whose destructor (when it has one) the
/// caller runs after releasing the writer lock.
pub(crate) enum Took<K, V> {
    Empty,
    Dead(Option<Entry<K, V>>),
}

impl FreeSlot {
    fn slot(&self) -> usize {
        self.group * LANES + self.lane
    }
}

/// `tags` with lane `lane`'s state set to `state`.
fn with_state(tags: u64, lane: usize, state: u8) -> u64 {
    let shift = lane * 8;
    tags & !(0xff << shift) | u64::from(state) << shift
}

/// Asks the processor to start loading the tag word `hash` starts at in the
/// tag array at address `tags` with `mask + 1` words ([`Table::tags_at`]).
/// Plain address arithmetic, no dereference: the array may be gone, and a
/// prefetch of any address never faults.
#[cfg(not(loom))]
#[inline]
pub(crate) fn prefetch_group(tags: usize, mask: usize, hash: u64) {
    let at = tags.wrapping_add((hash as usize & mask) * std::mem::size_of::<u64>());
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

/// Whole pages of memory (4 KiB) a table of `capacity` slots spans.
#[cfg(not(loom))]
pub(crate) fn pages<K, V>(capacity: usize) -> usize {
    capacity * (1 + std::mem::size_of::<Slot<K, V>>()) / 4096
}

/// Most slots a table may have in use (all but `EMPTY` ones) before it must
/// be migrated: three quarters. Removed and replaced entries keep their slots
/// until their bag expires (up to a few thousand per shard), and a table that
/// reached the limit with them is migrated to one of the same size to drop
/// them; with the limit at half, that takes a third of the bench's `exchange`
/// throughput at two threads. Probes stay short: a reader stops at the first
/// group with an empty slot, and eight slots at three quarters full leave
/// most groups one.
pub(crate) fn max_used(capacity: usize) -> usize {
    capacity / 4 * 3
}

pub(crate) struct Table<K, V> {
    /// A tag word per group of [`LANES`] slots.
    tags: Array<AtomicU64>,
    /// Per group, the epoch stamp of the latest slot marked dead in it (the
    /// writer's alone: atomic only because the table is shared).
    stamps: Array<AtomicU8>,
    slots: Array<Slot<K, V>>,
    /// The table this one is being (or was) migrated to; null until a
    /// migration starts, never changed after.
    pub(crate) next: AtomicPtr<Table<K, V>>,
}

/// A table's arrays: zeroed memory, mapped in as it is used (see `zeroed.rs`).
#[cfg(not(loom))]
type Array<T> = super::zeroed::Zeroed<T>;

/// loom's atomics are objects of its model, not plain memory.
#[cfg(loom)]
type Array<T> = Box<[T]>;

/// `len` values of `T` that start as zero bits.
///
/// # Safety
/// All-zero bits must be a valid `T`.
#[cfg(not(loom))]
unsafe fn zeroed<T>(len: usize) -> Array<T> {
    // SAFETY: the caller's contract.
    unsafe { super::zeroed::Zeroed::new(len) }
}

#[cfg(loom)]
fn zero_atomics<A: Default>(len: usize) -> Array<A> {
    (0..len).map(|_| A::default()).collect()
}

#[cfg(loom)]
fn empty_slots<K, V>(len: usize) -> Array<Slot<K, V>> {
    (0..len)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect()
}

/// A table being made ready ahead of a growth, a page of memory per step (see
/// `Edit::prepare_growth`); not shared with anyone until it is a [`Table`].
#[cfg(not(loom))]
pub(crate) struct Preparing<K, V> {
    tags: super::zeroed::Clearing<AtomicU64>,
    stamps: super::zeroed::Clearing<AtomicU8>,
    slots: super::zeroed::Clearing<Slot<K, V>>,
}

#[cfg(not(loom))]
impl<K, V> Preparing<K, V> {
    /// A table of `capacity` slots (as for [`Table::new`]) to prepare.
    pub(crate) fn new(capacity: usize) -> Self {
        debug_assert!(capacity.is_power_of_two() && capacity >= LANES);
        // SAFETY: zero bits are a valid atomic integer, and any bits a valid
        // `MaybeUninit`.
        unsafe {
            Preparing {
                tags: super::zeroed::Clearing::new(capacity / LANES),
                stamps: super::zeroed::Clearing::new(capacity / LANES),
                slots: super::zeroed::Clearing::new(capacity),
            }
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Readies one more page of each array.
    pub(crate) fn step(&mut self) {
        self.tags.step();
        self.stamps.step();
        self.slots.step();
    }

    /// The empty table (readying what is left first).
    pub(crate) fn finish(self) -> Table<K, V> {
        Table {
            tags: self.tags.finish(),
            stamps: self.stamps.finish(),
            slots: self.slots.finish(),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

impl<K, V> Table<K, V> {
    /// An empty table of `capacity` slots (a power of two, 8 or more).
    pub(crate) fn new(capacity: usize) -> Self {
        debug_assert!(capacity.is_power_of_two() && capacity >= LANES);
        let groups = capacity / LANES;
        #[cfg(not(loom))]
        // SAFETY: as in `Preparing::new`.
        let (tags, stamps, slots) = unsafe { (zeroed(groups), zeroed(groups), zeroed(capacity)) };
        #[cfg(loom)]
        let (tags, stamps, slots) = (
            zero_atomics(groups),
            zero_atomics(groups),
            empty_slots(capacity),
        );
        Table {
            tags,
            stamps,
            slots,
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Slots, the unit of [`max_used`] and of migration progress.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The entry in slot `i`.
    ///
    /// # Safety
    /// `i` is in bounds, and its state is (or, when the caller loaded it, was)
    /// live: its entry stays as it is until it is freed, which waits for every
    /// reader that could have seen it live, and for the writer, the caller.
    #[inline]
    unsafe fn entry_at(&self, i: usize) -> &Entry<K, V> {
        debug_assert!(i < self.slots.len());
        // SAFETY: the caller's contract.
        unsafe { (*self.slots.get_unchecked(i).get()).assume_init_ref() }
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
            // the bounds checks (the iterator form costs ~15 instructions more
            // per read, callgrind).
            let tags = &table.tags[..];
            let mask = tags.len() - 1;
            let mut g = hash as usize & mask;
            for _ in 0..tags.len() {
                let word = tags[g].load(Acquire);
                for lane in each_lane(lanes_in(word, tag)) {
                    // SAFETY: a live slot, in bounds (eight slots a group);
                    // `guard` keeps its entry as it is while it lives.
                    let entry = unsafe { table.entry_at(g * LANES + lane) };
                    if entry.key.borrow() == key {
                        return Some(entry);
                    }
                }
                if has_empty(word) {
                    break;
                }
                g = (g + 1) & mask;
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

    /// The address of the tag array and its length - 1, for
    /// [`prefetch_group`].
    #[cfg(not(loom))]
    pub(crate) fn tags_at(&self) -> (usize, usize) {
        (self.tags.as_ptr().addr(), self.tags.len() - 1)
    }

    /// Group indices in probe order from group `first`, once around the table.
    fn probe(&self, first: usize) -> impl Iterator<Item = usize> + '_ {
        let mask = self.tags.len() - 1;
        (0..self.tags.len()).map(move |i| (first + i) & mask)
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & (self.tags.len() - 1)
    }

    /// Slot `i`'s state. The writer's view: only the writer (under the shard
    /// lock) may call the methods from here on, and it reads entries without a
    /// guard because only the writer frees them.
    fn state(&self, i: usize) -> u8 {
        state_in(self.tags[i / LANES].load(Relaxed), i % LANES)
    }

    /// Sets slot `i`'s state (release: a live tag publishes its entry).
    fn set_state(&self, i: usize, state: u8) {
        let tags = &self.tags[i / LANES];
        tags.store(with_state(tags.load(Relaxed), i % LANES, state), Release);
    }

    /// The entry in slot `i`, if live.
    fn live_at(&self, i: usize) -> Option<&Entry<K, V>> {
        // SAFETY: a live slot; only the writer, the caller, frees entries.
        is_live(self.state(i)).then(|| unsafe { self.entry_at(i) })
    }

    /// The slot of `key`'s live entry in this table only. Always inlined:
    /// every write probes once, and a call's prologue and epilogue would be 8
    /// of its ~350 instructions (callgrind, `bench count-gets --writes`).
    #[inline(always)]
    pub(crate) fn locate<Q>(&self, hash: u64, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let tag = tag(hash);
        // An index loop with `len - 1` as the mask, and the home word loaded
        // once for the prefetch and the probe, as in `find`: ~8 instructions
        // per write fewer than an iterator and a second load (callgrind,
        // `bench count-gets --writes`).
        let tags = &self.tags[..];
        let mask = tags.len() - 1;
        let mut g = hash as usize & mask;
        let mut word = tags[g].load(Relaxed);
        #[cfg(not(loom))]
        self.prefetch_free_slot(g, word);
        for _ in 0..tags.len() {
            for lane in each_lane(lanes_in(word, tag)) {
                let i = g * LANES + lane;
                // SAFETY: as in `live_at`.
                if unsafe { self.entry_at(i) }.key.borrow() == key {
                    return Some(i);
                }
            }
            if has_empty(word) {
                return None;
            }
            g = (g + 1) & mask;
            word = tags[g].load(Relaxed);
        }
        None
    }

    /// The live entry in slot `i` (from [`locate`](Self::locate)).
    pub(crate) fn entry(&self, i: usize) -> &Entry<K, V> {
        self.live_at(i).expect("a located slot holds an entry")
    }

    /// The first slot a new entry may take, probing from group `first`: in
    /// each group a dead one if `reuse` and the group's dead are reusable
    /// (keeping the table compact), else a never-used one.
    #[inline]
    fn free_slot(&self, first: usize, reuse: bool) -> FreeSlot {
        for group in self.probe(first) {
            let tags = self.tags[group].load(Relaxed);
            let dead = lanes_in(tags, DEAD);
            let (lanes, fresh) = if reuse && dead != 0 && self.reusable(group) {
                (dead, false)
            } else {
                (lanes_in(tags, EMPTY), true)
            };
            if let Some(lane) = first_lane(lanes) {
                return FreeSlot {
                    group,
                    lane,
                    fresh,
                    tags,
                };
            }
        }
        unreachable!("the writer migrates a table before it fills up")
    }

    /// Whether no reader can hold the dead entries of group `group` any more.
    #[inline]
    fn reusable(&self, group: usize) -> bool {
        reclaim::expired(self.stamps[group].load(Relaxed))
    }

    /// Stamps group `group`, one of whose slots was just marked dead.
    #[inline]
    fn stamp(&self, group: usize) {
        self.stamps[group].store(reclaim::stamp_unlinked(), Relaxed);
    }

    /// Starts loading the slot a new entry would take in group `g` (a dead
    /// one, or else a never-used one: a guess, the stamp is not checked),
    /// while the writer compares keys: an insert or a replacement writes it
    /// next, and the lock's release would wait for that store's cache miss
    /// (perf, bench `exchange` loop, one thread: a third of an insert's time).
    #[cfg(not(loom))]
    fn prefetch_free_slot(&self, g: usize, tags: u64) {
        if let Some(lane) = first_lane(lanes_in(tags, DEAD) | lanes_in(tags, EMPTY)) {
            prefetch(self.slots[g * LANES + lane].get());
        }
    }

    /// Writes `entry` into free slot `free`, unpublished; returns what the
    /// slot held.
    fn fill(&self, free: &FreeSlot, entry: Entry<K, V>) -> Took<K, V> {
        let i = free.slot();
        let took = if free.fresh {
            Took::Empty
        } else {
            // SAFETY: a reusable dead slot: its entry is owned by the table,
            // and no reader that could have seen it live is left.
            Took::Dead(unsafe { self.take_dead(i) })
        };
        // SAFETY: a free slot: no reader reads it (its state is not live),
        // and the writer, the caller, is the only one writing slots.
        unsafe { (*self.slots[i].get()).write(entry) };
        took
    }

    /// Takes the entry out of dead slot `i` when it has a destructor to run
    /// (else leaves the bytes: reading them would be a cache miss for
    /// nothing); with feature `zeroize`, wipes the slot.
    ///
    /// # Safety
    /// No reader that could have seen the slot live is left, and the caller
    /// overwrites the slot next.
    unsafe fn take_dead(&self, i: usize) -> Option<Entry<K, V>> {
        debug_assert_eq!(self.state(i), DEAD);
        // SAFETY: a dead slot holds the entry it had when live, owned by the
        // table until reused, read out once.
        let entry = needs_drop::<Entry<K, V>>().then(|| unsafe { ptr::read(self.entry_at(i)) });
        #[cfg(feature = "zeroize")]
        // SAFETY: the slot's entry was read out (or needs no drop), and no
        // reader is left to read it.
        unsafe {
            wipe(self.slots[i].get(), 1)
        };
        entry
    }

    /// Publishes `entry` (a new key, known absent, whose hash is `hash`) in the
    /// first free slot of its probe sequence.
    pub(crate) fn publish_new(&self, hash: u64, entry: Entry<K, V>) -> Took<K, V> {
        self.publish_in(self.free_slot(self.home(hash), true), hash, entry)
    }

    fn publish_in(&self, free: FreeSlot, hash: u64, entry: Entry<K, V>) -> Took<K, V> {
        let took = self.fill(&free, entry);
        self.tags[free.group].store(with_state(free.tags, free.lane, tag(hash)), Release);
        took
    }

    /// Puts `entry` (same key) in place of live slot `i`'s: in a free slot of
    /// `i`'s group or a later one of the probe sequence, then marks `i`
    /// `DEAD` and stamps its group.
    ///
    /// Why not an earlier group: a reader that passed it before the new entry
    /// was published, and reached `i` after it was marked, would miss the key.
    /// Probing on from `i`, a reader either finds the old entry live or, having
    /// seen it dead (acquire), finds the new one, published before. In one
    /// group, one store switches both.
    pub(crate) fn replace(&self, i: usize, entry: Entry<K, V>) -> Took<K, V> {
        let (group, lane) = (i / LANES, i % LANES);
        let free = self.free_slot(group, true);
        let took = self.fill(&free, entry);
        if free.group == group {
            let tag = state_in(free.tags, lane);
            debug_assert!(is_live(tag));
            let switched = with_state(free.tags, free.lane, tag);
            self.tags[group].store(with_state(switched, lane, DEAD), Release);
        } else {
            self.set_state(free.slot(), self.state(i));
            self.set_state(i, DEAD);
        }
        self.stamp(group);
        took
    }

    /// Marks live slot `i` `DEAD` and stamps its group.
    pub(crate) fn remove(&self, i: usize) {
        debug_assert!(is_live(self.state(i)));
        self.set_state(i, DEAD);
        self.stamp(i / LANES);
    }

    /// Moves slot `i`'s live entry, if any, to `target` (where its key must be
    /// absent; `hash_of` hashes it again), then marks the slot moved. Returns
    /// whether there was one (it took a never-used slot of `target`).
    pub(crate) fn move_slot(
        &self,
        i: usize,
        target: &Table<K, V>,
        hash_of: &dyn Fn(&K) -> u64,
    ) -> bool {
        if !is_live(self.state(i)) {
            return false;
        }
        // SAFETY: live; marked moved next.
        unsafe { self.copy_to(i, target, hash_of) };
        self.set_state(i, MOVED);
        true
    }

    /// Publishes live slot `i`'s entry in `target` as a bitwise copy that
    /// owns it from then on: a moved slot is never dropped, and readers still
    /// here read the same bytes. Published before the old slot is marked: a
    /// reader that sees the marker, or passes it, finds the entry in the
    /// target. The copy takes a never-used slot (dead ones, left by writes
    /// during the migration, are not reused here: a migration drops nothing).
    ///
    /// # Safety
    /// Slot `i` is live, and the caller marks it moved before anything else
    /// reads it out.
    unsafe fn copy_to(&self, i: usize, target: &Table<K, V>, hash_of: &dyn Fn(&K) -> u64) {
        // SAFETY: the caller's contract: a live entry, read out once.
        let entry = unsafe { ptr::read(self.entry_at(i)) };
        let hash = hash_of(&entry.key);
        let free = target.free_slot(target.home(hash), false);
        let took = target.publish_in(free, hash, entry);
        debug_assert!(matches!(took, Took::Empty));
    }

    /// Moves the live entries of slots `from..to` (whole groups) to `target`
    /// like [`move_slot`](Self::move_slot), marking each group's slots moved
    /// in one store after publishing them all. Returns how many it moved
    /// (each took a never-used slot of `target`).
    pub(crate) fn move_slots(
        &self,
        from: usize,
        to: usize,
        target: &Table<K, V>,
        hash_of: &dyn Fn(&K) -> u64,
    ) -> usize {
        debug_assert!(from.is_multiple_of(LANES) && to.is_multiple_of(LANES));
        let mut moved = 0;
        for group in from / LANES..to / LANES {
            #[cfg(not(loom))]
            if group + 1 < self.tags.len() {
                self.prefetch_live(group + 1);
            }
            let tags = self.tags[group].load(Relaxed);
            let mut marked = tags;
            for lane in live_lanes(tags) {
                // SAFETY: live; marked moved below.
                unsafe { self.copy_to(group * LANES + lane, target, hash_of) };
                moved += 1;
                marked = with_state(marked, lane, MOVED);
            }
            if marked != tags {
                self.tags[group].store(marked, Release);
            }
        }
        moved
    }

    /// Starts loading the entries of group `group`'s live slots (the writer's
    /// view): a migration hashes the key of every entry it moves, a cache
    /// miss each, so it asks for the next group's while it moves one. (Not
    /// under loom: loads the models need not explore.)
    #[cfg(not(loom))]
    fn prefetch_live(&self, group: usize) {
        for lane in live_lanes(self.tags[group].load(Relaxed)) {
            prefetch(self.slots[group * LANES + lane].get());
        }
    }

    /// Every live entry with its slot (the writer's view).
    pub(crate) fn live(&self) -> impl Iterator<Item = (usize, &Entry<K, V>)> + '_ {
        // SAFETY: live slots, as in `live_at`.
        self.slots_in(live_in)
            .map(|i| (i, unsafe { self.entry_at(i) }))
    }

    /// The slots of the lanes `lanes` picks from each group's tag word (as
    /// [`lanes_in`] does), a tag word load per group.
    fn slots_in<'a>(
        &'a self,
        lanes: impl Fn(u64) -> u64 + Copy + 'a,
    ) -> impl Iterator<Item = usize> + 'a {
        (0..self.tags.len()).flat_map(move |group| {
            each_lane(lanes(self.tags[group].load(Relaxed))).map(move |lane| group * LANES + lane)
        })
    }
}

impl<K, V> Drop for Table<K, V> {
    /// Drops the entries of live and dead slots: the table owns them (a moved
    /// slot's copy is owned by the next table).
    fn drop(&mut self) {
        if needs_drop::<Entry<K, V>>() {
            for i in self.slots_in(|tags| live_in(tags) | lanes_in(tags, DEAD)) {
                // SAFETY: a live or dead slot's entry, owned here, dropped once.
                unsafe { (*self.slots[i].get()).assume_init_drop() };
            }
        }
        // The bytes of what the slots held, the copies a migration left behind
        // in moved slots included.
        #[cfg(feature = "zeroize")]
        // SAFETY: the table is being freed: nothing reads its slots any more.
        unsafe {
            wipe(UnsafeCell::raw_get(self.slots.as_ptr()), self.capacity())
        };
    }
}

/// Overwrites `len` slots from `slots` with zeroes (feature `zeroize`), in
/// writes the compiler keeps even though the memory is freed next: freed
/// slots and freed tables hold no copy of a value (see the crate docs).
///
/// # Safety
/// Nothing reads or writes the slots meanwhile.
#[cfg(feature = "zeroize")]
unsafe fn wipe<K, V>(slots: *mut MaybeUninit<Entry<K, V>>, len: usize) {
    use zeroize::Zeroize;
    let bytes = len * std::mem::size_of::<Slot<K, V>>();
    // SAFETY: the caller's contract; any bytes are a valid `MaybeUninit`.
    unsafe { std::slice::from_raw_parts_mut(slots.cast::<u8>(), bytes) }.zeroize();
}

#[cfg(all(test, feature = "zeroize"))]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_holds_no_copy_of_its_old_value() {
        let table: Table<u64, [u8; 16]> = Table::new(8);
        let (hash, key) = (0x5555_0000_0000_0003, 1);
        let entry = Entry {
            key,
            value: [0xab; 16],
            version: 1,
        };
        let _ = table.publish_new(hash, entry);
        let i = table.locate(hash, &key).expect("published");
        table.remove(i);
        // SAFETY: no reader exists.
        assert_eq!(unsafe { table.take_dead(i) }.map(|e| e.key), None);
        // SAFETY: the slot's bytes, read while nothing writes them.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                table.slots[i].get().cast::<u8>(),
                std::mem::size_of::<Slot<u64, [u8; 16]>>(),
            )
        };
        assert!(bytes.iter().all(|&b| b == 0), "{bytes:?}");
    }
}

#[cfg(all(test, not(loom)))]
mod reuse_tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn entry(key: u64) -> Entry<u64, String> {
        Entry {
            key,
            value: key.to_string(),
            version: key,
        }
    }

    /// Hashes that all start at group 0 (of the test's 16-slot table).
    fn hash(key: u64) -> u64 {
        key << 57
    }

    #[test]
    fn a_dead_slot_is_reused_in_place_once_its_stamp_expired() {
        let table: Table<u64, String> = Table::new(16);
        let _ = table.publish_new(hash(1), entry(1));
        let dead = table.locate(hash(1), &1).expect("published");
        // A reader that may have found key 1's entry: while it stays, the
        // epoch cannot get three past the slot's stamp, and a new entry takes
        // a never-used slot.
        let reader = reclaim::pin();
        table.remove(dead);
        for _ in 0..3 {
            reclaim::advance();
        }
        assert!(matches!(table.publish_new(hash(2), entry(2)), Took::Empty));
        assert_ne!(table.locate(hash(2), &2), Some(dead));
        drop(reader);
        // Other tests' readers pin the same process-wide epoch: advance until
        // the stamp expired rather than a fixed number of times.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !table.reusable(dead / LANES) && Instant::now() < deadline {
            reclaim::advance();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(table.reusable(dead / LANES), "the epoch never advanced");
        match table.publish_new(hash(3), entry(3)) {
            Took::Dead(Some(old)) => assert_eq!((old.key, old.value.as_str()), (1, "1")),
            _ => panic!("the dead slot was not reused, or its entry not handed back"),
        }
        assert_eq!(table.locate(hash(3), &3), Some(dead));
        assert_eq!(table.entry(dead).value, "3");
    }
}

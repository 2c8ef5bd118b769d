//! The default engine: hashbrown tables in cache-padded shards, each behind a
//! read-write lock (parking_lot's; loom's under `--cfg loom`).
//!
//! A key's hash picks its shard (bits 50..57, just below the 7 bits hashbrown
//! uses for control bytes, so the two choices are independent) and is stored with
//! the entry, so the key is hashed once per operation and never again on resize.
//! Every operation takes exactly one shard lock, and user closures run under it:
//! the thread-local record in [`crate::reentry`] turns any blocking call back
//! into the same map from such a closure into an immediate panic. Operations
//! that run no closure of the caller's only check that record
//! ([`with_slot`](ShardedMap::with_slot), [`with_table`](ShardedMap::with_table));
//! the others enter it (the `_entered` forms).
//!
//! Every write to a key also invalidates a load of that key in flight, inside
//! the shard's write lock (see [`crate::loader`]): `self.flights.invalidate` in
//! the write closures below. It costs one atomic load when nothing is loading.
//!
//! `get_cloned`, `insert` and `remove` cost about what dashmap's `get`, `insert`
//! and `remove` do (the bench's callgrind count; `crates/bench/tests/instructions_ratio.rs`
//! holds them within 1.1x): everything above is inlined, and what only some
//! operations need is out of line: the sampled timing (`insert` and `remove`
//! run a copy of themselves for the one operation in 256 a thread samples), a
//! busy lock, a load in flight, a table that must grow.

pub(crate) mod builder;
mod shard;

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use hashbrown::hash_table::Entry;

pub use self::builder::ShardedMapBuilder;
pub(crate) use self::shard::Shard;
use self::shard::{slot_hash, Slot, Table};
use crate::api::{impl_concurrent_map, Compute, Conflict, WouldBlock};
use crate::iter::Iter;
use crate::loader::{Backing, SingleFlight};
use crate::reentry::{self, Entered};
use crate::telemetry::MapStats;
use crate::DefaultHashBuilder;

reentry::name_ops!("ShardedMap");

/// A concurrent hash map split into independently locked shards.
///
/// All access goes through closures or returns owned values: there is no guard
/// type to hold across an `.await` or to forget, and a closure that calls back
/// into the same map panics at once instead of deadlocking.
///
/// ```
/// use mapguard::ShardedMap;
/// use std::sync::Arc;
///
/// let hits: Arc<ShardedMap<&str, u64>> = Arc::new(ShardedMap::new());
/// let workers: Vec<_> = (0..4).map(|_| {
///     let hits = Arc::clone(&hits);
///     std::thread::spawn(move || {
///         for _ in 0..1000 {
///             // Read-modify-write under the shard lock: no lost update.
///             hits.compute("/", |n| mapguard::Compute::Set(n.map_or(1, |n| n + 1)));
///         }
///     })
/// }).collect();
/// for w in workers { w.join().unwrap(); }
/// assert_eq!(hits.get_cloned("/"), Some(4000));
/// ```
pub struct ShardedMap<K, V, S = DefaultHashBuilder> {
    /// Shared (not boxed) so the Prometheus collector can hold a weak reference.
    pub(crate) shards: Arc<[CachePadded<Shard<K, V>>]>,
    /// A key's shard is `(hash >> shard_shift) & shard_mask`: the same bits
    /// as [`shard_index`], with the shift and mask worked out once.
    shard_shift: u32,
    shard_mask: u64,
    hasher: S,
    id: u64,
    telemetry: bool,
    flights: SingleFlight<K, V>,
}

impl<K, V> ShardedMap<K, V> {
    /// An empty map with the default shard count and hasher.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, String> = mapguard::ShardedMap::new();
    /// assert!(map.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// An empty map that holds `capacity` entries without growing.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, u32> = mapguard::ShardedMap::with_capacity(100);
    /// assert!(map.capacity() >= 100);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self::builder().capacity(capacity).build()
    }

    /// A builder to choose shard count, capacity, hasher, telemetry and the
    /// negative-cache TTL.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, u32> = mapguard::ShardedMap::builder().shards(2).build();
    /// assert_eq!(map.shard_count(), 2);
    /// ```
    pub fn builder() -> ShardedMapBuilder<K, V> {
        ShardedMapBuilder::default()
    }
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> ShardedMap<K, V, S> {
    fn from_parts(
        shards: usize,
        capacity: usize,
        hasher: S,
        telemetry: bool,
        negative_ttl: Option<std::time::Duration>,
    ) -> Self {
        debug_assert!(shards.is_power_of_two() && shards <= builder::MAX_SHARDS);
        let per_shard = capacity.div_ceil(shards);
        ShardedMap {
            shards: (0..shards)
                .map(|_| CachePadded::new(Shard::with_capacity(per_shard, telemetry)))
                .collect(),
            shard_shift: 57 - shards.trailing_zeros(),
            shard_mask: shards as u64 - 1,
            hasher,
            id: reentry::next_map_id(),
            telemetry,
            flights: SingleFlight::new(negative_ttl),
        }
    }

    /// Number of entries. Lock-free (per-shard counts kept by writers), so it
    /// may be called anywhere, including inside this map's closures.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = [(1, 1), (2, 2)].into_iter().collect();
    /// assert_eq!(map.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// Whether the map has no entries (lock-free, like [`len`](Self::len)).
    ///
    /// ```
    /// assert!(mapguard::ShardedMap::<u8, u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.len() == 0)
    }

    /// Entries the map holds before some shard's table must grow (the sum of the
    /// shards' capacities).
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::with_capacity(64);
    /// assert!(map.capacity() >= 64);
    /// ```
    pub fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.capacity()).sum()
    }

    /// Number of shards (a power of two).
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::builder().shards(8).build();
    /// assert_eq!(map.shard_count(), 8);
    /// ```
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// A snapshot of the map's telemetry: exact per-shard operation and
    /// contention counts, sampled wait/hold-time histograms and hot keys.
    /// Lock-free apart from each shard's small hot-key sketch.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::new();
    /// map.insert(1, 1);
    /// assert_eq!(map.stats().writes(), 1);
    /// ```
    pub fn stats(&self) -> MapStats {
        stats_of(&self.shards)
    }

    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        ((hash >> self.shard_shift) & self.shard_mask) as usize
    }
}

/// The shard of a key's hash among `1 << shard_bits` (bits 50..57 and down:
/// independent of the table's own use of the low bits and hashbrown's top 7).
pub(crate) fn shard_index(hash: u64, shard_bits: u32) -> usize {
    // `>> 1 >> (63 - bits)` is `>> (64 - bits)` without the overflow at 0 bits,
    // and without a branch: reads on the read-mostly engine pay for every one.
    (((hash << 7) >> 1) >> (63 - shard_bits)) as usize
}

pub(crate) fn stats_of<K, V>(shards: &[CachePadded<Shard<K, V>>]) -> MapStats {
    MapStats::of(shards.iter().map(|s| (&s.telemetry, s.counts())))
}

impl<K, V, S> ShardedMap<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// The hash the map computes for `key`, as reported in
    /// [`HotKey::hash`](crate::HotKey::hash).
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, u32> = mapguard::ShardedMap::new();
    /// assert_eq!(map.hash_of(&5), map.hash_of(&5));
    /// ```
    #[inline]
    pub fn hash_of<Q>(&self, key: &Q) -> u64
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn shard_of(&self, hash: u64) -> &Shard<K, V> {
        &self.shards[self.shard_index(hash)]
    }

    /// Runs `f` on the key's slot under the shard's read lock. `f` must run no
    /// closure of the caller's: the thread is only checked for re-entry, not
    /// recorded as inside the map (see [`with_slot_entered`](Self::with_slot_entered)).
    #[inline]
    fn with_slot<Q, R>(
        &self,
        op: &'static str,
        key: &Q,
        f: impl FnOnce(Option<&Slot<K, V>>) -> R,
    ) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        reentry::check(self.id, op);
        self.read_slot(key, f)
    }

    /// [`with_slot`](Self::with_slot) for an `f` that runs a closure of the
    /// caller's: the thread is recorded as inside the map while it runs.
    #[inline]
    fn with_slot_entered<Q, R>(
        &self,
        op: &'static str,
        key: &Q,
        f: impl FnOnce(Option<&Slot<K, V>>) -> R,
    ) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let _entered = Entered::blocking(self.id, op);
        self.read_slot(key, f)
    }

    /// Runs `f` on the key's slot under the shard's read lock.
    #[inline]
    fn read_slot<Q, R>(&self, key: &Q, f: impl FnOnce(Option<&Slot<K, V>>) -> R) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        self.shard_of(hash).read(self.telemetry, Some(hash), |t| {
            f(t.slots.find(hash, |s| s.key.borrow() == key))
        })
    }

    /// [`with_slot`](Self::with_slot) without waiting. A non-blocking call
    /// can't deadlock, so it is never refused; `entered` records the thread as
    /// inside the map, for an `f` that runs a closure of the caller's.
    fn try_with_slot<Q, R>(
        &self,
        op: &'static str,
        entered: bool,
        key: &Q,
        f: impl FnOnce(Option<&Slot<K, V>>) -> R,
    ) -> Result<R, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let _entered = entered.then(|| Entered::non_blocking(self.id, op));
        let hash = self.hash_of(key);
        self.shard_of(hash)
            .try_read(self.telemetry, Some(hash), |t| {
                f(t.slots.find(hash, |s| s.key.borrow() == key))
            })
    }

    /// Runs `f` on the table of `hash`'s shard under its write lock. Like
    /// [`with_slot`](Self::with_slot), `f` must run no closure of the caller's.
    #[inline]
    fn with_table<R>(
        &self,
        op: &'static str,
        hash: u64,
        f: impl FnOnce(&mut Table<K, V>, u64) -> R,
    ) -> R {
        reentry::check(self.id, op);
        self.shard_of(hash).write(Some(hash), f)
    }

    /// [`with_table`](Self::with_table) for an `f` that runs a closure of the
    /// caller's.
    #[inline]
    fn with_table_entered<R>(
        &self,
        op: &'static str,
        hash: u64,
        f: impl FnOnce(&mut Table<K, V>, u64) -> R,
    ) -> R {
        let _entered = Entered::blocking(self.id, op);
        self.shard_of(hash).write(Some(hash), f)
    }

    /// [`with_table`](Self::with_table) without waiting (see
    /// [`try_with_slot`](Self::try_with_slot) for `entered`).
    fn try_with_table<R>(
        &self,
        op: &'static str,
        entered: bool,
        hash: u64,
        f: impl FnOnce(&mut Table<K, V>, u64) -> R,
    ) -> Result<R, WouldBlock> {
        let _entered = entered.then(|| Entered::non_blocking(self.id, op));
        self.shard_of(hash).try_write(Some(hash), f)
    }

    /// Runs `f` on the value under the shard's read lock; `None` when absent.
    ///
    /// `f` must not call blocking methods of this map (it panics if it does).
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, String> = mapguard::ShardedMap::new();
    /// map.insert(1, "hello".to_string());
    /// assert_eq!(map.read(&1, |s| s.len()), Some(5));
    /// assert_eq!(map.read(&2, |s| s.len()), None);
    /// ```
    #[inline]
    pub fn read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with_slot_entered(op!(read), key, |s| s.map(|s| f(&s.value)))
    }

    /// Like [`read`](Self::read), but returns [`WouldBlock`] instead of waiting
    /// for a writer.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, u32> = mapguard::ShardedMap::new();
    /// map.insert(1, 7);
    /// assert_eq!(map.try_read(&1, |v| *v), Ok(Some(7)));
    /// ```
    pub fn try_read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Result<Option<R>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.try_with_slot(op!(try_read), true, key, |s| s.map(|s| f(&s.value)))
    }

    /// A clone of the value (for cheap values: numbers, `Arc`s, short strings).
    ///
    /// ```
    /// let map: mapguard::ShardedMap<&str, u32> = mapguard::ShardedMap::new();
    /// map.insert("a", 1);
    /// assert_eq!(map.get_cloned("a"), Some(1));
    /// ```
    #[inline]
    pub fn get_cloned<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.with_slot(op!(get_cloned), key, |s| s.map(|s| s.value.clone()))
    }

    /// Like [`get_cloned`](Self::get_cloned), without waiting.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<&str, u32> = mapguard::ShardedMap::new();
    /// assert_eq!(map.try_get_cloned("a"), Ok(None));
    /// ```
    pub fn try_get_cloned<Q>(&self, key: &Q) -> Result<Option<V>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.try_with_slot(op!(try_get_cloned), false, key, |s| {
            s.map(|s| s.value.clone())
        })
    }

    /// Whether the key is present.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert!(map.contains_key(&1) && !map.contains_key(&2));
    /// ```
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with_slot(op!(contains_key), key, |s| s.is_some())
    }

    /// A clone of the value with its version, for an optimistic
    /// read-modify-write with [`compare_and_update`](Self::compare_and_update).
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::new();
    /// map.insert(1, 10);
    /// let (value, version) = map.get_versioned(&1).unwrap();
    /// assert_eq!(value, 10);
    /// assert_eq!(map.version(&1), Some(version));
    /// ```
    pub fn get_versioned<Q>(&self, key: &Q) -> Option<(V, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.with_slot(op!(get_versioned), key, |s| {
            s.map(|s| (s.value.clone(), s.version))
        })
    }

    /// Runs `f` on the value under the read lock and returns its result with the
    /// entry's version.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, String> = mapguard::ShardedMap::new();
    /// map.insert(1, "abc".into());
    /// let (len, _version) = map.read_versioned(&1, |s| s.len()).unwrap();
    /// assert_eq!(len, 3);
    /// ```
    pub fn read_versioned<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<(R, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with_slot_entered(op!(read_versioned), key, |s| {
            s.map(|s| (f(&s.value), s.version))
        })
    }

    /// The entry's version: it changes on every write to the entry and is never
    /// reused for the same key, even after a remove and re-insert.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::new();
    /// map.insert(1, 1);
    /// let v1 = map.version(&1).unwrap();
    /// map.update(&1, |v| *v += 1);
    /// assert!(map.version(&1).unwrap() > v1);
    /// ```
    pub fn version<Q>(&self, key: &Q) -> Option<u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with_slot(op!(version), key, |s| s.map(|s| s.version))
    }

    /// Inserts or replaces; returns the previous value.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::new();
    /// assert_eq!(map.insert(1, 1), None);
    /// assert_eq!(map.insert(1, 2), Some(1));
    /// ```
    #[inline]
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        reentry::check(self.id, op!(insert));
        let hash = self.hash_of(&key);
        // The one write in `SAMPLE_EVERY` that telemetry times takes a copy of
        // this path out of line: the common one then tests the tick once.
        if reentry::sample() {
            return self.insert_sampled(hash, key, value);
        }
        self.insert_in::<false>(hash, key, value)
    }

    #[cold]
    #[inline(never)]
    fn insert_sampled(&self, hash: u64, key: K, value: V) -> Option<V> {
        self.insert_in::<true>(hash, key, value)
    }

    #[inline]
    fn insert_in<const SAMPLED: bool>(&self, hash: u64, key: K, value: V) -> Option<V> {
        let shard = self.shard_of(hash);
        shard.write_exact::<SAMPLED, _>(Some(hash), move |t, version| {
            let key = self.flights.invalidate_owned(key);
            // `entry` would grow a full table before it looks, whatever it
            // finds: grow it here, refreshing the capacity mirror, so that a
            // replacement never changes the table's length or capacity.
            if t.slots.len() == t.slots.capacity() {
                shard.grow(t);
            }
            insert_slot(t, hash, key, value, || version.get())
        })
    }

    /// Like [`insert`](Self::insert), but returns [`WouldBlock`] (and gives the
    /// pair back) instead of waiting.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::new();
    /// assert_eq!(map.try_insert(1, 1), Ok(None));
    /// ```
    pub fn try_insert(&self, key: K, value: V) -> Result<Option<V>, WouldBlock> {
        let hash = self.hash_of(&key);
        self.try_with_table(op!(try_insert), false, hash, |t, version| {
            self.flights.try_invalidate(&key)?;
            Ok(insert_slot(t, hash, key, value, || version).0)
        })?
    }

    /// Removes the entry; returns its value. Shrinks the shard's table when it
    /// became mostly empty.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.remove(&1), Some(1));
    /// assert_eq!(map.remove(&1), None);
    /// ```
    #[inline]
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        reentry::check(self.id, op!(remove));
        let hash = self.hash_of(key);
        if reentry::sample() {
            return self.remove_sampled(hash, key);
        }
        self.remove_in::<false, Q>(hash, key)
    }

    #[cold]
    #[inline(never)]
    fn remove_sampled<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_in::<true, Q>(hash, key)
    }

    #[inline]
    fn remove_in<const SAMPLED: bool, Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard_of(hash)
            .write_exact::<SAMPLED, _>(Some(hash), move |t, _| {
                self.flights.invalidate(key);
                remove_slot(t, hash, key)
            })
    }

    /// Like [`remove`](Self::remove), without waiting.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.try_remove(&1), Ok(Some(1)));
    /// ```
    pub fn try_remove<Q>(&self, key: &Q) -> Result<Option<V>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        self.try_with_table(op!(try_remove), false, hash, |t, _| {
            self.flights.try_invalidate(key)?;
            Ok(remove_slot(t, hash, key).0)
        })?
    }

    /// Changes the value in place under the shard's write lock; `None` when the
    /// key is absent. This is the read-modify-write that can't lose updates.
    ///
    /// `f` must not call blocking methods of this map (it panics if it does).
    ///
    /// ```
    /// let map: mapguard::ShardedMap<&str, Vec<u32>> = mapguard::ShardedMap::new();
    /// map.insert("q", vec![]);
    /// assert_eq!(map.update("q", |q| { q.push(1); q.len() }), Some(1));
    /// assert_eq!(map.update("nope", |q| q.len()), None);
    /// ```
    #[inline]
    pub fn update<Q, R>(&self, key: &Q, f: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        self.with_table_entered(op!(update), hash, |t, version| {
            self.flights.invalidate(key);
            update_slot(t, hash, key, version, f)
        })
    }

    /// Like [`update`](Self::update), without waiting.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.try_update(&1, |v| { *v += 1; *v }), Ok(Some(2)));
    /// ```
    pub fn try_update<Q, R>(
        &self,
        key: &Q,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<Option<R>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        self.try_with_table(op!(try_update), true, hash, |t, version| {
            self.flights.try_invalidate(key)?;
            Ok(update_slot(t, hash, key, version, f))
        })?
    }

    /// Decides under one write lock what happens to the entry, present or not:
    /// see [`Compute`]. Returns the value the map gave up (replaced or removed).
    ///
    /// ```
    /// use mapguard::{Compute, ShardedMap};
    /// let map: ShardedMap<&str, u32> = ShardedMap::new();
    /// assert_eq!(map.compute("n", |v| Compute::Set(v.copied().unwrap_or(0) + 1)), None);
    /// assert_eq!(map.compute("n", |_| Compute::Remove), Some(1));
    /// ```
    pub fn compute(&self, key: K, f: impl FnOnce(Option<&V>) -> Compute<V>) -> Option<V> {
        let hash = self.hash_of(&key);
        self.with_table_entered(op!(compute), hash, |t, version| {
            let key = self.flights.invalidate_owned(key);
            compute_slot(t, hash, key, version, f)
        })
    }

    /// Like [`compute`](Self::compute), without waiting (`f` is not called when
    /// the lock is busy).
    ///
    /// ```
    /// use mapguard::{Compute, ShardedMap};
    /// let map: ShardedMap<u8, u8> = ShardedMap::new();
    /// assert_eq!(map.try_compute(1, |_| Compute::Set(5)), Ok(None));
    /// ```
    pub fn try_compute(
        &self,
        key: K,
        f: impl FnOnce(Option<&V>) -> Compute<V>,
    ) -> Result<Option<V>, WouldBlock> {
        let hash = self.hash_of(&key);
        self.try_with_table(op!(try_compute), true, hash, |t, version| {
            self.flights.try_invalidate(&key)?;
            Ok(compute_slot(t, hash, key, version, f))
        })?
    }

    /// The value for `key`, inserting `f()` first when absent (under the write
    /// lock, so `f` runs at most once per insertion). `f` runs under the lock:
    /// for slow initialisation use [`get_or_load`](Self::get_or_load), which
    /// runs the loader without holding any lock.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, String> = mapguard::ShardedMap::new();
    /// assert_eq!(map.get_or_insert_with(1, || "first".into()), "first");
    /// assert_eq!(map.get_or_insert_with(1, || "second".into()), "first");
    /// ```
    pub fn get_or_insert_with(&self, key: K, f: impl FnOnce() -> V) -> V
    where
        V: Clone,
    {
        // Hits (the common case) only need the shared lock.
        if let Some(value) = self.with_slot(op!(get_or_insert_with), &key, |s| {
            s.map(|s| s.value.clone())
        }) {
            return value;
        }
        let hash = self.hash_of(&key);
        self.with_table_entered(op!(get_or_insert_with), hash, |t, version| {
            fill_slot(t, hash, key, version, f)
        })
    }

    /// Optimistic read-modify-write: applies `f` only if the entry's version is
    /// still `seen` (from [`get_versioned`](Self::get_versioned) or
    /// [`version`](Self::version)); returns the new version, or [`Conflict`] with
    /// the current one. Use it when the new value is computed away from the map,
    /// across an `.await` or a network call, where no lock may be held.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<&str, u64> = mapguard::ShardedMap::new();
    /// map.insert("stock", 10);
    /// let (stock, seen) = map.get_versioned("stock").unwrap();
    /// let reserved = stock - 3; // e.g. after asking another service
    /// let new_version = map.compare_and_update("stock", seen, |s| *s = reserved).unwrap();
    /// assert_eq!(map.get_versioned("stock"), Some((7, new_version)));
    /// // A second attempt with the old version conflicts.
    /// assert!(map.compare_and_update("stock", seen, |s| *s = 0).is_err());
    /// ```
    pub fn compare_and_update<Q>(
        &self,
        key: &Q,
        seen: u64,
        f: impl FnOnce(&mut V),
    ) -> Result<u64, Conflict>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        self.with_table_entered(op!(compare_and_update), hash, |t, version| {
            self.flights.invalidate(key);
            match t.slots.find_mut(hash, |s| s.key.borrow() == key) {
                Some(slot) if slot.version == seen => {
                    slot.version = version;
                    f(&mut slot.value);
                    Ok(slot.version)
                }
                Some(slot) => Err(Conflict {
                    current: Some(slot.version),
                }),
                None => Err(Conflict { current: None }),
            }
        })
    }

    /// Keeps only the entries for which `f` returns `true`, one shard at a time
    /// (each shard atomically). Removed entries are dropped after the shard's
    /// lock is released. To change values, use [`update`](Self::update).
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
    /// map.retain(|_, v| v % 2 == 0);
    /// assert_eq!(map.len(), 5);
    /// ```
    pub fn retain(&self, mut f: impl FnMut(&K, &V) -> bool) {
        for shard in self.shards.iter() {
            let _entered = Entered::blocking(self.id, op!(retain));
            let removed: Vec<Slot<K, V>> = shard.write(None, |t, _| {
                self.flights.invalidate_all();
                let removed = t.slots.extract_if(|s| !f(&s.key, &s.value)).collect();
                t.maybe_shrink();
                removed
            });
            drop(removed);
        }
    }

    /// `retain`, calling `wipe` on each removed value in its slot (under the
    /// lock) before the slot is freed.
    #[cfg(feature = "zeroize")]
    pub(crate) fn retain_wiping(
        &self,
        mut f: impl FnMut(&K, &V) -> bool,
        mut wipe: impl FnMut(&mut V),
    ) {
        for shard in self.shards.iter() {
            let _entered = Entered::blocking(self.id, op!(retain_zeroizing));
            shard.write(None, |t, _| {
                self.flights.invalidate_all();
                t.slots.retain(|s| {
                    let keep = f(&s.key, &s.value);
                    if !keep {
                        wipe(&mut s.value);
                    }
                    keep
                });
                t.maybe_shrink();
            });
        }
    }

    /// `remove`, calling `wipe` on the value in its slot before removing it.
    #[cfg(feature = "zeroize")]
    pub(crate) fn remove_wiping<Q>(&self, key: &Q, wipe: impl FnOnce(&mut V)) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        self.with_table_entered(op!(remove_zeroized), hash, |t, _| {
            self.flights.invalidate(key);
            let Ok(mut entry) = t.slots.find_entry(hash, |s| s.key.borrow() == key) else {
                return false;
            };
            wipe(&mut entry.get_mut().value);
            drop(entry.remove());
            t.maybe_shrink();
            true
        })
    }

    /// `insert`, calling `wipe` on the replaced value in its slot first.
    #[cfg(feature = "zeroize")]
    pub(crate) fn insert_wiping(&self, key: K, value: V, wipe: impl FnOnce(&mut V)) -> bool {
        let hash = self.hash_of(&key);
        self.with_table_entered(op!(insert_zeroizing), hash, |t, version| {
            self.flights.invalidate(&key);
            match t.slots.entry(hash, |s| s.key == key, slot_hash) {
                Entry::Occupied(mut e) => {
                    let slot = e.get_mut();
                    wipe(&mut slot.value);
                    slot.value = value;
                    slot.version = version;
                    true
                }
                Entry::Vacant(e) => {
                    e.insert(Slot {
                        hash,
                        key,
                        value,
                        version,
                    });
                    false
                }
            }
        })
    }

    /// Removes every entry, shard by shard, and gives the tables' memory back.
    /// Values are dropped after each shard's lock is released.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
    /// map.clear();
    /// assert!(map.is_empty());
    /// ```
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            reentry::check(self.id, op!(clear));
            let old = shard.write(None, |t, _| {
                self.flights.invalidate_all();
                mem::take(&mut t.slots)
            });
            drop(old);
        }
        self.flights.forget_misses();
    }

    /// Shrinks every shard's table to fit its entries.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, u32> = mapguard::ShardedMap::with_capacity(10_000);
    /// map.insert(1, 1);
    /// map.shrink_to_fit();
    /// assert!(map.capacity() < 10_000);
    /// ```
    pub fn shrink_to_fit(&self) {
        for shard in self.shards.iter() {
            reentry::check(self.id, op!(shrink_to_fit));
            shard.write(None, |t, _| t.slots.shrink_to_fit(slot_hash));
        }
    }

    /// Calls `f` on every entry. Each shard is copied under a brief read lock
    /// and `f` runs after the lock is released, so `f` may use the map freely.
    /// Each shard is seen at one instant; the shards at different instants.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, u32> = (1..=3).map(|i| (i, i)).collect();
    /// let mut sum = 0;
    /// map.for_each(|_, v| {
    ///     sum += v;
    ///     map.insert(100, 0); // allowed: no lock is held here
    /// });
    /// assert_eq!(sum, 6);
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&K, &V))
    where
        K: Clone,
        V: Clone,
    {
        for index in 0..self.shards.len() {
            for (k, v) in self.snapshot_shard(index) {
                f(&k, &v);
            }
        }
    }

    /// An iterator of owned `(key, value)` pairs, copying one shard at a time
    /// under a brief read lock (see [`for_each`](Self::for_each)).
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, u32> = (0..100).map(|i| (i, i * 2)).collect();
    /// let mut pairs: Vec<_> = map.iter().collect();
    /// pairs.sort();
    /// assert_eq!(pairs[3], (3, 6));
    /// assert_eq!(pairs.len(), 100);
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V, S>
    where
        K: Clone,
        V: Clone,
    {
        Iter::sharded(self)
    }

    pub(crate) fn snapshot_shard(&self, index: usize) -> Vec<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        reentry::check(self.id, op!(iter));
        self.shards[index].read(self.telemetry, None, |t| {
            t.slots
                .iter()
                .map(|s| (s.key.clone(), s.value.clone()))
                .collect()
        })
    }

    /// The value for `key`, loading it with `load` when absent. However many
    /// callers ask for a missing key at once, `load` runs once (in one of them,
    /// with no lock held); the others wait and share its value or its error.
    /// If `load` panics, the panic goes on in that caller and one of the waiters
    /// loads instead. The value is inserted (unless one was inserted meanwhile,
    /// which then wins and is returned).
    ///
    /// A write to `key` while the load runs (`insert`, `remove`, `update`,
    /// `compute`, `compare_and_update`, even on an absent key; `retain` and
    /// `clear` count as writes to every key) invalidates it: the load may have
    /// read its source before the writer changed it, so its value goes to its
    /// caller and the waiters but is not stored (nor is a not-found remembered),
    /// and the next call loads again. `get_or_insert_with` does not invalidate:
    /// like the load's own fill, it never replaces a value.
    ///
    /// ```
    /// use std::sync::{atomic::{AtomicU32, Ordering::SeqCst}, Barrier};
    /// let map: mapguard::ShardedMap<&str, u32> = mapguard::ShardedMap::new();
    /// let source = AtomicU32::new(1);
    /// let (read, written) = (Barrier::new(2), Barrier::new(2));
    /// std::thread::scope(|s| {
    ///     let loader = s.spawn(|| map.get_or_load("price", |_| {
    ///         let price = source.load(SeqCst);
    ///         read.wait();
    ///         written.wait(); // the source changes and the key is removed here
    ///         Ok::<_, ()>(price)
    ///     }));
    ///     read.wait();
    ///     source.store(2, SeqCst);
    ///     map.remove("price");
    ///     written.wait();
    ///     assert_eq!(loader.join().unwrap(), Ok(1)); // its caller gets it...
    /// });
    /// assert_eq!(map.get_cloned("price"), None); // ...the map does not keep it
    /// ```
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// let map: mapguard::ShardedMap<u32, String> = mapguard::ShardedMap::new();
    /// let calls = AtomicU32::new(0);
    /// std::thread::scope(|s| {
    ///     for _ in 0..8 {
    ///         s.spawn(|| {
    ///             let user = map.get_or_load(42, |id| {
    ///                 calls.fetch_add(1, Ordering::SeqCst);
    ///                 std::thread::sleep(std::time::Duration::from_millis(20));
    ///                 Ok::<_, std::io::Error>(format!("user {id}"))
    ///             });
    ///             assert_eq!(user.unwrap(), "user 42");
    ///         });
    ///     }
    /// });
    /// assert_eq!(calls.load(Ordering::SeqCst), 1);
    /// ```
    pub fn get_or_load<E, F>(&self, key: K, load: F) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
        F: FnOnce(&K) -> Result<V, E>,
    {
        reentry::forbid_reentry(self.id, op!(get_or_load));
        self.flights.load_value(self, key, load)
    }

    /// Like [`get_or_load`](Self::get_or_load) for keys that may not exist:
    /// `load` returns `Ok(None)` for "not found". With a
    /// [`negative_ttl`](ShardedMapBuilder::negative_ttl), a not-found is
    /// remembered for that long and answered without calling `load`.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u32, String> = mapguard::ShardedMap::new();
    /// let found = map.get_or_load_optional(7, |_| Ok::<_, ()>(None));
    /// assert_eq!(found, Ok(None));
    /// assert!(map.is_empty());
    /// ```
    pub fn get_or_load_optional<E, F>(&self, key: K, load: F) -> Result<Option<V>, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
        F: FnOnce(&K) -> Result<Option<V>, E>,
    {
        reentry::forbid_reentry(self.id, op!(get_or_load_optional));
        self.flights.load(self, key, true, load)
    }

    /// Forgets a remembered not-found for `key` (see
    /// [`negative_ttl`](ShardedMapBuilder::negative_ttl)), e.g. after the key
    /// was created at the source.
    ///
    /// ```
    /// use std::time::Duration;
    /// let map: mapguard::ShardedMap<u8, u8> =
    ///     mapguard::ShardedMap::builder().negative_ttl(Duration::from_secs(60)).build();
    /// assert_eq!(map.get_or_load_optional(1, |_| Ok::<_, ()>(None)), Ok(None));
    /// map.forget_miss(&1);
    /// assert_eq!(map.get_or_load_optional(1, |_| Ok::<_, ()>(Some(5))), Ok(Some(5)));
    /// ```
    pub fn forget_miss(&self, key: &K)
    where
        K: Clone,
        V: Clone,
    {
        self.flights.forget_miss(key);
    }
}

impl<K, V, S> Backing<K, V> for ShardedMap<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
{
    fn lookup(&self, key: &K) -> Option<V> {
        self.with_slot(op!(get_or_load), key, |s| s.map(|s| s.value.clone()))
    }

    fn recheck(&self, key: &K) -> Option<V> {
        // The shard lock orders this read against every write to the key.
        self.lookup(key)
    }

    fn fill(&self, key: K, value: V, invalidated: &AtomicBool) -> V {
        let hash = self.hash_of(&key);
        self.with_table(op!(get_or_load), hash, |t, version| {
            // Checked under the shard lock the invalidating writers hold: an invalidated
            // load leaves the key absent (a value stored meanwhile still wins).
            if invalidated.load(Relaxed) && t.slots.find(hash, |s| s.key == key).is_none() {
                return value;
            }
            fill_slot(t, hash, key, version, || value)
        })
    }
}

/// Inserts or replaces; also says whether the table's length changed (a new
/// entry; a table that must grow for it may grow here too).
#[inline]
fn insert_slot<K: Eq, V>(
    t: &mut Table<K, V>,
    hash: u64,
    key: K,
    value: V,
    version: impl FnOnce() -> u64,
) -> (Option<V>, bool) {
    match t.slots.entry(hash, |s| s.key == key, slot_hash) {
        Entry::Occupied(mut e) => {
            let slot = e.get_mut();
            slot.version = version();
            (Some(mem::replace(&mut slot.value, value)), false)
        }
        Entry::Vacant(e) => {
            e.insert(Slot {
                hash,
                key,
                value,
                version: version(),
            });
            (None, true)
        }
    }
}

/// Removes `key`'s entry (shrinking a mostly empty table); also says whether
/// it did.
#[inline]
fn remove_slot<K, V, Q>(t: &mut Table<K, V>, hash: u64, key: &Q) -> (Option<V>, bool)
where
    K: Borrow<Q>,
    Q: Eq + ?Sized,
{
    let removed = t
        .slots
        .find_entry(hash, |s| s.key.borrow() == key)
        .ok()
        .map(|e| e.remove().0.value);
    if removed.is_some() {
        t.maybe_shrink();
        (removed, true)
    } else {
        (None, false)
    }
}

#[inline]
fn update_slot<K, V, Q, R>(
    t: &mut Table<K, V>,
    hash: u64,
    key: &Q,
    version: u64,
    f: impl FnOnce(&mut V) -> R,
) -> Option<R>
where
    K: Borrow<Q>,
    Q: Eq + ?Sized,
{
    let slot = t.slots.find_mut(hash, |s| s.key.borrow() == key)?;
    // Versioned before `f` runs: if `f` panics halfway, the value may have
    // changed, and an optimistic writer holding the old version must conflict.
    slot.version = version;
    Some(f(&mut slot.value))
}

#[inline]
fn compute_slot<K: Eq, V>(
    t: &mut Table<K, V>,
    hash: u64,
    key: K,
    version: u64,
    f: impl FnOnce(Option<&V>) -> Compute<V>,
) -> Option<V> {
    match t.slots.entry(hash, |s| s.key == key, slot_hash) {
        Entry::Occupied(mut e) => match f(Some(&e.get().value)) {
            Compute::Set(value) => {
                let slot = e.get_mut();
                slot.version = version;
                Some(mem::replace(&mut slot.value, value))
            }
            Compute::Remove => {
                let old = e.remove().0.value;
                t.maybe_shrink();
                Some(old)
            }
            Compute::Keep => None,
        },
        Entry::Vacant(e) => {
            if let Compute::Set(value) = f(None) {
                e.insert(Slot {
                    hash,
                    key,
                    value,
                    version,
                });
            }
            None
        }
    }
}

#[inline]
fn fill_slot<K: Eq, V: Clone>(
    t: &mut Table<K, V>,
    hash: u64,
    key: K,
    version: u64,
    f: impl FnOnce() -> V,
) -> V {
    match t.slots.entry(hash, |s| s.key == key, slot_hash) {
        Entry::Occupied(e) => e.get().value.clone(),
        Entry::Vacant(e) => {
            let value = f();
            let slot = e.insert(Slot {
                hash,
                key,
                value,
                version,
            });
            slot.get().value.clone()
        }
    }
}

impl_concurrent_map!(ShardedMap, stats: MapStats);

impl<K, V, S> fmt::Debug for ShardedMap<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardedMap")
            .field("len", &self.len())
            .field("shards", &self.shard_count())
            .finish_non_exhaustive()
    }
}

impl<K, V, S> FromIterator<(K, V)> for ShardedMap<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher + Default,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let map = ShardedMapBuilder::default().hasher(S::default()).build();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl<K, V, S> Extend<(K, V)> for ShardedMap<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        (&*self).extend(iter);
    }
}

impl<K, V, S> Extend<(K, V)> for &ShardedMap<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

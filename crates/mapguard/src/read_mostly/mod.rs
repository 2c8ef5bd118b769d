//! The read-mostly engine: lock-free reads, writers serialized per shard, and
//! incremental, cooperative resizing (see `shard.rs` for the migration
//! protocol, `table.rs` for the table and the reader's search).
//!
//! A read hashes the key, pins the epoch (two thread-local stores, no fence), loads
//! the shard's table and probes it: it takes no lock and writes nothing
//! shared (telemetry counts reads by sampling, one shared add in 256 reads per
//! thread). A write takes its shard's writer lock, publishes new immutable
//! entries and marks the old ones dead, for reuse once no reader can hold
//! them; a resize moves a few slots per write
//! while readers carry on. Everything else (single flight, versions, re-entry
//! detection for write closures, telemetry) is shared with the other engines.

mod builder;
pub(crate) mod epoch;
mod reclaim;
mod shard;
mod table;
#[cfg(not(loom))]
mod zeroed;

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

pub use self::builder::ReadMostlyMapBuilder;
use self::reclaim::Guard;
use self::shard::Edit;
pub(crate) use self::shard::Shard;
use self::table::Entry;
use crate::api::{impl_concurrent_map, Compute, Conflict, WouldBlock};
use crate::iter::Iter;
use crate::loader::{Backing, SingleFlight};
use crate::reentry::{self, Entered, SAMPLE_EVERY};
use crate::sharded::shard_index;
use crate::telemetry::recorder::Probe;
use crate::telemetry::MapStats;
use crate::DefaultHashBuilder;

reentry::name_ops!("ReadMostlyMap");

/// A concurrent map for read-mostly data whose reads never block and never
/// write shared memory, and whose tables grow and shrink without pausing
/// anyone: the `sync.Map` use case, without its races.
///
/// Reads (`read`, `get_cloned`, `contains_key`, ...) are lock-free and may be
/// called from anywhere, including inside this map's own closures. Writes take
/// a per-shard writer lock, so writers of different shards run in parallel;
/// a write closure (`update`, `compute`) that calls a blocking write of the
/// same map panics instead of deadlocking. During a resize a reader always
/// sees the latest committed value of every key: never a removed one, never a
/// stale one, never a miss for a present key.
///
/// Writes publish new entries instead of changing values in place, so the
/// write methods need `K: Clone` and `V: Clone` (a value edited by `update` is
/// cloned, edited, then published), like [`SnapshotMap`](crate::SnapshotMap)'s.
/// A removed or replaced entry stays in its slot until no reader can hold it
/// and a later write to the same part of the table reuses the slot, or until
/// its table is migrated away and freed (or the map dropped): its key and
/// value are dropped then, some writes later, never while a reader may still
/// see them.
///
/// On Unix, tables of 16 KiB and more live in memory mappings of their own,
/// readied a page per write ahead of a growth; freed ones are kept for reuse
/// by any map of the process (at most 256 mappings and 64 MiB; beyond that
/// the ones kept longest ago are unmapped), because unmapping makes the
/// freeing write wait for every other CPU's TLB flush. Entries keep no hash
/// (a third less memory for small keys and values), so a resize hashes the
/// keys it moves again, under the shard's writer lock.
///
/// ```
/// use mapguard::ReadMostlyMap;
/// use std::sync::Arc;
///
/// let routes: Arc<ReadMostlyMap<String, u16>> = Arc::new(ReadMostlyMap::new());
/// routes.insert("/api".to_string(), 8080);
/// let readers: Vec<_> = (0..4).map(|_| {
///     let routes = Arc::clone(&routes);
///     std::thread::spawn(move || routes.get_cloned("/api"))
/// }).collect();
/// routes.update("/api", |port| *port = 9090);
/// for r in readers {
///     assert!(matches!(r.join().unwrap(), Some(8080 | 9090)));
/// }
/// ```
pub struct ReadMostlyMap<K, V, S = DefaultHashBuilder> {
    /// Shared (not boxed) so the Prometheus collector can hold a weak
    /// reference; it reads only telemetry and the shards' counts.
    shards: Arc<[CachePadded<Shard<K, V>>]>,
    shard_bits: u32,
    hasher: S,
    id: u64,
    telemetry: bool,
    flights: SingleFlight<K, V>,
    /// The map owns its entries (for drop check; they live in tables behind raw pointers).
    _owns: PhantomData<Box<Entry<K, V>>>,
}

impl<K, V> ReadMostlyMap<K, V> {
    /// An empty map with the default shard count and hasher.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, String> = mapguard::ReadMostlyMap::new();
    /// assert!(map.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// An empty map that holds `capacity` entries without resizing.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = mapguard::ReadMostlyMap::with_capacity(100);
    /// assert!(map.capacity() >= 100);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self::builder().capacity(capacity).build()
    }

    /// A builder to choose shard count, capacity, hasher, telemetry and the
    /// negative-cache TTL.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = mapguard::ReadMostlyMap::builder().shards(2).build();
    /// assert_eq!(map.shard_count(), 2);
    /// ```
    pub fn builder() -> ReadMostlyMapBuilder<K, V> {
        ReadMostlyMapBuilder::default()
    }
}

impl<K, V> Default for ReadMostlyMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> ReadMostlyMap<K, V, S> {
    fn from_parts(
        shards: usize,
        capacity: usize,
        hasher: S,
        telemetry: bool,
        negative_ttl: Option<std::time::Duration>,
    ) -> Self {
        let per_shard = capacity.div_ceil(shards);
        ReadMostlyMap {
            shards: (0..shards)
                .map(|_| CachePadded::new(Shard::with_capacity(per_shard)))
                .collect(),
            shard_bits: shards.trailing_zeros(),
            hasher,
            id: reentry::next_map_id(),
            telemetry,
            flights: SingleFlight::new(negative_ttl),
            _owns: PhantomData,
        }
    }

    /// Number of entries (per-shard counts kept by writers; no lock).
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = [(1, 1), (2, 2)].into_iter().collect();
    /// assert_eq!(map.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// Whether the map has no entries.
    ///
    /// ```
    /// assert!(mapguard::ReadMostlyMap::<u8, u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.len() == 0)
    }

    /// Entries the map holds before some shard must resize.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = mapguard::ReadMostlyMap::with_capacity(64);
    /// assert!(map.capacity() >= 64);
    /// ```
    pub fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.capacity()).sum()
    }

    /// Number of shards (a power of two).
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = mapguard::ReadMostlyMap::builder().shards(8).build();
    /// assert_eq!(map.shard_count(), 8);
    /// ```
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// A snapshot of the map's telemetry. Writes and contended writer-lock
    /// acquisitions are exact; reads are counted by sampling (one read in 256
    /// per thread adds 256), so a read writes nothing shared otherwise.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = mapguard::ReadMostlyMap::new();
    /// map.insert(1, 1);
    /// assert_eq!(map.stats().writes(), 1);
    /// ```
    pub fn stats(&self) -> MapStats {
        stats_of(&self.shards)
    }

    #[cfg(feature = "prometheus")]
    pub(crate) fn shards_weak(&self) -> std::sync::Weak<[CachePadded<Shard<K, V>>]> {
        Arc::downgrade(&self.shards)
    }

    fn probe(&self, entered: &Entered, hash: Option<u64>) -> Probe {
        Probe {
            telemetry: self.telemetry,
            sampled: entered.sampled,
            hash,
        }
    }
}

pub(crate) fn stats_of<K, V>(shards: &[CachePadded<Shard<K, V>>]) -> MapStats {
    MapStats::of(shards.iter().map(|s| (&s.telemetry, s.counts())))
}

impl<K, V, S> ReadMostlyMap<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// The hash the map computes for `key`, as reported in
    /// [`HotKey::hash`](crate::HotKey::hash).
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = mapguard::ReadMostlyMap::new();
    /// assert_eq!(map.hash_of(&5), map.hash_of(&5));
    /// ```
    pub fn hash_of<Q>(&self, key: &Q) -> u64
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.hasher.hash_one(key)
    }

    fn shard_of(&self, hash: u64) -> &Shard<K, V> {
        &self.shards[shard_index(hash, self.shard_bits)]
    }

    /// Runs `f` on the key's entry, lock-free.
    #[inline]
    fn with_entry<Q, R>(&self, key: &Q, f: impl FnOnce(Option<&Entry<K, V>>) -> R) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = reclaim::pin();
        f(self.find(&guard, key))
    }

    /// The key's entry, kept as it is for as long as `guard` lives.
    #[inline]
    fn find<'g, Q>(&'g self, guard: &'g Guard, key: &Q) -> Option<&'g Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        let shard = self.shard_of(hash);
        if self.telemetry && reentry::sample() {
            shard
                .telemetry
                .reads
                .fetch_add(u64::from(SAMPLE_EVERY), Relaxed);
            shard.telemetry.offer_hot(hash);
        }
        shard.table(guard).find(guard, hash, key)
    }

    /// Pins the calling thread for many reads that borrow their values instead
    /// of running a closure or cloning: the references stay valid, and each
    /// read skips the pin and unpin a [`read`](Self::read) pays, until the
    /// [`Pinned`] is dropped.
    ///
    /// While a thread stays pinned, nothing removed or replaced from then on
    /// is reclaimed (in any read-mostly map of the process): the slots wait,
    /// and a map that keeps being written grows its tables meanwhile. Pin for
    /// a batch of reads, not for the life of a thread. Writes on the same
    /// thread meanwhile are fine: a writer never waits for readers.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, String> = mapguard::ReadMostlyMap::new();
    /// map.insert(1, "one".to_string());
    /// let pinned = map.pin();
    /// let one: &String = pinned.get(&1).unwrap();
    /// map.insert(1, "uno".to_string()); // a new entry; `one` still reads the old one
    /// assert_eq!(one, "one");
    /// assert_eq!(pinned.get(&1).map(String::as_str), Some("uno"));
    /// ```
    pub fn pin(&self) -> Pinned<'_, K, V, S> {
        Pinned {
            map: self,
            guard: reclaim::pin(),
        }
    }

    /// The shard a write of `hash` goes to, its home tag word already being
    /// loaded into the cache meanwhile.
    fn shard_to_write(&self, hash: u64) -> &Shard<K, V> {
        let shard = self.shard_of(hash);
        shard.prefetch(hash);
        shard
    }

    fn write<R>(&self, op: &'static str, hash: u64, f: impl FnOnce(&mut Edit<'_, K, V>) -> R) -> R {
        let shard = self.shard_to_write(hash);
        let entered = Entered::blocking_sampled(self.id, op);
        shard.write(self.probe(&entered, Some(hash)), &|k| self.hash_of(k), f)
    }

    fn try_write<R>(
        &self,
        op: &'static str,
        hash: u64,
        f: impl FnOnce(&mut Edit<'_, K, V>) -> R,
    ) -> Result<R, WouldBlock> {
        let shard = self.shard_to_write(hash);
        let entered = Entered::non_blocking_sampled(self.id, op);
        shard.try_write(self.probe(&entered, Some(hash)), &|k| self.hash_of(k), f)
    }

    /// Runs `f` on every shard under its writer lock, one at a time.
    fn write_each_shard(&self, op: &'static str, mut f: impl FnMut(&mut Edit<'_, K, V>)) {
        for shard in self.shards.iter() {
            let entered = Entered::blocking_sampled(self.id, op);
            shard.write(self.probe(&entered, None), &|k| self.hash_of(k), &mut f);
        }
    }

    /// Runs `f` on the value, lock-free; `None` when absent. `f` may use the map
    /// freely (a read holds no lock).
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, String> = mapguard::ReadMostlyMap::new();
    /// map.insert(1, "hello".to_string());
    /// assert_eq!(map.read(&1, |s| s.len()), Some(5));
    /// assert_eq!(map.read(&2, |s| s.len()), None);
    /// ```
    pub fn read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with_entry(key, |e| e.map(|e| f(&e.value)))
    }

    /// [`read`](Self::read) under the non-blocking API: reads never wait, so this
    /// never returns [`WouldBlock`]. It exists so code can switch engines by type.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = mapguard::ReadMostlyMap::new();
    /// map.insert(1, 7);
    /// assert_eq!(map.try_read(&1, |v| *v), Ok(Some(7)));
    /// ```
    pub fn try_read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Result<Option<R>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Ok(self.read(key, f))
    }

    /// A clone of the value, lock-free.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = mapguard::ReadMostlyMap::new();
    /// map.insert(1, 10);
    /// assert_eq!(map.get_cloned(&1), Some(10));
    /// ```
    pub fn get_cloned<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.read(key, V::clone)
    }

    /// [`get_cloned`](Self::get_cloned); never [`WouldBlock`] (see [`try_read`](Self::try_read)).
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = [(1, 2)].into_iter().collect();
    /// assert_eq!(map.try_get_cloned(&1), Ok(Some(2)));
    /// ```
    pub fn try_get_cloned<Q>(&self, key: &Q) -> Result<Option<V>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        Ok(self.get_cloned(key))
    }

    /// Whether the key is present, lock-free.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = [(1, 2)].into_iter().collect();
    /// assert!(map.contains_key(&1));
    /// assert!(!map.contains_key(&2));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with_entry(key, |e| e.is_some())
    }

    /// The value and its version (for [`compare_and_update`](Self::compare_and_update)),
    /// read together from one committed entry.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = mapguard::ReadMostlyMap::new();
    /// map.insert(1, 10);
    /// let (v, version) = map.get_versioned(&1).unwrap();
    /// assert_eq!(v, 10);
    /// assert_eq!(map.version(&1), Some(version));
    /// ```
    pub fn get_versioned<Q>(&self, key: &Q) -> Option<(V, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.read_versioned(key, V::clone)
    }

    /// Runs `f` on the value; returns its result with the entry's version.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, String> = mapguard::ReadMostlyMap::new();
    /// map.insert(1, "abc".into());
    /// let (len, _version) = map.read_versioned(&1, |s| s.len()).unwrap();
    /// assert_eq!(len, 3);
    /// ```
    pub fn read_versioned<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<(R, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with_entry(key, |e| e.map(|e| (f(&e.value), e.version)))
    }

    /// The entry's version, `None` when absent.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = mapguard::ReadMostlyMap::new();
    /// map.insert(1, 1);
    /// let v1 = map.version(&1).unwrap();
    /// map.insert(1, 1);
    /// assert!(map.version(&1).unwrap() > v1);
    /// ```
    pub fn version<Q>(&self, key: &Q) -> Option<u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with_entry(key, |e| e.map(|e| e.version))
    }
}

impl<K, V, S> ReadMostlyMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// Inserts or replaces; returns the previous value.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = mapguard::ReadMostlyMap::new();
    /// assert_eq!(map.insert(1, 1), None);
    /// assert_eq!(map.insert(1, 2), Some(1));
    /// ```
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        let hash = self.hash_of(&key);
        self.write(op!(insert), hash, |e| {
            self.flights.invalidate(&key);
            insert_entry(e, hash, key, value)
        })
    }

    /// Like [`insert`](Self::insert), but returns [`WouldBlock`] instead of
    /// waiting for the shard's writer lock.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = mapguard::ReadMostlyMap::new();
    /// assert_eq!(map.try_insert(1, 1), Ok(None));
    /// ```
    pub fn try_insert(&self, key: K, value: V) -> Result<Option<V>, WouldBlock> {
        let hash = self.hash_of(&key);
        self.try_write(op!(try_insert), hash, |e| {
            self.flights.try_invalidate(&key)?;
            Ok(insert_entry(e, hash, key, value))
        })?
    }

    /// Removes the entry; returns its value. The shard's table shrinks (by
    /// incremental migration) when it became mostly empty.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.remove(&1), Some(1));
    /// assert_eq!(map.remove(&1), None);
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        self.write(op!(remove), hash, |e| {
            self.flights.invalidate(key);
            remove_entry(e, hash, key)
        })
    }

    /// Like [`remove`](Self::remove), without waiting.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.try_remove(&1), Ok(Some(1)));
    /// ```
    pub fn try_remove<Q>(&self, key: &Q) -> Result<Option<V>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        self.try_write(op!(try_remove), hash, |e| {
            self.flights.try_invalidate(key)?;
            Ok(remove_entry(e, hash, key))
        })?
    }

    /// Edits a copy of the value under the shard's writer lock and publishes
    /// it; `None` when absent. The read-modify-write that can't lose updates;
    /// readers see the old value or the new one, never a half-edited one (a
    /// panicking `f` publishes nothing).
    ///
    /// `f` must not call blocking writes of this map (it panics if it does).
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<&str, Vec<u32>> = mapguard::ReadMostlyMap::new();
    /// map.insert("q", vec![]);
    /// assert_eq!(map.update("q", |q| { q.push(1); q.len() }), Some(1));
    /// assert_eq!(map.update("nope", |q| q.len()), None);
    /// ```
    pub fn update<Q, R>(&self, key: &Q, f: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        self.write(op!(update), hash, |e| {
            self.flights.invalidate(key);
            update_entry(e, hash, key, f)
        })
    }

    /// Like [`update`](Self::update), without waiting.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = [(1, 1)].into_iter().collect();
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
        self.try_write(op!(try_update), hash, |e| {
            self.flights.try_invalidate(key)?;
            Ok(update_entry(e, hash, key, f))
        })?
    }

    /// Decides under one writer lock what happens to the entry, present or
    /// not: see [`Compute`]. Returns the value the map gave up.
    ///
    /// ```
    /// use mapguard::{Compute, ReadMostlyMap};
    /// let map: ReadMostlyMap<&str, u32> = ReadMostlyMap::new();
    /// assert_eq!(map.compute("n", |v| Compute::Set(v.copied().unwrap_or(0) + 1)), None);
    /// assert_eq!(map.compute("n", |_| Compute::Remove), Some(1));
    /// ```
    pub fn compute(&self, key: K, f: impl FnOnce(Option<&V>) -> Compute<V>) -> Option<V> {
        let hash = self.hash_of(&key);
        self.write(op!(compute), hash, |e| {
            self.flights.invalidate(&key);
            compute_entry(e, hash, key, f)
        })
    }

    /// Like [`compute`](Self::compute), without waiting (`f` is not called when
    /// the lock is busy).
    ///
    /// ```
    /// use mapguard::{Compute, ReadMostlyMap};
    /// let map: ReadMostlyMap<u8, u8> = ReadMostlyMap::new();
    /// assert_eq!(map.try_compute(1, |_| Compute::Set(5)), Ok(None));
    /// ```
    pub fn try_compute(
        &self,
        key: K,
        f: impl FnOnce(Option<&V>) -> Compute<V>,
    ) -> Result<Option<V>, WouldBlock> {
        let hash = self.hash_of(&key);
        self.try_write(op!(try_compute), hash, |e| {
            self.flights.try_invalidate(&key)?;
            Ok(compute_entry(e, hash, key, f))
        })?
    }

    /// The value for `key`, inserting `f()` first when absent (`f` runs under
    /// the writer lock, at most once per insertion; for slow initialisation use
    /// [`get_or_load`](Self::get_or_load)).
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, String> = mapguard::ReadMostlyMap::new();
    /// assert_eq!(map.get_or_insert_with(1, || "first".into()), "first");
    /// assert_eq!(map.get_or_insert_with(1, || "second".into()), "first");
    /// ```
    pub fn get_or_insert_with(&self, key: K, f: impl FnOnce() -> V) -> V {
        if let Some(value) = self.get_cloned(&key) {
            return value;
        }
        let hash = self.hash_of(&key);
        self.write(op!(get_or_insert_with), hash, |e| {
            fill_entry(e, hash, key, f)
        })
    }

    /// Optimistic read-modify-write: applies `f` to a copy of the value only if
    /// the entry's version is still `seen`; returns the new version, or
    /// [`Conflict`] with the current one.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<&str, u64> = mapguard::ReadMostlyMap::new();
    /// map.insert("stock", 10);
    /// let (stock, seen) = map.get_versioned("stock").unwrap();
    /// let new_version = map.compare_and_update("stock", seen, |s| *s = stock - 3).unwrap();
    /// assert_eq!(map.get_versioned("stock"), Some((7, new_version)));
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
        self.write(op!(compare_and_update), hash, |e| {
            self.flights.invalidate(key);
            let Some(i) = e.locate(hash, key) else {
                return Err(Conflict { current: None });
            };
            let entry = e.entry(i);
            if entry.version != seen {
                return Err(Conflict {
                    current: Some(entry.version),
                });
            }
            let (key, mut value) = (entry.key.clone(), entry.value.clone());
            f(&mut value);
            Ok(e.replace(i, key, value))
        })
    }

    /// Keeps only the entries for which `f` returns `true`, one shard at a time
    /// (each shard atomically, under its writer lock; readers carry on).
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
    /// map.retain(|_, v| v % 2 == 0);
    /// assert_eq!(map.len(), 5);
    /// ```
    pub fn retain(&self, mut f: impl FnMut(&K, &V) -> bool) {
        self.write_each_shard(op!(retain), |e| {
            self.flights.invalidate_all();
            e.retain(&mut f);
        });
    }

    /// Removes every entry. Readers switch to an empty table at once.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
    /// map.clear();
    /// assert!(map.is_empty());
    /// ```
    pub fn clear(&self) {
        self.write_each_shard(op!(clear), |e| {
            self.flights.invalidate_all();
            e.clear();
        });
        self.flights.forget_misses();
    }

    /// Migrates every shard to a table sized for its entries (a quarter to an
    /// eighth full: smaller after removals, bigger when a bulk load left it at
    /// its growth threshold), finishing any migration in progress. Worth
    /// calling after a bulk load that will be followed mostly by reads: only
    /// writes move a migration along, and until it ends, reads of moved keys
    /// probe two tables.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = mapguard::ReadMostlyMap::with_capacity(10_000);
    /// map.insert(1, 1);
    /// map.shrink_to_fit();
    /// assert!(map.capacity() < 10_000);
    /// ```
    pub fn shrink_to_fit(&self) {
        self.write_each_shard(op!(shrink_to_fit), |e| e.shrink_to_fit());
    }

    /// Calls `f` on every entry. Each shard is copied under its writer lock (a
    /// consistent view of the shard, whatever migration is in progress; readers
    /// carry on) and `f` runs with no lock held, so it may use the map freely.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = (1..=3).map(|i| (i, i)).collect();
    /// let mut sum = 0;
    /// map.for_each(|_, v| {
    ///     sum += v;
    ///     map.insert(100, 0); // allowed: no lock is held here
    /// });
    /// assert_eq!(sum, 6);
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for (k, v) in self.iter() {
            f(&k, &v);
        }
    }

    /// An iterator of owned `(key, value)` pairs, one shard copied at a time
    /// (see [`for_each`](Self::for_each)).
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = (0..100).map(|i| (i, i * 2)).collect();
    /// let mut pairs: Vec<_> = map.iter().collect();
    /// pairs.sort();
    /// assert_eq!(pairs[3], (3, 6));
    /// assert_eq!(pairs.len(), 100);
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V, S> {
        Iter::read_mostly(self)
    }

    pub(crate) fn snapshot_shard(&self, index: usize) -> Vec<(K, V)> {
        let entered = Entered::blocking_sampled(self.id, op!(iter));
        self.shards[index].write(self.probe(&entered, None), &|k| self.hash_of(k), |e| {
            let mut pairs = Vec::with_capacity(e.len());
            e.for_each(|entry| pairs.push((entry.key.clone(), entry.value.clone())));
            pairs
        })
    }

    /// The value for `key`, loading it with `load` when absent: one load per
    /// missing key however many callers arrive, shared value or error, a
    /// panicking loader leaves the map working, and a write to the key during
    /// the load keeps the loaded value out of the map. Same contract as
    /// [`ShardedMap::get_or_load`](crate::ShardedMap::get_or_load).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// let map: mapguard::ReadMostlyMap<u32, String> = mapguard::ReadMostlyMap::new();
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
        E: Send + Sync + 'static,
        F: FnOnce(&K) -> Result<V, E>,
    {
        reentry::forbid_reentry(self.id, op!(get_or_load));
        self.flights.load_value(self, key, load)
    }

    /// Like [`get_or_load`](Self::get_or_load) for keys that may not exist
    /// (`Ok(None)`), with negative caching per
    /// [`negative_ttl`](ReadMostlyMapBuilder::negative_ttl).
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, String> = mapguard::ReadMostlyMap::new();
    /// assert_eq!(map.get_or_load_optional(7, |_| Ok::<_, ()>(None)), Ok(None));
    /// assert!(map.is_empty());
    /// ```
    pub fn get_or_load_optional<E, F>(&self, key: K, load: F) -> Result<Option<V>, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: FnOnce(&K) -> Result<Option<V>, E>,
    {
        reentry::forbid_reentry(self.id, op!(get_or_load_optional));
        self.flights.load(self, key, true, load)
    }

    /// Forgets a remembered not-found for `key`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let map: mapguard::ReadMostlyMap<u8, u8> =
    ///     mapguard::ReadMostlyMap::builder().negative_ttl(Duration::from_secs(60)).build();
    /// assert_eq!(map.get_or_load_optional(1, |_| Ok::<_, ()>(None)), Ok(None));
    /// map.forget_miss(&1);
    /// assert_eq!(map.get_or_load_optional(1, |_| Ok::<_, ()>(Some(5))), Ok(Some(5)));
    /// ```
    pub fn forget_miss(&self, key: &K) {
        self.flights.forget_miss(key);
    }
}

impl<K, V, S> Backing<K, V> for ReadMostlyMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    fn lookup(&self, key: &K) -> Option<V> {
        self.get_cloned(key)
    }

    fn recheck(&self, key: &K) -> Option<V> {
        // Under the writer lock, which orders this read against every write.
        let hash = self.hash_of(key);
        self.write(op!(get_or_load), hash, |e| {
            e.locate(hash, key).map(|i| e.entry(i).value.clone())
        })
    }

    fn fill(&self, key: K, value: V, invalidated: &AtomicBool) -> V {
        let hash = self.hash_of(&key);
        self.write(op!(get_or_load), hash, |e| {
            // Checked under the writer lock the invalidating writers hold.
            if invalidated.load(Relaxed) && e.locate(hash, &key).is_none() {
                return value;
            }
            fill_entry(e, hash, key, || value)
        })
    }
}

/// A thread pinned for reads of one [`ReadMostlyMap`] that borrow their values
/// ([`ReadMostlyMap::pin`]). Each read sees the latest committed entry of its
/// key when it runs; what it returned stays as it was, however the map changes,
/// until the `Pinned` is dropped. Not `Send`: the pin is its thread's.
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let map: mapguard::ReadMostlyMap<u32, u32> = mapguard::ReadMostlyMap::new();
/// send(map.pin());
/// ```
pub struct Pinned<'m, K, V, S = DefaultHashBuilder> {
    map: &'m ReadMostlyMap<K, V, S>,
    guard: Guard,
}

impl<K, V, S> Pinned<'_, K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// The key's value, lock-free.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = [(1, 10)].into_iter().collect();
    /// let pinned = map.pin();
    /// assert_eq!(pinned.get(&1), Some(&10));
    /// assert_eq!(pinned.get(&2), None);
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.find(&self.guard, key).map(|e| &e.value)
    }

    /// The stored key and its value.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<String, u32> = [("a".to_string(), 1)].into_iter().collect();
    /// assert_eq!(map.pin().get_key_value("a"), Some((&"a".to_string(), &1)));
    /// ```
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.find(&self.guard, key).map(|e| (&e.key, &e.value))
    }

    /// The value with its version (for
    /// [`compare_and_update`](ReadMostlyMap::compare_and_update)), from one
    /// committed entry.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = [(1, 10)].into_iter().collect();
    /// let pinned = map.pin();
    /// let (v, version) = pinned.get_versioned(&1).unwrap();
    /// assert_eq!((*v, Some(version)), (10, map.version(&1)));
    /// ```
    pub fn get_versioned<Q>(&self, key: &Q) -> Option<(&V, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map
            .find(&self.guard, key)
            .map(|e| (&e.value, e.version))
    }

    /// Whether the key is present.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u32, u32> = [(1, 10)].into_iter().collect();
    /// assert!(map.pin().contains_key(&1));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.find(&self.guard, key).is_some()
    }
}

impl<K, V, S> fmt::Debug for Pinned<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned").finish_non_exhaustive()
    }
}

#[inline]
fn insert_entry<K: Eq, V: Clone>(e: &mut Edit<'_, K, V>, hash: u64, key: K, value: V) -> Option<V> {
    match e.locate(hash, &key) {
        Some(i) => {
            let old = e.entry(i).value.clone();
            e.replace(i, key, value);
            Some(old)
        }
        None => {
            e.insert_new(hash, key, value);
            None
        }
    }
}

#[inline]
fn remove_entry<K, V, Q>(e: &mut Edit<'_, K, V>, hash: u64, key: &Q) -> Option<V>
where
    K: Borrow<Q>,
    V: Clone,
    Q: Eq + ?Sized,
{
    let i = e.locate(hash, key)?;
    let old = e.entry(i).value.clone();
    e.remove(i);
    Some(old)
}

fn update_entry<K, V, Q, R>(
    e: &mut Edit<'_, K, V>,
    hash: u64,
    key: &Q,
    f: impl FnOnce(&mut V) -> R,
) -> Option<R>
where
    K: Borrow<Q> + Clone,
    V: Clone,
    Q: Eq + ?Sized,
{
    let i = e.locate(hash, key)?;
    let entry = e.entry(i);
    let (key, mut value) = (entry.key.clone(), entry.value.clone());
    let result = f(&mut value);
    e.replace(i, key, value);
    Some(result)
}

fn compute_entry<K: Eq, V: Clone>(
    e: &mut Edit<'_, K, V>,
    hash: u64,
    key: K,
    f: impl FnOnce(Option<&V>) -> Compute<V>,
) -> Option<V> {
    let i = e.locate(hash, &key);
    match (f(i.map(|i| &e.entry(i).value)), i) {
        (Compute::Set(value), Some(i)) => {
            let old = e.entry(i).value.clone();
            e.replace(i, key, value);
            Some(old)
        }
        (Compute::Set(value), None) => {
            e.insert_new(hash, key, value);
            None
        }
        (Compute::Remove, Some(i)) => {
            let old = e.entry(i).value.clone();
            e.remove(i);
            Some(old)
        }
        (Compute::Remove | Compute::Keep, _) => None,
    }
}

/// The present value, or `f()` inserted.
fn fill_entry<K: Eq, V: Clone>(
    e: &mut Edit<'_, K, V>,
    hash: u64,
    key: K,
    f: impl FnOnce() -> V,
) -> V {
    if let Some(i) = e.locate(hash, &key) {
        return e.entry(i).value.clone();
    }
    let value = f();
    e.insert_new(hash, key, value.clone());
    value
}

impl<K, V, S> Drop for ReadMostlyMap<K, V, S> {
    fn drop(&mut self) {
        for shard in self.shards.iter() {
            // SAFETY: the map is being dropped, so no operation is in progress
            // or can start; a Prometheus collector may still hold the shards
            // but reads only their telemetry and counts.
            unsafe { shard.free_all() };
        }
    }
}

impl_concurrent_map!(ReadMostlyMap, stats: MapStats);

impl<K, V, S> fmt::Debug for ReadMostlyMap<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadMostlyMap")
            .field("len", &self.len())
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<K, V, S> FromIterator<(K, V)> for ReadMostlyMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Default,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = ReadMostlyMapBuilder::default().hasher(S::default()).build();
        map.extend(iter);
        map
    }
}

impl<K, V, S> Extend<(K, V)> for ReadMostlyMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        (&*self).extend(iter);
    }
}

impl<K, V, S> Extend<(K, V)> for &ReadMostlyMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

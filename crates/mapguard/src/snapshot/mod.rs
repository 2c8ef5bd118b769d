//! The copy-on-write engine (Go's `atomic.Value` pattern): readers load the
//! current immutable generation through arc-swap, wait-free; writers take one
//! mutex, copy the generation, change the copy and publish it with one atomic
//! store. A reader therefore sees a whole generation or the next one, never a
//! mixture, and a batch of changes becomes visible at once.
//!
//! Every write invalidates the loads in flight it may make stale (its key's; a
//! batch's, `retain`'s and `clear`'s: all of them) inside the writer mutex, the
//! lock the loader's fill takes too (see [`crate::loader`]).

mod batch;
mod view;

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hashbrown::HashMap;

pub use self::batch::Batch;
use self::view::Generation;
pub use self::view::Snapshot;
use crate::api::{impl_concurrent_map, Compute, Conflict, WouldBlock};
use crate::iter::Iter;
use crate::loader::{Backing, SingleFlight};
use crate::reentry::{self, Entered};
use crate::sync::Mutex;
use crate::table_alloc::TableAlloc;
use crate::DefaultHashBuilder;

reentry::name_ops!("SnapshotMap");

/// A map whose reads are wait-free lookups in an immutable snapshot and whose
/// writes copy the map and publish the copy atomically.
///
/// Pick it for read-mostly data (configuration, routing tables, feature flags,
/// small reference caches): reads never wait and never contend; every write
/// costs a copy of the whole map, so batch writes with
/// [`write_batch`](Self::write_batch).
///
/// ```
/// use mapguard::SnapshotMap;
///
/// let routes: SnapshotMap<&str, &str> = SnapshotMap::new();
/// routes.write_batch(|tx| {
///     tx.insert("/api", "backend-a");
///     tx.insert("/static", "cdn");
/// });
/// assert_eq!(routes.read("/api", |b| b.len()), Some(9));
/// ```
pub struct SnapshotMap<K, V, S = DefaultHashBuilder> {
    current: ArcSwap<Generation<K, V, S>>,
    /// Serializes writers; guards nothing itself (the data is in `current`).
    writer: Mutex<()>,
    id: u64,
    flights: SingleFlight<K, V>,
    /// Shared so that a Prometheus collector can hold a weak reference.
    counters: Arc<Counters>,
}

/// The write counters behind [`SnapshotStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) writes: AtomicU64,
    pub(crate) publishes: AtomicU64,
    pub(crate) contended: AtomicU64,
    /// Entries in the latest publication, for a collector that holds only
    /// these counters.
    pub(crate) len: AtomicUsize,
}

/// Counters of a [`SnapshotMap`], from [`SnapshotMap::stats`]. Reads are not
/// counted: counting them would make wait-free readers contend on a counter.
///
/// ```
/// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
/// map.insert(1, 1);
/// map.write_batch(|tx| { tx.insert(2, 2); tx.insert(3, 3); });
/// let stats = map.stats();
/// assert_eq!((stats.writes, stats.publishes, stats.len), (2, 2, 3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Entries in the current snapshot.
    pub len: usize,
    /// Write operations (a batch counts once), including those that changed nothing.
    pub writes: u64,
    /// Snapshots published (writes that changed something).
    pub publishes: u64,
    /// Writes that found another writer busy and had to wait.
    pub contended_writes: u64,
}

/// Configures and builds a [`SnapshotMap`]; from [`SnapshotMap::builder`].
///
/// ```
/// use std::time::Duration;
/// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::builder()
///     .negative_ttl(Duration::from_secs(1))
///     .build();
/// assert!(map.is_empty());
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct SnapshotMapBuilder<K, V, S = DefaultHashBuilder> {
    hasher: S,
    negative_ttl: Option<Duration>,
    _types: std::marker::PhantomData<fn() -> (K, V)>,
}

impl<K, V, S> fmt::Debug for SnapshotMapBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotMapBuilder")
            .field("negative_ttl", &self.negative_ttl)
            .finish_non_exhaustive()
    }
}

impl<K, V, S> SnapshotMapBuilder<K, V, S> {
    /// Remember a load that found nothing for `ttl` (see
    /// [`SnapshotMap::get_or_load_optional`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let map: mapguard::SnapshotMap<u8, u8> =
    ///     mapguard::SnapshotMap::builder().negative_ttl(Duration::from_secs(9)).build();
    /// map.get_or_load_optional(1, |_| Ok::<_, ()>(None)).unwrap();
    /// assert_eq!(map.get_or_load_optional(1, |_| Ok::<_, ()>(Some(1))), Ok(None));
    /// ```
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Use another hasher.
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// let map: mapguard::SnapshotMap<u8, u8, RandomState> =
    ///     mapguard::SnapshotMap::builder().hasher(RandomState::new()).build();
    /// map.insert(1, 1);
    /// assert_eq!(map.get_cloned(&1), Some(1));
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> SnapshotMapBuilder<K, V, S2> {
        SnapshotMapBuilder {
            hasher,
            negative_ttl: self.negative_ttl,
            _types: std::marker::PhantomData,
        }
    }

    /// Builds the map.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::builder().build();
    /// assert!(map.is_empty());
    /// ```
    pub fn build(self) -> SnapshotMap<K, V, S> {
        SnapshotMap {
            current: ArcSwap::from_pointee(Generation {
                map: HashMap::with_hasher_in(self.hasher, TableAlloc::default()),
                number: 0,
                clock: 0,
            }),
            writer: Mutex::new(()),
            id: reentry::next_map_id(),
            flights: SingleFlight::new(self.negative_ttl),
            counters: Arc::default(),
        }
    }
}

impl Counters {
    pub(crate) fn stats(&self) -> SnapshotStats {
        SnapshotStats {
            len: self.len.load(Relaxed),
            writes: self.writes.load(Relaxed),
            publishes: self.publishes.load(Relaxed),
            contended_writes: self.contended.load(Relaxed),
        }
    }
}

impl<K, V> SnapshotMap<K, V> {
    /// An empty map with the default hasher.
    ///
    /// ```
    /// assert!(mapguard::SnapshotMap::<u8, u8>::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to choose the hasher and the negative-cache TTL.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::builder().build();
    /// assert!(map.is_empty());
    /// ```
    pub fn builder() -> SnapshotMapBuilder<K, V> {
        SnapshotMapBuilder {
            hasher: DefaultHashBuilder::default(),
            negative_ttl: None,
            _types: std::marker::PhantomData,
        }
    }
}

impl<K, V> Default for SnapshotMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> SnapshotMap<K, V, S> {
    /// The current state, consistent and immutable; later writes don't change
    /// it. Wait-free.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// let s = map.snapshot();
    /// map.clear();
    /// assert_eq!(s.len(), 1);
    /// ```
    pub fn snapshot(&self) -> Snapshot<K, V, S> {
        Snapshot {
            inner: self.current.load_full(),
        }
    }

    /// Number of entries (wait-free).
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.current.load().map.len()
    }

    /// Whether the map is empty (wait-free).
    ///
    /// ```
    /// assert!(mapguard::SnapshotMap::<u8, u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.current.load().map.is_empty()
    }

    /// The map's write counters.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// assert_eq!(map.stats().publishes, 0);
    /// ```
    pub fn stats(&self) -> SnapshotStats {
        SnapshotStats {
            len: self.len(),
            ..self.counters.stats()
        }
    }

    /// Calls `f` on every entry of one snapshot (a consistent view).
    /// No lock is held: `f` may use the map, including writing to it.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = (1..=3).map(|i| (i, i)).collect();
    /// let mut sum = 0;
    /// map.for_each(|_, v| sum += v);
    /// assert_eq!(sum, 6);
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        let snapshot = self.snapshot();
        for (k, v) in snapshot.iter() {
            f(k, v);
        }
    }

    /// Owned `(key, value)` pairs of one snapshot (a consistent view), copied
    /// when the iterator is made; no lock is held. The same item type as the
    /// other engines' `iter` (see [`ConcurrentMap`](crate::ConcurrentMap));
    /// to borrow instead, iterate a [`snapshot`](Self::snapshot).
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u32, u32> = (0..100).map(|i| (i, i * 2)).collect();
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
        let snapshot = self.snapshot();
        let pairs = snapshot.iter().map(|(k, v)| (k.clone(), v.clone()));
        Iter::copied(pairs.collect())
    }

    #[cfg(feature = "prometheus")]
    pub(crate) fn counters_weak(&self) -> std::sync::Weak<Counters> {
        Arc::downgrade(&self.counters)
    }
}

impl<K, V, S> SnapshotMap<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// Runs `f` on the value in the current snapshot; wait-free. `f` may call
    /// anything on the map, writes included (they publish a new snapshot; `f`
    /// keeps seeing the old one).
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, String> = mapguard::SnapshotMap::new();
    /// map.insert(1, "abc".into());
    /// assert_eq!(map.read(&1, |s| s.len()), Some(3));
    /// ```
    pub fn read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.current.load().map.get(key).map(|e| f(&e.value))
    }

    /// [`read`](Self::read) under the non-blocking API: reads never wait, so
    /// this never returns [`WouldBlock`]. It exists so code can switch engines
    /// by type.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 7)].into_iter().collect();
    /// assert_eq!(map.try_read(&1, |v| *v), Ok(Some(7)));
    /// ```
    pub fn try_read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Result<Option<R>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Ok(self.read(key, f))
    }

    /// A clone of the value; wait-free.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 5)].into_iter().collect();
    /// assert_eq!(map.get_cloned(&1), Some(5));
    /// ```
    pub fn get_cloned<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.read(key, V::clone)
    }

    /// [`get_cloned`](Self::get_cloned); never [`WouldBlock`] (see
    /// [`try_read`](Self::try_read)).
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 5)].into_iter().collect();
    /// assert_eq!(map.try_get_cloned(&1), Ok(Some(5)));
    /// ```
    pub fn try_get_cloned<Q>(&self, key: &Q) -> Result<Option<V>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        Ok(self.get_cloned(key))
    }

    /// Whether `key` is present; wait-free.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 5)].into_iter().collect();
    /// assert!(map.contains_key(&1));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.current.load().map.contains_key(key)
    }

    /// A clone of the value with its version (see
    /// [`compare_and_update`](Self::compare_and_update)); wait-free.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 5)].into_iter().collect();
    /// assert_eq!(map.get_versioned(&1).map(|(v, _)| v), Some(5));
    /// ```
    pub fn get_versioned<Q>(&self, key: &Q) -> Option<(V, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.read_versioned(key, V::clone)
    }

    /// Runs `f` on the value in the current snapshot; returns its result with
    /// the entry's version. Wait-free.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, String> = [(1, "abc".into())].into_iter().collect();
    /// let (len, version) = map.read_versioned(&1, |s| s.len()).unwrap();
    /// assert_eq!((len, Some(version)), (3, map.version(&1)));
    /// ```
    pub fn read_versioned<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<(R, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.current
            .load()
            .map
            .get(key)
            .map(|e| (f(&e.value), e.version))
    }

    /// The entry's version (changes on every write, never reused); wait-free.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 5)].into_iter().collect();
    /// assert!(map.version(&1).is_some() && map.version(&2).is_none());
    /// ```
    pub fn version<Q>(&self, key: &Q) -> Option<u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.current.load().map.get(key).map(|e| e.version)
    }
}

impl<K, V, S> SnapshotMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone,
{
    /// Copies the current generation, lets `f` change the copy, publishes it
    /// if anything changed. `wait`: block for the writer lock, or give up.
    fn write<R>(
        &self,
        op: &'static str,
        wait: bool,
        f: impl FnOnce(&mut Batch<'_, K, V, S>) -> R,
    ) -> Result<R, WouldBlock> {
        let _entered = self.enter(op, wait);
        let _writer = match self.writer.try_lock() {
            Some(guard) => guard,
            None if wait => {
                self.counters.contended.fetch_add(1, Relaxed);
                self.writer.lock()
            }
            None => {
                self.counters.contended.fetch_add(1, Relaxed);
                return Err(WouldBlock);
            }
        };
        self.counters.writes.fetch_add(1, Relaxed);
        // Writers are serialized, so this is the latest generation and stays so
        // until we publish.
        let current = self.current.load_full();
        let mut next = Generation {
            map: current.map.clone(),
            number: current.number + 1,
            clock: current.clock,
        };
        let mut batch = Batch {
            map: &mut next.map,
            clock: &mut next.clock,
            changed: false,
        };
        let result = f(&mut batch);
        if batch.changed {
            self.counters.len.store(next.map.len(), Relaxed);
            self.current.store(Arc::new(next));
            self.counters.publishes.fetch_add(1, Relaxed);
        }
        Ok(result)
    }

    /// Records this thread as inside the map for `op`; a blocking one panics
    /// when the thread already is (see [`crate::reentry`]).
    fn enter(&self, op: &'static str, wait: bool) -> Entered {
        if wait {
            Entered::blocking(self.id, op)
        } else {
            Entered::non_blocking(self.id, op)
        }
    }

    fn write_blocking<R>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Batch<'_, K, V, S>) -> R,
    ) -> R {
        match self.write(op, true, f) {
            Ok(result) => result,
            Err(WouldBlock) => unreachable!("a blocking write waits"),
        }
    }

    /// Applies all of `f`'s changes as one atomic publication: readers see all
    /// of them or none. If `f` panics, nothing is published. Writers are
    /// serialized; `f` must not write to this map except through `tx` (a nested
    /// write panics), but may read it (seeing the previous snapshot).
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u32, u32> = mapguard::SnapshotMap::new();
    /// map.write_batch(|tx| {
    ///     for i in 0..100 { tx.insert(i, i); }
    ///     tx.remove(&0);
    /// });
    /// assert_eq!(map.len(), 99);
    /// assert_eq!(map.snapshot().generation(), 1); // one publication
    /// ```
    pub fn write_batch<R>(&self, f: impl FnOnce(&mut Batch<'_, K, V, S>) -> R) -> R {
        // A batch may touch any key: it invalidates every load in flight.
        self.write_blocking(op!(write_batch), |tx| {
            self.flights.invalidate_all();
            f(tx)
        })
    }

    /// Like [`write_batch`](Self::write_batch), but returns [`WouldBlock`]
    /// instead of waiting for another writer (`f` is then not called).
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// assert_eq!(map.try_write_batch(|tx| tx.insert(1, 1)), Ok(None));
    /// ```
    pub fn try_write_batch<R>(
        &self,
        f: impl FnOnce(&mut Batch<'_, K, V, S>) -> R,
    ) -> Result<R, WouldBlock> {
        self.write(op!(try_write_batch), false, |tx| {
            self.flights.try_invalidate_all()?;
            Ok(f(tx))
        })?
    }

    /// Inserts or replaces; returns the previous value. Copies the map: batch
    /// many writes with [`write_batch`](Self::write_batch).
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// assert_eq!(map.insert(1, 1), None);
    /// assert_eq!(map.insert(1, 2), Some(1));
    /// ```
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        self.write_blocking(op!(insert), |tx| {
            self.flights.invalidate(&key);
            tx.insert(key, value)
        })
    }

    /// Like [`insert`](Self::insert), but returns [`WouldBlock`] (and inserts
    /// nothing) instead of waiting for another writer. Reads never wait; only
    /// the `try_*` writes can return [`WouldBlock`] on this engine, e.g. from
    /// inside [`write_batch`](Self::write_batch)'s closure.
    ///
    /// ```
    /// use mapguard::WouldBlock;
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// assert_eq!(map.try_insert(1, 1), Ok(None));
    /// map.write_batch(|_| assert_eq!(map.try_insert(1, 2), Err(WouldBlock)));
    /// assert_eq!(map.get_cloned(&1), Some(1));
    /// ```
    pub fn try_insert(&self, key: K, value: V) -> Result<Option<V>, WouldBlock> {
        self.write(op!(try_insert), false, |tx| {
            self.flights.try_invalidate(&key)?;
            Ok(tx.insert(key, value))
        })?
    }

    /// Removes `key`; returns its value. An absent key publishes nothing.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.remove(&1), Some(1));
    /// assert_eq!(map.remove(&1), None);
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.contains_key(key) && self.absent_invalidated(op!(remove), true, key) == Ok(true) {
            return None;
        }
        self.write_blocking(op!(remove), |tx| {
            self.flights.invalidate(key);
            tx.remove(key)
        })
    }

    /// Like [`remove`](Self::remove), without waiting for another writer.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.try_remove(&1), Ok(Some(1)));
    /// assert_eq!(map.try_remove(&1), Ok(None));
    /// ```
    pub fn try_remove<Q>(&self, key: &Q) -> Result<Option<V>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.contains_key(key) && self.absent_invalidated(op!(try_remove), false, key)? {
            return Ok(None);
        }
        self.write(op!(try_remove), false, |tx| {
            self.flights.try_invalidate(key)?;
            Ok(tx.remove(key))
        })?
    }

    /// Changes the value in place (in the copy to publish); `None` when absent.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.update(&1, |v| { *v += 1; *v }), Some(2));
    /// ```
    pub fn update<Q, R>(&self, key: &Q, f: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.contains_key(key) && self.absent_invalidated(op!(update), true, key) == Ok(true) {
            return None;
        }
        self.write_blocking(op!(update), |tx| {
            self.flights.invalidate(key);
            tx.update(key, f)
        })
    }

    /// Like [`update`](Self::update), without waiting for another writer (`f`
    /// is not called then).
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 1)].into_iter().collect();
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
        if !self.contains_key(key) && self.absent_invalidated(op!(try_update), false, key)? {
            return Ok(None);
        }
        self.write(op!(try_update), false, |tx| {
            self.flights.try_invalidate(key)?;
            Ok(tx.update(key, f))
        })?
    }

    /// Decides what happens to the entry, present or not (see [`Compute`]);
    /// returns the value given up.
    ///
    /// ```
    /// use mapguard::Compute;
    /// let map: mapguard::SnapshotMap<u8, u32> = mapguard::SnapshotMap::new();
    /// map.compute(1, |n| Compute::Set(n.map_or(1, |n| n + 1)));
    /// assert_eq!(map.get_cloned(&1), Some(1));
    /// ```
    pub fn compute(&self, key: K, f: impl FnOnce(Option<&V>) -> Compute<V>) -> Option<V> {
        self.write_blocking(op!(compute), |tx| {
            self.flights.invalidate(&key);
            tx.compute(key, f)
        })
    }

    /// Like [`compute`](Self::compute), without waiting for another writer (`f`
    /// is not called then).
    ///
    /// ```
    /// use mapguard::Compute;
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// assert_eq!(map.try_compute(1, |_| Compute::Set(5)), Ok(None));
    /// ```
    pub fn try_compute(
        &self,
        key: K,
        f: impl FnOnce(Option<&V>) -> Compute<V>,
    ) -> Result<Option<V>, WouldBlock> {
        self.write(op!(try_compute), false, |tx| {
            self.flights.try_invalidate(&key)?;
            Ok(tx.compute(key, f))
        })?
    }

    /// The value for `key`, inserting `f()` first when absent.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// assert_eq!(map.get_or_insert_with(1, || 7), 7);
    /// assert_eq!(map.get_or_insert_with(1, || 8), 7);
    /// ```
    pub fn get_or_insert_with(&self, key: K, f: impl FnOnce() -> V) -> V {
        if let Some(value) = self.get_cloned(&key) {
            return value;
        }
        self.fill_with(op!(get_or_insert_with), key, f)
    }

    /// For a `remove` or `update` that found `key` absent: whether it is still
    /// absent under the writer mutex, in which case the write changes nothing
    /// and needs no copy of the map, only the invalidation of a load of the key
    /// in flight (which may have read its source before this write's caller
    /// changed it). `false`: a writer, e.g. that very load's fill, added the key
    /// meanwhile, and the caller must do the full write. The writer mutex is the
    /// lock the loader's re-check and fill take, which orders them against this
    /// check (see [`crate::loader`]).
    /// `wait: false` gives up with [`WouldBlock`] instead of waiting.
    fn absent_invalidated<Q>(
        &self,
        op: &'static str,
        wait: bool,
        key: &Q,
    ) -> Result<bool, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let _entered = self.enter(op, wait);
        let _writer = if wait {
            self.writer.lock()
        } else {
            self.writer.try_lock().ok_or(WouldBlock)?
        };
        if self.contains_key(key) {
            return Ok(false);
        }
        if wait {
            self.flights.invalidate(key);
        } else {
            self.flights.try_invalidate(key)?;
        }
        Ok(true)
    }

    fn fill_with(&self, op: &'static str, key: K, f: impl FnOnce() -> V) -> V {
        self.write_blocking(op, |tx| {
            if let Some(value) = tx.get(&key) {
                return value.clone();
            }
            let value = f();
            tx.insert(key, value.clone());
            value
        })
    }

    /// Optimistic read-modify-write: applies `f` only if the entry's version is
    /// still `seen`; returns the new version or [`Conflict`].
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<&str, u32> = [("n", 1)].into_iter().collect();
    /// let (n, seen) = map.get_versioned("n").unwrap();
    /// assert!(map.compare_and_update("n", seen, |v| *v = n * 10).is_ok());
    /// assert!(map.compare_and_update("n", seen, |v| *v = 0).is_err());
    /// assert_eq!(map.get_cloned("n"), Some(10));
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
        match self.version(key) {
            Some(v) if v == seen => {}
            current => return Err(Conflict { current }),
        }
        self.write_blocking(op!(compare_and_update), |tx| {
            self.flights.invalidate(key);
            match tx.map.get(key).map(|e| e.version) {
                Some(v) if v == seen => {}
                current => return Err(Conflict { current }),
            }
            tx.update(key, f);
            Ok(*tx.clock)
        })
    }

    /// Keeps only the entries for which `f` returns `true` (one publication).
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = (0..10).map(|i| (i, i)).collect();
    /// map.retain(|_, v| *v >= 5);
    /// assert_eq!(map.len(), 5);
    /// ```
    pub fn retain(&self, f: impl FnMut(&K, &V) -> bool) {
        self.write_blocking(op!(retain), |tx| {
            self.flights.invalidate_all();
            tx.retain(f)
        });
    }

    /// Removes every entry (one publication).
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = (0..10).map(|i| (i, i)).collect();
    /// map.clear();
    /// assert!(map.is_empty());
    /// ```
    pub fn clear(&self) {
        self.write_blocking(op!(clear), |tx| {
            self.flights.invalidate_all();
            tx.clear()
        });
        self.flights.forget_misses();
    }

    /// The value for `key`, loading it once however many callers ask at the
    /// same time (see [`ShardedMap::get_or_load`](crate::ShardedMap::get_or_load),
    /// which also describes how a write during the load keeps its value out of
    /// the map; here a [`write_batch`](Self::write_batch) counts as a write to
    /// every key).
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, String> = mapguard::SnapshotMap::new();
    /// let v = map.get_or_load(1, |k| Ok::<_, std::io::Error>(format!("v{k}")));
    /// assert_eq!(v.unwrap(), "v1");
    /// assert_eq!(map.get_cloned(&1).as_deref(), Some("v1"));
    /// ```
    pub fn get_or_load<E, F>(&self, key: K, load: F) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: FnOnce(&K) -> Result<V, E>,
    {
        reentry::forbid_reentry(self.id, op!(get_or_load));
        self.flights.load_value(self, key, load)
    }

    /// Like [`get_or_load`](Self::get_or_load) for keys that may not exist; with
    /// a [`negative_ttl`](SnapshotMapBuilder::negative_ttl) a not-found is
    /// remembered.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// assert_eq!(map.get_or_load_optional(1, |_| Ok::<_, ()>(None)), Ok(None));
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
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// map.forget_miss(&1);
    /// ```
    pub fn forget_miss(&self, key: &K) {
        self.flights.forget_miss(key);
    }
}

impl<K, V, S> Backing<K, V> for SnapshotMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone,
{
    fn lookup(&self, key: &K) -> Option<V> {
        self.get_cloned(key)
    }

    fn recheck(&self, key: &K) -> Option<V> {
        // Reads are lock-free; the writer mutex is what orders this read
        // against every write (and the loader's fill).
        let _writer = self.writer.lock();
        self.get_cloned(key)
    }

    fn fill(&self, key: K, value: V, invalidated: &AtomicBool) -> V {
        self.write_blocking(op!(get_or_load), |tx| {
            if let Some(existing) = tx.get(&key) {
                return existing.clone();
            }
            // Checked under the writer mutex the invalidating writers hold.
            if !invalidated.load(Relaxed) {
                tx.insert(key, value.clone());
            }
            value
        })
    }
}

impl_concurrent_map!(SnapshotMap, stats: SnapshotStats, Clone);

impl<K, V, S> fmt::Debug for SnapshotMap<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.load();
        f.debug_struct("SnapshotMap")
            .field("len", &current.map.len())
            .field("generation", &current.number)
            .finish_non_exhaustive()
    }
}

impl<K, V, S> FromIterator<(K, V)> for SnapshotMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone + Default,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let map = SnapshotMap::<K, V>::builder().hasher(S::default()).build();
        map.write_batch(|tx| {
            for (k, v) in iter {
                tx.insert(k, v);
            }
        });
        map
    }
}

//! The API the engines share: the [`ConcurrentMap`] trait, the outcome of a
//! `compute` closure and the errors of the non-blocking and optimistic calls.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

/// What a [`compute`](crate::ShardedMap::compute) closure decides to do with the
/// entry it was shown, all under one lock acquisition.
///
/// ```
/// use mapguard::{Compute, ShardedMap};
///
/// let stock: ShardedMap<&str, u32> = ShardedMap::new();
/// // Insert-or-increment, atomically: no get-then-set window.
/// stock.compute("apples", |n| Compute::Set(n.map_or(1, |n| n + 1)));
/// stock.compute("apples", |n| Compute::Set(n.map_or(1, |n| n + 1)));
/// assert_eq!(stock.get_cloned("apples"), Some(2));
/// // Remove only when it reached zero.
/// stock.compute("apples", |n| if n == Some(&0) { Compute::Remove } else { Compute::Keep });
/// assert!(stock.contains_key("apples"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compute<V> {
    /// Store this value: inserts when the key was absent, replaces otherwise.
    Set(V),
    /// Remove the entry (nothing happens when it was absent).
    Remove,
    /// Leave the entry as it is.
    Keep,
}

/// A `try_*` call found the lock it needed held and returned instead of waiting.
///
/// It is also what a `try_*` call returns when made from inside a closure that
/// holds the very lock it needs: waiting there would never end.
///
/// ```
/// use mapguard::{ShardedMap, WouldBlock};
///
/// let map: ShardedMap<u32, u32> = ShardedMap::builder().shards(1).build();
/// map.insert(1, 10);
/// // Inside `update`, the (only) shard is write-locked by this very thread.
/// let nested = map.update(&1, |_| map.try_get_cloned(&1));
/// assert_eq!(nested, Some(Err(WouldBlock)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WouldBlock;

impl fmt::Display for WouldBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the map's lock is held; the non-blocking call did not wait")
    }
}

impl std::error::Error for WouldBlock {}

/// A [`compare_and_update`](crate::ShardedMap::compare_and_update) found the entry
/// changed (or gone) since the version the caller had seen.
///
/// ```
/// use mapguard::{Conflict, ShardedMap};
///
/// let map: ShardedMap<&str, u64> = ShardedMap::new();
/// map.insert("balance", 100);
/// let (_, seen) = map.get_versioned("balance").unwrap();
/// map.insert("balance", 90); // someone else wrote meanwhile
/// let err = map.compare_and_update("balance", seen, |b| *b += 5).unwrap_err();
/// assert_eq!(err.current, map.version("balance"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conflict {
    /// The entry's version now, or `None` when the key is absent.
    pub current: Option<u64>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.current {
            Some(v) => write!(
                f,
                "the entry changed since it was read (now at version {v})"
            ),
            None => f.write_str("the entry was removed since it was read"),
        }
    }
}

impl std::error::Error for Conflict {}

/// The API every engine shares: [`ShardedMap`](crate::ShardedMap),
/// [`ReadMostlyMap`](crate::ReadMostlyMap) and [`SnapshotMap`](crate::SnapshotMap)
/// implement it, so code written against it switches engines by changing a type,
/// and the compiler checks that the three keep one API.
///
/// Each engine also has every one of these methods as an inherent method, which
/// the trait's implementation calls (inlined): code that names a concrete engine
/// needs no import, and each inherent method documents what the call costs on
/// that engine (a shard lock, a lock-free probe, a copy of the map). Import the
/// trait for code generic over the engine. The trait is sealed: its contract is
/// what the three engines honour, and it may gain methods.
///
/// What differs between engines is when a call waits, never what it returns:
///
/// - `try_*` calls return [`WouldBlock`] instead of waiting for a lock. Reads
///   that never wait (every [`ReadMostlyMap`](crate::ReadMostlyMap) and
///   [`SnapshotMap`](crate::SnapshotMap) read) always return `Ok`.
/// - A closure passed to `update`, `compute` or `retain` runs under a lock of
///   the map, so a blocking write of the same map from inside it panics at
///   once, naming both calls, instead of deadlocking (on `ShardedMap`, a
///   `read` closure too, and any blocking call); the `try_*` forms return
///   [`WouldBlock`] there instead.
/// - [`iter`](Self::iter) and [`for_each`](Self::for_each) run the caller's code
///   with no lock held. Iteration yields owned `(K, V)` pairs on every engine:
///   none can lend references into its table without holding a lock or a pin
///   across the caller's code, which would let the loop body deadlock or stall
///   reclamation. For borrowed iteration, use an engine's own view:
///   [`SnapshotMap::snapshot`](crate::SnapshotMap::snapshot) or
///   [`ReadMostlyMap::pin`](crate::ReadMostlyMap::pin).
///
/// ```
/// use mapguard::{ConcurrentMap, ReadMostlyMap, ShardedMap, SnapshotMap};
///
/// fn count_visit<M: ConcurrentMap<&'static str, u64>>(visits: &M, page: &'static str) -> u64 {
///     visits.compute(page, |n| mapguard::Compute::Set(n.map_or(1, |n| n + 1)));
///     visits.get_cloned(page).unwrap()
/// }
///
/// assert_eq!(count_visit(&ShardedMap::new(), "/"), 1);
/// assert_eq!(count_visit(&ReadMostlyMap::new(), "/"), 1);
/// assert_eq!(count_visit(&SnapshotMap::new(), "/"), 1);
/// ```
pub trait ConcurrentMap<K, V>: sealed::Sealed {
    /// What [`stats`](Self::stats) returns: [`MapStats`](crate::MapStats) for the
    /// sharded engines, [`SnapshotStats`](crate::SnapshotStats) for the snapshot one
    /// (which counts writes and publications, not reads).
    type Stats: fmt::Debug + Clone;

    /// The iterator of [`iter`](Self::iter): [`Iter`](crate::Iter) on every engine.
    type Iter<'a>: Iterator<Item = (K, V)>
    where
        Self: 'a;

    /// Number of entries; never waits.
    fn len(&self) -> usize;

    /// Whether the map has no entries; never waits.
    fn is_empty(&self) -> bool;

    /// Runs `f` on the value; `None` when the key is absent.
    fn read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// [`read`](Self::read), or [`WouldBlock`] instead of waiting.
    fn try_read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Result<Option<R>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// A clone of the value.
    fn get_cloned<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// [`get_cloned`](Self::get_cloned), or [`WouldBlock`] instead of waiting.
    fn try_get_cloned<Q>(&self, key: &Q) -> Result<Option<V>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Whether the key is present.
    fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Runs `f` on the value; returns its result with the entry's version.
    fn read_versioned<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<(R, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// A clone of the value with its version, for
    /// [`compare_and_update`](Self::compare_and_update).
    fn get_versioned<Q>(&self, key: &Q) -> Option<(V, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// The entry's version: it changes on every write to the entry and is never
    /// reused for the key, even after a remove and re-insert.
    fn version<Q>(&self, key: &Q) -> Option<u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Inserts or replaces; returns the previous value.
    fn insert(&self, key: K, value: V) -> Option<V>;

    /// [`insert`](Self::insert), or [`WouldBlock`] instead of waiting (nothing
    /// is inserted then).
    fn try_insert(&self, key: K, value: V) -> Result<Option<V>, WouldBlock>;

    /// Removes the entry; returns its value.
    fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// [`remove`](Self::remove), or [`WouldBlock`] instead of waiting.
    fn try_remove<Q>(&self, key: &Q) -> Result<Option<V>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Changes the value atomically (no write to the key can come between the
    /// value `f` sees and the one it leaves); `None` when the key is absent.
    fn update<Q, R>(&self, key: &Q, f: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// [`update`](Self::update), or [`WouldBlock`] instead of waiting (`f` is
    /// not called then).
    fn try_update<Q, R>(
        &self,
        key: &Q,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<Option<R>, WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Decides atomically what happens to the entry, present or not (see
    /// [`Compute`]); returns the value the map gave up (replaced or removed).
    fn compute(&self, key: K, f: impl FnOnce(Option<&V>) -> Compute<V>) -> Option<V>;

    /// [`compute`](Self::compute), or [`WouldBlock`] instead of waiting (`f`
    /// is not called then).
    fn try_compute(
        &self,
        key: K,
        f: impl FnOnce(Option<&V>) -> Compute<V>,
    ) -> Result<Option<V>, WouldBlock>;

    /// The value for `key`, inserting `f()` first when absent (`f` runs under
    /// the engine's write lock; for slow initialisation use
    /// [`get_or_load`](Self::get_or_load)).
    fn get_or_insert_with(&self, key: K, f: impl FnOnce() -> V) -> V;

    /// Optimistic read-modify-write: applies `f` only if the entry's version is
    /// still `seen`; returns the new version, or [`Conflict`] with the current one.
    fn compare_and_update<Q>(
        &self,
        key: &Q,
        seen: u64,
        f: impl FnOnce(&mut V),
    ) -> Result<u64, Conflict>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Keeps only the entries for which `f` returns `true`.
    fn retain(&self, f: impl FnMut(&K, &V) -> bool);

    /// Removes every entry.
    fn clear(&self);

    /// The value for `key`, loading it with `load` when absent: one load per
    /// missing key however many callers arrive (single flight), its value or
    /// error shared, a panicking loader survived, and a write to the key during
    /// the load keeps the loaded value out of the map. See
    /// [`ShardedMap::get_or_load`](crate::ShardedMap::get_or_load).
    fn get_or_load<E, F>(&self, key: K, load: F) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: FnOnce(&K) -> Result<V, E>;

    /// [`get_or_load`](Self::get_or_load) for keys that may not exist (`load`
    /// returns `Ok(None)`); with the builder's `negative_ttl` a not-found is
    /// remembered for that long.
    fn get_or_load_optional<E, F>(&self, key: K, load: F) -> Result<Option<V>, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: FnOnce(&K) -> Result<Option<V>, E>;

    /// Forgets a remembered not-found for `key`.
    fn forget_miss(&self, key: &K);

    /// Owned `(key, value)` pairs (see the trait docs for why owned), with no
    /// lock held while the caller's code runs.
    fn iter(&self) -> Self::Iter<'_>;

    /// Calls `f` on every entry, with no lock held while `f` runs.
    fn for_each(&self, f: impl FnMut(&K, &V));

    /// The map's telemetry.
    fn stats(&self) -> Self::Stats;

    /// Registers the map's telemetry with a prometheus-client registry under
    /// `prefix` (feature `prometheus`). The registry holds only a weak reference.
    #[cfg(feature = "prometheus")]
    fn register(&self, registry: &mut prometheus_client::registry::Registry, prefix: &str)
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static;
}

pub(crate) mod sealed {
    /// Keeps [`ConcurrentMap`](super::ConcurrentMap) to this crate's engines.
    pub trait Sealed {}
}

/// Implements [`ConcurrentMap`] for an engine by calling its inherent methods of
/// the same names (an engine missing one would recurse into the trait method:
/// `unconditional_recursion`, denied in CI).
macro_rules! impl_concurrent_map {
    ($engine:ident, stats: $stats:ty $(, $extra:path)*) => {
        impl<K, V, S> $crate::api::sealed::Sealed for $engine<K, V, S> {}

        impl<K, V, S> $crate::api::ConcurrentMap<K, V> for $engine<K, V, S>
        where
            K: ::std::hash::Hash + Eq + Clone,
            V: Clone,
            S: ::std::hash::BuildHasher $(+ $extra)*,
        {
            type Stats = $stats;
            type Iter<'a> = $crate::Iter<'a, K, V, S> where Self: 'a;

            #[inline]
            fn len(&self) -> usize {
                $engine::len(self)
            }
            #[inline]
            fn is_empty(&self) -> bool {
                $engine::is_empty(self)
            }
            #[inline]
            fn read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::read(self, key, f)
            }
            #[inline]
            fn try_read<Q, R>(
                &self,
                key: &Q,
                f: impl FnOnce(&V) -> R,
            ) -> Result<Option<R>, $crate::WouldBlock>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::try_read(self, key, f)
            }
            #[inline]
            fn get_cloned<Q>(&self, key: &Q) -> Option<V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::get_cloned(self, key)
            }
            #[inline]
            fn try_get_cloned<Q>(&self, key: &Q) -> Result<Option<V>, $crate::WouldBlock>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::try_get_cloned(self, key)
            }
            #[inline]
            fn contains_key<Q>(&self, key: &Q) -> bool
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::contains_key(self, key)
            }
            #[inline]
            fn read_versioned<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<(R, u64)>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::read_versioned(self, key, f)
            }
            #[inline]
            fn get_versioned<Q>(&self, key: &Q) -> Option<(V, u64)>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::get_versioned(self, key)
            }
            #[inline]
            fn version<Q>(&self, key: &Q) -> Option<u64>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::version(self, key)
            }
            #[inline]
            fn insert(&self, key: K, value: V) -> Option<V> {
                $engine::insert(self, key, value)
            }
            #[inline]
            fn try_insert(&self, key: K, value: V) -> Result<Option<V>, $crate::WouldBlock> {
                $engine::try_insert(self, key, value)
            }
            #[inline]
            fn remove<Q>(&self, key: &Q) -> Option<V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::remove(self, key)
            }
            #[inline]
            fn try_remove<Q>(&self, key: &Q) -> Result<Option<V>, $crate::WouldBlock>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::try_remove(self, key)
            }
            #[inline]
            fn update<Q, R>(&self, key: &Q, f: impl FnOnce(&mut V) -> R) -> Option<R>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::update(self, key, f)
            }
            #[inline]
            fn try_update<Q, R>(
                &self,
                key: &Q,
                f: impl FnOnce(&mut V) -> R,
            ) -> Result<Option<R>, $crate::WouldBlock>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::try_update(self, key, f)
            }
            #[inline]
            fn compute(
                &self,
                key: K,
                f: impl FnOnce(Option<&V>) -> $crate::Compute<V>,
            ) -> Option<V> {
                $engine::compute(self, key, f)
            }
            #[inline]
            fn try_compute(
                &self,
                key: K,
                f: impl FnOnce(Option<&V>) -> $crate::Compute<V>,
            ) -> Result<Option<V>, $crate::WouldBlock> {
                $engine::try_compute(self, key, f)
            }
            #[inline]
            fn get_or_insert_with(&self, key: K, f: impl FnOnce() -> V) -> V {
                $engine::get_or_insert_with(self, key, f)
            }
            #[inline]
            fn compare_and_update<Q>(
                &self,
                key: &Q,
                seen: u64,
                f: impl FnOnce(&mut V),
            ) -> Result<u64, $crate::Conflict>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                $engine::compare_and_update(self, key, seen, f)
            }
            #[inline]
            fn retain(&self, f: impl FnMut(&K, &V) -> bool) {
                $engine::retain(self, f)
            }
            #[inline]
            fn clear(&self) {
                $engine::clear(self)
            }
            #[inline]
            fn get_or_load<E, F>(&self, key: K, load: F) -> Result<V, ::std::sync::Arc<E>>
            where
                E: Send + Sync + 'static,
                F: FnOnce(&K) -> Result<V, E>,
            {
                $engine::get_or_load(self, key, load)
            }
            #[inline]
            fn get_or_load_optional<E, F>(
                &self,
                key: K,
                load: F,
            ) -> Result<Option<V>, ::std::sync::Arc<E>>
            where
                E: Send + Sync + 'static,
                F: FnOnce(&K) -> Result<Option<V>, E>,
            {
                $engine::get_or_load_optional(self, key, load)
            }
            #[inline]
            fn forget_miss(&self, key: &K) {
                $engine::forget_miss(self, key)
            }
            #[inline]
            fn iter(&self) -> $crate::Iter<'_, K, V, S> {
                $engine::iter(self)
            }
            #[inline]
            fn for_each(&self, f: impl FnMut(&K, &V)) {
                $engine::for_each(self, f)
            }
            #[inline]
            fn stats(&self) -> $stats {
                $engine::stats(self)
            }
            #[cfg(feature = "prometheus")]
            #[inline]
            fn register(
                &self,
                registry: &mut ::prometheus_client::registry::Registry,
                prefix: &str,
            ) where
                K: Send + Sync + 'static,
                V: Send + Sync + 'static,
            {
                $engine::register(self, registry, prefix)
            }
        }
    };
}
pub(crate) use impl_concurrent_map;

//! Configuration of a [`ShardedMap`].

use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::time::Duration;

use super::ShardedMap;
use crate::DefaultHashBuilder;

/// Most shards a map will have: a shard index is taken from the hash bits just
/// below the 7 that hashbrown uses for its control bytes.
pub(crate) const MAX_SHARDS: usize = 1 << 16;

/// Configures and builds a [`ShardedMap`]; from [`ShardedMap::builder`].
///
/// ```
/// use std::time::Duration;
/// use mapguard::ShardedMap;
///
/// let map: ShardedMap<String, u64> = ShardedMap::builder()
///     .shards(16)
///     .capacity(10_000)
///     .negative_ttl(Duration::from_secs(5))
///     .build();
/// assert_eq!(map.shard_count(), 16);
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ShardedMapBuilder<K, V, S = DefaultHashBuilder> {
    pub(crate) shards: Option<usize>,
    pub(crate) capacity: usize,
    pub(crate) hasher: S,
    pub(crate) telemetry: bool,
    pub(crate) negative_ttl: Option<Duration>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Default for ShardedMapBuilder<K, V> {
    fn default() -> Self {
        ShardedMapBuilder {
            shards: None,
            capacity: 0,
            hasher: DefaultHashBuilder::default(),
            telemetry: true,
            negative_ttl: None,
            _types: PhantomData,
        }
    }
}

impl<K, V, S> std::fmt::Debug for ShardedMapBuilder<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedMapBuilder")
            .field("shards", &self.shards)
            .field("capacity", &self.capacity)
            .field("telemetry", &self.telemetry)
            .field("negative_ttl", &self.negative_ttl)
            .finish_non_exhaustive()
    }
}

/// Four shards per available core: enough that threads rarely meet on one
/// lock, few enough that iteration stays cheap.
pub(crate) fn default_shard_count() -> usize {
    shards_per_core(4)
}

/// `per_core` shards per available core, rounded up to a power of two.
pub(crate) fn shards_per_core(per_core: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * per_core).next_power_of_two().min(MAX_SHARDS)
}

impl<K, V, S> ShardedMapBuilder<K, V, S> {
    /// Number of shards, rounded up to a power of two (1 to 65536). Default: four
    /// per available core.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::builder().shards(5).build();
    /// assert_eq!(map.shard_count(), 8);
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards.clamp(1, MAX_SHARDS).next_power_of_two());
        self
    }

    /// Entries the map should hold without growing (spread over the shards).
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::builder().capacity(1000).build();
    /// assert!(map.capacity() >= 1000);
    /// ```
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Turns the contention telemetry on (default) or off. Off, reads skip even
    /// their per-shard counter, nothing is timed or sampled for hot keys, and
    /// [`ShardedMap::stats`] reports zeros. (Writes are counted by their shard's
    /// version clock, which they advance either way.)
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::builder().telemetry(false).build();
    /// map.insert(1, 1);
    /// assert_eq!(map.stats().writes(), 0);
    /// ```
    pub fn telemetry(mut self, on: bool) -> Self {
        self.telemetry = on;
        self
    }

    /// Remember a load that found nothing for `ttl`: during that time
    /// [`ShardedMap::get_or_load_optional`] answers `Ok(None)` without calling
    /// the loader (against cache penetration by keys that don't exist).
    ///
    /// ```
    /// use std::time::Duration;
    /// let map: mapguard::ShardedMap<u8, u8> =
    ///     mapguard::ShardedMap::builder().negative_ttl(Duration::from_secs(1)).build();
    /// let mut calls = 0;
    /// for _ in 0..3 {
    ///     let r = map.get_or_load_optional(9, |_| { calls += 1; Ok::<_, ()>(None) });
    ///     assert_eq!(r, Ok(None));
    /// }
    /// assert_eq!(calls, 1);
    /// ```
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Use another hasher (for example a keyed one against HashDoS, or a fixed
    /// one for reproducible shard placement).
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// let map: mapguard::ShardedMap<u8, u8, RandomState> =
    ///     mapguard::ShardedMap::builder().hasher(RandomState::new()).build();
    /// map.insert(1, 2);
    /// assert_eq!(map.get_cloned(&1), Some(2));
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> ShardedMapBuilder<K, V, S2> {
        ShardedMapBuilder {
            shards: self.shards,
            capacity: self.capacity,
            hasher,
            telemetry: self.telemetry,
            negative_ttl: self.negative_ttl,
            _types: PhantomData,
        }
    }

    /// Builds the map.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::builder().build();
    /// assert!(map.is_empty());
    /// ```
    pub fn build(self) -> ShardedMap<K, V, S>
    where
        S: BuildHasher,
    {
        let shards = self.shards.unwrap_or_else(default_shard_count);
        ShardedMap::from_parts(
            shards,
            self.capacity,
            self.hasher,
            self.telemetry,
            self.negative_ttl,
        )
    }
}

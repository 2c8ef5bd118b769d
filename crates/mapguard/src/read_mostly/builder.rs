//! Configuration of a [`ReadMostlyMap`]: the same settings as a
//! [`ShardedMapBuilder`], which holds them.

use std::hash::BuildHasher;
use std::time::Duration;

use super::ReadMostlyMap;
use crate::sharded::builder::shards_per_core;
use crate::ShardedMapBuilder;

/// Default shards per core: twice ShardedMap's, because a writer holds its
/// shard's lock longer here (a new entry, retiring the old one, migration
/// steps). Bench `exchange` (90 % writes), 2 threads on 2 cores: 16 Mops/s
/// with 8 shards (in a loop of that mix, 8 % of the writes find their lock
/// held; 1 % with 64 shards), 17.5-18 with 16; 32 gains little more (18-19)
/// and loses a tenth of the one-thread `rapid_grow`, whose more, smaller
/// tables each grow on their own.
/// An unwritten shard costs about 1 KiB.
const SHARDS_PER_CORE: usize = 8;

/// Configures and builds a [`ReadMostlyMap`]; from [`ReadMostlyMap::builder`].
///
/// ```
/// use mapguard::ReadMostlyMap;
///
/// let map: ReadMostlyMap<String, u64> = ReadMostlyMap::builder()
///     .shards(16)
///     .capacity(10_000)
///     .build();
/// assert_eq!(map.shard_count(), 16);
/// assert!(map.capacity() >= 10_000);
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ReadMostlyMapBuilder<K, V, S = crate::DefaultHashBuilder>(ShardedMapBuilder<K, V, S>);

impl<K, V, S> std::fmt::Debug for ReadMostlyMapBuilder<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReadMostlyMapBuilder")
            .field(&self.0)
            .finish()
    }
}

impl<K, V> Default for ReadMostlyMapBuilder<K, V> {
    fn default() -> Self {
        ReadMostlyMapBuilder(ShardedMapBuilder::default())
    }
}

impl<K, V, S> ReadMostlyMapBuilder<K, V, S> {
    /// Number of shards (writer locks), rounded up to a power of two (1 to
    /// 65536). Default: eight per available core. Reads don't depend on it.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = mapguard::ReadMostlyMap::builder().shards(5).build();
    /// assert_eq!(map.shard_count(), 8);
    /// ```
    pub fn shards(self, shards: usize) -> Self {
        ReadMostlyMapBuilder(self.0.shards(shards))
    }

    /// Entries the map should hold without resizing (spread over the shards).
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = mapguard::ReadMostlyMap::builder().capacity(1000).build();
    /// assert!(map.capacity() >= 1000);
    /// ```
    pub fn capacity(self, capacity: usize) -> Self {
        ReadMostlyMapBuilder(self.0.capacity(capacity))
    }

    /// Turns telemetry on (default) or off.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = mapguard::ReadMostlyMap::builder().telemetry(false).build();
    /// map.insert(1, 1);
    /// assert_eq!(map.stats().writes(), 0);
    /// ```
    pub fn telemetry(self, on: bool) -> Self {
        ReadMostlyMapBuilder(self.0.telemetry(on))
    }

    /// Remember a load that found nothing for `ttl` (negative caching; see
    /// [`ShardedMapBuilder::negative_ttl`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let map: mapguard::ReadMostlyMap<u8, u8> =
    ///     mapguard::ReadMostlyMap::builder().negative_ttl(Duration::from_secs(1)).build();
    /// let mut calls = 0;
    /// for _ in 0..3 {
    ///     let r = map.get_or_load_optional(9, |_| { calls += 1; Ok::<_, ()>(None) });
    ///     assert_eq!(r, Ok(None));
    /// }
    /// assert_eq!(calls, 1);
    /// ```
    pub fn negative_ttl(self, ttl: Duration) -> Self {
        ReadMostlyMapBuilder(self.0.negative_ttl(ttl))
    }

    /// Use another hasher.
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// let map: mapguard::ReadMostlyMap<u8, u8, RandomState> =
    ///     mapguard::ReadMostlyMap::builder().hasher(RandomState::new()).build();
    /// map.insert(1, 2);
    /// assert_eq!(map.get_cloned(&1), Some(2));
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> ReadMostlyMapBuilder<K, V, S2> {
        ReadMostlyMapBuilder(self.0.hasher(hasher))
    }

    /// Builds the map.
    ///
    /// ```
    /// let map: mapguard::ReadMostlyMap<u8, u8> = mapguard::ReadMostlyMap::builder().build();
    /// assert!(map.is_empty());
    /// ```
    pub fn build(self) -> ReadMostlyMap<K, V, S>
    where
        S: BuildHasher,
    {
        let settings = self.0;
        ReadMostlyMap::from_parts(
            settings
                .shards
                .unwrap_or_else(|| shards_per_core(SHARDS_PER_CORE)),
            settings.capacity,
            settings.hasher,
            settings.telemetry,
            settings.negative_ttl,
        )
    }
}

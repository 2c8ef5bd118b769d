//! Contention telemetry: what [`ShardedMap::stats`](crate::ShardedMap::stats)
//! returns, and the Prometheus exporter (feature `prometheus`).
//!
//! Counts (reads, writes, contended acquisitions) are exact. Durations and hot
//! keys are sampled: one operation in 256 per thread is timed and its key hash
//! offered to a small per-shard top-k sketch, so sampled counts estimate
//! 1/256 of the traffic. (On a KVM guest `Instant::now` costs tens of ns; at
//! 1 in 256 the sampled work stays near 1% of a ~40 ns operation.)

pub(crate) mod recorder;

#[cfg(feature = "prometheus")]
mod prometheus;

use std::time::Duration;

/// A log2 histogram of sampled durations, in nanoseconds.
///
/// ```
/// use mapguard::ShardedMap;
///
/// let map: ShardedMap<u32, u32> = ShardedMap::new();
/// for i in 0..1000 { map.insert(i, i); }
/// let hold = map.stats().hold();
/// assert!(hold.count() > 0); // about 1000/256 writes were timed
/// assert!(hold.quantile(0.5) <= hold.quantile(0.99));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// `buckets[i]` counts durations in `[2^i, 2^(i+1))` ns (bucket 0 includes 0,
    /// the last bucket is open-ended).
    pub buckets: Vec<u64>,
    /// Sum of all recorded durations, in nanoseconds.
    pub sum_ns: u64,
}

impl Histogram {
    /// Number of recorded durations.
    ///
    /// ```
    /// assert_eq!(mapguard::Histogram::default().count(), 0);
    /// ```
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Mean of the recorded durations (zero when empty).
    ///
    /// ```
    /// assert_eq!(mapguard::Histogram::default().mean(), std::time::Duration::ZERO);
    /// ```
    pub fn mean(&self) -> Duration {
        match self.count() {
            0 => Duration::ZERO,
            n => Duration::from_nanos(self.sum_ns / n),
        }
    }

    /// An upper bound of the `q` quantile (`0.0..=1.0`): the upper edge of the
    /// bucket holding it, so within a factor of two.
    ///
    /// ```
    /// let h = mapguard::Histogram { buckets: vec![0, 0, 0, 4], sum_ns: 40 };
    /// assert_eq!(h.quantile(0.5), std::time::Duration::from_nanos(16));
    /// ```
    pub fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_nanos(1u64 << (i + 1).min(63));
            }
        }
        Duration::MAX
    }

    /// Adds `other`'s counts into `self` (bucket by bucket).
    ///
    /// ```
    /// let mut a = mapguard::Histogram { buckets: vec![1, 0], sum_ns: 1 };
    /// a.merge(&mapguard::Histogram { buckets: vec![0, 2], sum_ns: 4 });
    /// assert_eq!(a.count(), 3);
    /// ```
    pub fn merge(&mut self, other: &Histogram) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
    }
}

/// A key that showed up often in the sampled operations of a shard.
///
/// Keys are reported by hash (the map never clones keys for telemetry); match
/// them with [`ShardedMap::hash_of`](crate::ShardedMap::hash_of).
///
/// ```
/// use mapguard::ShardedMap;
///
/// let map: ShardedMap<u32, u32> = ShardedMap::new();
/// map.insert(7, 0);
/// for _ in 0..10_000 { map.update(&7, |v| *v += 1); }
/// let hottest = &map.stats().hottest_keys(1)[0];
/// assert_eq!(hottest.hash, map.hash_of(&7));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HotKey {
    /// The key's hash, as [`ShardedMap::hash_of`](crate::ShardedMap::hash_of) computes it.
    pub hash: u64,
    /// Sampled operations on it (an over-estimate by at most the sketch's
    /// smallest counter; multiply by 256 for an estimate of all operations).
    pub sampled_count: u64,
}

/// One shard's counters at the time of [`ShardedMap::stats`](crate::ShardedMap::stats).
///
/// ```
/// use mapguard::ShardedMap;
///
/// let map: ShardedMap<u32, u32> = ShardedMap::builder().shards(4).build();
/// map.insert(1, 1);
/// let stats = map.stats();
/// assert_eq!(stats.shards.len(), 4);
/// assert_eq!(stats.shards.iter().map(|s| s.len).sum::<usize>(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStats {
    /// The shard's position.
    pub index: usize,
    /// Entries in the shard.
    pub len: usize,
    /// Entries the shard can hold before its table grows.
    pub capacity: usize,
    /// Read operations (exact).
    pub reads: u64,
    /// Write operations, including removals and `compute` (exact).
    pub writes: u64,
    /// Lock acquisitions that found the lock held and had to wait (exact).
    pub contended: u64,
    /// Sampled time spent waiting for the shard's lock.
    pub wait: Histogram,
    /// Sampled time the shard's lock was held (including user closures).
    pub hold: Histogram,
    /// The shard's most frequent sampled keys, most frequent first.
    pub hot_keys: Vec<HotKey>,
}

/// A snapshot of a [`ShardedMap`](crate::ShardedMap)'s telemetry.
///
/// ```
/// use mapguard::ShardedMap;
///
/// let map: ShardedMap<u32, u32> = ShardedMap::new();
/// map.insert(1, 1);
/// map.get_cloned(&1);
/// map.get_cloned(&2);
/// let stats = map.stats();
/// assert_eq!((stats.reads(), stats.writes()), (2, 1));
/// assert_eq!(stats.contended(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapStats {
    /// Per-shard counters, by shard index.
    pub shards: Vec<ShardStats>,
}

impl MapStats {
    /// Collects the stats of shards given as their telemetry and counts, in
    /// shard order.
    pub(crate) fn of<'a>(
        shards: impl Iterator<Item = (&'a recorder::ShardTelemetry, recorder::ShardCounts)>,
    ) -> MapStats {
        MapStats {
            shards: shards
                .enumerate()
                .map(|(i, (telemetry, counts))| telemetry.snapshot(i, counts))
                .collect(),
        }
    }

    /// Total entries.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = [(1, 1), (2, 2)].into_iter().collect();
    /// assert_eq!(map.stats().len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len).sum()
    }

    /// Whether the map was empty.
    ///
    /// ```
    /// assert!(mapguard::ShardedMap::<u8, u8>::new().stats().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total read operations.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::new();
    /// map.contains_key(&1);
    /// assert_eq!(map.stats().reads(), 1);
    /// ```
    pub fn reads(&self) -> u64 {
        self.shards.iter().map(|s| s.reads).sum()
    }

    /// Total write operations.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::new();
    /// map.remove(&1);
    /// assert_eq!(map.stats().writes(), 1);
    /// ```
    pub fn writes(&self) -> u64 {
        self.shards.iter().map(|s| s.writes).sum()
    }

    /// Total contended lock acquisitions.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::new();
    /// assert_eq!(map.stats().contended(), 0);
    /// ```
    pub fn contended(&self) -> u64 {
        self.shards.iter().map(|s| s.contended).sum()
    }

    /// Lock wait times of all shards, merged.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::new();
    /// assert_eq!(map.stats().wait().count(), 0);
    /// ```
    pub fn wait(&self) -> Histogram {
        let mut h = Histogram::default();
        self.shards.iter().for_each(|s| h.merge(&s.wait));
        h
    }

    /// Lock hold times of all shards, merged.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::new();
    /// assert_eq!(map.stats().hold().count(), 0);
    /// ```
    pub fn hold(&self) -> Histogram {
        let mut h = Histogram::default();
        self.shards.iter().for_each(|s| h.merge(&s.hold));
        h
    }

    /// The `n` most frequent sampled keys over all shards, most frequent first.
    ///
    /// ```
    /// let map: mapguard::ShardedMap<u8, u8> = mapguard::ShardedMap::new();
    /// assert!(map.stats().hottest_keys(3).is_empty());
    /// ```
    pub fn hottest_keys(&self, n: usize) -> Vec<HotKey> {
        let mut all: Vec<HotKey> = self
            .shards
            .iter()
            .flat_map(|s| s.hot_keys.iter().copied())
            .collect();
        all.sort_by_key(|k| std::cmp::Reverse(k.sampled_count));
        all.truncate(n);
        all
    }
}

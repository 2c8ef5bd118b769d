//! Parallel iteration with rayon (feature `rayon`).

use std::hash::{BuildHasher, Hash};

use rayon::prelude::*;

use crate::{ReadMostlyMap, ShardedMap, Snapshot};

impl<K, V, S> ShardedMap<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
    S: BuildHasher + Sync,
{
    /// A rayon parallel iterator of owned `(key, value)` pairs: shards are
    /// copied (each under a brief read lock) and processed in parallel.
    ///
    /// ```
    /// use rayon::prelude::*;
    /// let map: mapguard::ShardedMap<u64, u64> = (0..1000).map(|i| (i, i)).collect();
    /// let sum: u64 = map.par_iter().map(|(_, v)| v).sum();
    /// assert_eq!(sum, 999 * 1000 / 2);
    /// ```
    pub fn par_iter(&self) -> impl ParallelIterator<Item = (K, V)> + '_ {
        (0..self.shard_count())
            .into_par_iter()
            .flat_map_iter(move |i| self.snapshot_shard(i))
    }
}

impl<K, V, S> ReadMostlyMap<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
    S: BuildHasher + Sync,
{
    /// A rayon parallel iterator of owned `(key, value)` pairs: shards are
    /// copied (each under its writer lock; readers carry on) and processed in
    /// parallel.
    ///
    /// ```
    /// use rayon::prelude::*;
    /// let map: mapguard::ReadMostlyMap<u64, u64> = (0..1000).map(|i| (i, i)).collect();
    /// let sum: u64 = map.par_iter().map(|(_, v)| v).sum();
    /// assert_eq!(sum, 999 * 1000 / 2);
    /// ```
    pub fn par_iter(&self) -> impl ParallelIterator<Item = (K, V)> + '_ {
        (0..self.shard_count())
            .into_par_iter()
            .flat_map_iter(move |i| self.snapshot_shard(i))
    }
}

impl<K, V, S> Snapshot<K, V, S>
where
    K: Sync,
    V: Sync,
{
    /// A rayon parallel iterator over the snapshot's entries.
    ///
    /// ```
    /// use rayon::prelude::*;
    /// let map: mapguard::SnapshotMap<u64, u64> = (0..1000).map(|i| (i, i)).collect();
    /// let sum: u64 = map.snapshot().par_iter().map(|(_, v)| *v).sum();
    /// assert_eq!(sum, 999 * 1000 / 2);
    /// ```
    pub fn par_iter(&self) -> impl ParallelIterator<Item = (&K, &V)> + '_ {
        self.inner.map.par_iter().map(|(k, e)| (k, &e.value))
    }
}

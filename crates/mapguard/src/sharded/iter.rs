//! Iteration over per-shard copies: no lock is held while the caller's code runs.

use std::hash::{BuildHasher, Hash};

use super::ShardedMap;

/// Owned `(key, value)` pairs of a [`ShardedMap`], from [`ShardedMap::iter`].
///
/// Each shard is copied under a brief read lock when the iterator reaches it,
/// so every shard is seen at one instant (no entry twice, none half-written),
/// and writes made meanwhile to shards not yet reached are seen.
///
/// ```
/// let map: mapguard::ShardedMap<u8, u8> = [(1, 10), (2, 20)].into_iter().collect();
/// for (k, _) in map.iter() {
///     map.update(&k, |v| *v += 1); // no lock held: allowed
/// }
/// assert_eq!(map.get_cloned(&2), Some(21));
/// ```
pub struct Iter<'a, K, V, S> {
    map: &'a ShardedMap<K, V, S>,
    next_shard: usize,
    current: std::vec::IntoIter<(K, V)>,
}

impl<'a, K, V, S> Iter<'a, K, V, S> {
    pub(super) fn new(map: &'a ShardedMap<K, V, S>) -> Self {
        Iter {
            map,
            next_shard: 0,
            current: Vec::new().into_iter(),
        }
    }
}

impl<K, V, S> Iterator for Iter<'_, K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(pair) = self.current.next() {
                return Some(pair);
            }
            if self.next_shard == self.map.shard_count() {
                return None;
            }
            self.current = self.map.snapshot_shard(self.next_shard).into_iter();
            self.next_shard += 1;
        }
    }
}

impl<K, V, S> std::fmt::Debug for Iter<'_, K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("next_shard", &self.next_shard)
            .field("buffered", &self.current.len())
            .finish_non_exhaustive()
    }
}

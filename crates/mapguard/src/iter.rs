//! Iteration over copies: no lock is held while the caller's code runs.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::{DefaultHashBuilder, ReadMostlyMap, ShardedMap};

/// Owned `(key, value)` pairs of any engine, from each engine's `iter` and
/// [`ConcurrentMap::iter`](crate::ConcurrentMap::iter).
///
/// A [`ShardedMap`] or [`ReadMostlyMap`] is copied one shard at a time, under
/// that shard's lock, when the iterator reaches it: every shard is seen at one
/// instant (no entry twice, none half-written), and writes made meanwhile to
/// shards not yet reached are seen. A [`SnapshotMap`](crate::SnapshotMap) is
/// copied whole from one snapshot, so its pairs are one consistent view.
/// Pairs are owned so that the loop body may use the map freely (see
/// [`ConcurrentMap`](crate::ConcurrentMap) for why every engine yields them).
///
/// ```
/// let map: mapguard::ShardedMap<u8, u8> = [(1, 10), (2, 20)].into_iter().collect();
/// for (k, _) in map.iter() {
///     map.update(&k, |v| *v += 1); // no lock held: allowed
/// }
/// assert_eq!(map.get_cloned(&2), Some(21));
/// ```
pub struct Iter<'a, K, V, S = DefaultHashBuilder> {
    source: Source<'a, K, V, S>,
    next_shard: usize,
    current: std::vec::IntoIter<(K, V)>,
}

/// Where the pairs not yet copied are.
enum Source<'a, K, V, S> {
    Sharded(&'a ShardedMap<K, V, S>),
    ReadMostly(&'a ReadMostlyMap<K, V, S>),
    /// Everything was copied up front.
    Copied,
}

impl<'a, K, V, S> Iter<'a, K, V, S> {
    pub(crate) fn sharded(map: &'a ShardedMap<K, V, S>) -> Self {
        Self::from_source(Source::Sharded(map), Vec::new())
    }

    pub(crate) fn read_mostly(map: &'a ReadMostlyMap<K, V, S>) -> Self {
        Self::from_source(Source::ReadMostly(map), Vec::new())
    }

    pub(crate) fn copied(pairs: Vec<(K, V)>) -> Self {
        Self::from_source(Source::Copied, pairs)
    }

    fn from_source(source: Source<'a, K, V, S>, pairs: Vec<(K, V)>) -> Self {
        Iter {
            source,
            next_shard: 0,
            current: pairs.into_iter(),
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
            let shard = self.next_shard;
            let copy = match self.source {
                Source::Sharded(map) if shard < map.shard_count() => map.snapshot_shard(shard),
                Source::ReadMostly(map) if shard < map.shard_count() => map.snapshot_shard(shard),
                _ => return None,
            };
            self.current = copy.into_iter();
            self.next_shard += 1;
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let upper = matches!(self.source, Source::Copied).then_some(self.current.len());
        (self.current.len(), upper)
    }
}

impl<K, V, S> fmt::Debug for Iter<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("next_shard", &self.next_shard)
            .field("buffered", &self.current.len())
            .finish_non_exhaustive()
    }
}

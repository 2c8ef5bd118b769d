//! The immutable published state of a [`SnapshotMap`](super::SnapshotMap).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashbrown::HashMap;

use crate::table_alloc::TableAlloc;

/// An entry and the version of its last write.
#[derive(Clone)]
pub(crate) struct Versioned<V> {
    pub(crate) value: V,
    pub(crate) version: u64,
}

/// One published state: never mutated after publication.
#[derive(Clone)]
pub(crate) struct Generation<K, V, S> {
    pub(crate) map: HashMap<K, Versioned<V>, S, TableAlloc>,
    /// How many publications preceded this one.
    pub(crate) number: u64,
    /// Source of entry versions, carried from generation to generation so a
    /// version is never reused (no ABA for `compare_and_update`).
    pub(crate) clock: u64,
}

/// A consistent, immutable view of a [`SnapshotMap`](super::SnapshotMap) at one
/// publication. Cheap to clone (an `Arc`), holds no lock, may be kept across
/// `.await`s and outlives later writes to the map.
///
/// ```
/// let map: mapguard::SnapshotMap<&str, u32> = mapguard::SnapshotMap::new();
/// map.insert("a", 1);
/// let before = map.snapshot();
/// map.insert("a", 2);
/// assert_eq!(before.get("a"), Some(&1));
/// assert_eq!(map.snapshot().get("a"), Some(&2));
/// ```
pub struct Snapshot<K, V, S> {
    pub(crate) inner: Arc<Generation<K, V, S>>,
}

impl<K, V, S> Clone for Snapshot<K, V, S> {
    fn clone(&self) -> Self {
        Snapshot {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V, S> Snapshot<K, V, S> {
    /// Number of entries.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.snapshot().len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// Whether there are no entries.
    ///
    /// ```
    /// assert!(mapguard::SnapshotMap::<u8, u8>::new().snapshot().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.map.is_empty()
    }

    /// The publication this snapshot shows: 0 for a new map, +1 per published
    /// write or batch.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// map.insert(1, 1);
    /// assert_eq!(map.snapshot().generation(), 1);
    /// ```
    pub fn generation(&self) -> u64 {
        self.inner.number
    }

    /// The entries, in no particular order.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 10), (2, 20)].into_iter().collect();
    /// let total: u32 = map.snapshot().iter().map(|(_, v)| u32::from(*v)).sum();
    /// assert_eq!(total, 30);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.inner.map.iter().map(|(k, e)| (k, &e.value))
    }
}

impl<K, V, S> Snapshot<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// The value for `key`.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 10)].into_iter().collect();
    /// assert_eq!(map.snapshot().get(&1), Some(&10));
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.map.get(key).map(|e| &e.value)
    }

    /// The value for `key` with its version.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 10)].into_iter().collect();
    /// let snapshot = map.snapshot();
    /// let (value, version) = snapshot.get_versioned(&1).unwrap();
    /// assert_eq!((*value, Some(version)), (10, map.version(&1)));
    /// ```
    pub fn get_versioned<Q>(&self, key: &Q) -> Option<(&V, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.map.get(key).map(|e| (&e.value, e.version))
    }

    /// Whether `key` is present.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 10)].into_iter().collect();
    /// assert!(map.snapshot().contains_key(&1));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.map.contains_key(key)
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for Snapshot<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

//! The mutable draft a [`SnapshotMap`](super::SnapshotMap) writer edits before
//! it is published.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use super::view::Versioned;
use crate::api::Compute;
use crate::table_alloc::TableAlloc;

/// The changes of one [`write_batch`](super::SnapshotMap::write_batch): they
/// become visible to readers together, when the closure returns (and not at
/// all if it panics). Reads through the batch see its own changes.
///
/// ```
/// let map: mapguard::SnapshotMap<&str, i64> = mapguard::SnapshotMap::new();
/// map.insert("alice", 100);
/// map.write_batch(|tx| {
///     tx.update("alice", |b| *b -= 30);
///     tx.insert("bob", 30);
///     assert_eq!(tx.get("bob"), Some(&30));
/// });
/// let s = map.snapshot();
/// assert_eq!((s.get("alice"), s.get("bob")), (Some(&70), Some(&30)));
/// ```
pub struct Batch<'a, K, V, S> {
    pub(super) map: &'a mut HashMap<K, Versioned<V>, S, TableAlloc>,
    pub(super) clock: &'a mut u64,
    /// Whether anything changed: an unchanged draft is not published.
    pub(super) changed: bool,
}

impl<K, V, S> Batch<'_, K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    fn next_version(&mut self) -> u64 {
        self.changed = true;
        *self.clock += 1;
        *self.clock
    }

    /// The value for `key`, including this batch's changes.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// map.write_batch(|tx| { tx.insert(1, 1); assert_eq!(tx.get(&1), Some(&1)); });
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|e| &e.value)
    }

    /// Whether `key` is present, including this batch's changes.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// map.write_batch(|tx| assert!(!tx.contains_key(&1)));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// Number of entries, including this batch's changes.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// map.write_batch(|tx| { tx.insert(1, 1); assert_eq!(tx.len(), 1); });
    /// ```
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the draft is empty.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// map.write_batch(|tx| assert!(tx.is_empty()));
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Inserts or replaces; returns the previous value.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// let old = map.write_batch(|tx| { tx.insert(1, 1); tx.insert(1, 2) });
    /// assert_eq!(old, Some(1));
    /// ```
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let version = self.next_version();
        self.map
            .insert(key, Versioned { value, version })
            .map(|old| old.value)
    }

    /// Removes `key`; returns its value.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.write_batch(|tx| tx.remove(&1)), Some(1));
    /// ```
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let removed = self.map.remove(key)?;
        self.changed = true;
        Some(removed.value)
    }

    /// Changes the value in place; `None` when absent.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = [(1, 1)].into_iter().collect();
    /// assert_eq!(map.write_batch(|tx| tx.update(&1, |v| { *v += 1; *v })), Some(2));
    /// ```
    pub fn update<Q, R>(&mut self, key: &Q, f: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.map.contains_key(key) {
            return None;
        }
        let version = self.next_version();
        let entry = self.map.get_mut(key)?;
        entry.version = version;
        Some(f(&mut entry.value))
    }

    /// Decides what happens to the entry, present or not (see [`Compute`]);
    /// returns the value given up (replaced or removed).
    ///
    /// ```
    /// use mapguard::Compute;
    /// let map: mapguard::SnapshotMap<u8, u8> = mapguard::SnapshotMap::new();
    /// map.write_batch(|tx| tx.compute(1, |v| Compute::Set(v.map_or(1, |v| v + 1))));
    /// assert_eq!(map.get_cloned(&1), Some(1));
    /// ```
    pub fn compute(&mut self, key: K, f: impl FnOnce(Option<&V>) -> Compute<V>) -> Option<V> {
        match self.map.entry(key) {
            Entry::Occupied(mut e) => match f(Some(&e.get().value)) {
                Compute::Set(value) => {
                    self.changed = true;
                    *self.clock += 1;
                    let version = *self.clock;
                    Some(std::mem::replace(e.get_mut(), Versioned { value, version }).value)
                }
                Compute::Remove => {
                    self.changed = true;
                    Some(e.remove().value)
                }
                Compute::Keep => None,
            },
            Entry::Vacant(e) => {
                if let Compute::Set(value) = f(None) {
                    self.changed = true;
                    *self.clock += 1;
                    e.insert(Versioned {
                        value,
                        version: *self.clock,
                    });
                }
                None
            }
        }
    }

    /// Keeps only the entries for which `f` returns `true`.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = (0..10).map(|i| (i, i)).collect();
    /// map.write_batch(|tx| tx.retain(|k, _| *k < 3));
    /// assert_eq!(map.len(), 3);
    /// ```
    pub fn retain(&mut self, mut f: impl FnMut(&K, &V) -> bool) {
        let before = self.map.len();
        self.map.retain(|k, e| f(k, &e.value));
        self.changed |= self.map.len() != before;
    }

    /// Removes every entry.
    ///
    /// ```
    /// let map: mapguard::SnapshotMap<u8, u8> = (0..10).map(|i| (i, i)).collect();
    /// map.write_batch(|tx| tx.clear());
    /// assert!(map.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.changed |= !self.map.is_empty();
        self.map.clear();
    }
}

impl<K, V, S> std::fmt::Debug for Batch<'_, K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("len", &self.map.len())
            .field("changed", &self.changed)
            .finish_non_exhaustive()
    }
}

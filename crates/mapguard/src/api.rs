//! Types shared by both engines' APIs: the outcome of a `compute` closure and the
//! errors of the non-blocking and optimistic calls.

use std::fmt;

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

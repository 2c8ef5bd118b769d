//! Wiping secrets on removal (feature `zeroize`).
//!
//! These methods overwrite a value with zeroes (via [`Zeroize`]) in the table
//! slot itself, under the shard lock, before the slot is freed, instead of
//! handing the value back. The copies that hashbrown leaves behind when it
//! moves a table's entries to a bigger or smaller allocation are wiped by the
//! tables' allocator (see `crate::table_alloc`), so with this feature no table
//! memory goes back to the system holding a value. What the allocator cannot
//! reach is memory a value owns itself (a `Vec`'s buffer): that is wiped by
//! these methods, or, for values dropped any other way, by a wipe-on-drop
//! wrapper such as `zeroize::Zeroizing`.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use zeroize::Zeroize;

use crate::ShardedMap;

impl<K, V, S> ShardedMap<K, V, S>
where
    K: Hash + Eq,
    V: Zeroize,
    S: BuildHasher,
{
    /// Removes the entry, wiping its value in place first; returns whether it
    /// was present.
    ///
    /// ```
    /// let tokens: mapguard::ShardedMap<u32, Vec<u8>> = mapguard::ShardedMap::new();
    /// tokens.insert(1, vec![7; 32]);
    /// assert!(tokens.remove_zeroized(&1));
    /// assert!(!tokens.contains_key(&1));
    /// ```
    pub fn remove_zeroized<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_wiping(key, V::zeroize)
    }

    /// Inserts `value`, wiping the value it replaces in place; returns whether
    /// one was replaced.
    ///
    /// ```
    /// let keys: mapguard::ShardedMap<&str, Vec<u8>> = mapguard::ShardedMap::new();
    /// assert!(!keys.insert_zeroizing("api", b"old".to_vec()));
    /// assert!(keys.insert_zeroizing("api", b"new".to_vec()));
    /// assert_eq!(keys.get_cloned("api").unwrap(), b"new");
    /// ```
    pub fn insert_zeroizing(&self, key: K, value: V) -> bool {
        self.insert_wiping(key, value, V::zeroize)
    }

    /// Keeps the entries for which `f` returns `true`, wiping the others'
    /// values in place (each shard atomically).
    ///
    /// ```
    /// let keys: mapguard::ShardedMap<u8, Vec<u8>> = (0..4).map(|i| (i, vec![i])).collect();
    /// keys.retain_zeroizing(|k, _| *k < 2);
    /// assert_eq!(keys.len(), 2);
    /// ```
    pub fn retain_zeroizing(&self, f: impl FnMut(&K, &V) -> bool) {
        self.retain_wiping(f, V::zeroize);
    }

    /// Wipes and removes every entry.
    ///
    /// ```
    /// let keys: mapguard::ShardedMap<u8, Vec<u8>> = [(1, vec![1, 2])].into_iter().collect();
    /// keys.clear_zeroized();
    /// assert!(keys.is_empty());
    /// ```
    pub fn clear_zeroized(&self) {
        self.retain_wiping(|_, _| false, V::zeroize);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use zeroize::Zeroize;

    use crate::table_alloc::{record_frees, FreedBlock};
    use crate::{ShardedMap, SnapshotMap};

    /// Records what it held when wiped, to prove the wipe ran on the stored value.
    #[derive(Clone)]
    struct Probe(u32, Arc<Mutex<Vec<u32>>>);

    impl Zeroize for Probe {
        fn zeroize(&mut self) {
            self.1.lock().unwrap().push(self.0);
            self.0 = 0;
        }
    }

    #[test]
    fn wipes_removed_replaced_and_retained_out_values() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let map: ShardedMap<u32, Probe> = ShardedMap::new();
        for i in 1..=4 {
            map.insert(i, Probe(i * 10, Arc::clone(&log)));
        }
        assert!(map.remove_zeroized(&1));
        assert!(map.insert_zeroizing(2, Probe(99, Arc::clone(&log))));
        map.retain_zeroizing(|k, _| *k != 3);
        map.clear_zeroized();
        let mut wiped = log.lock().unwrap().clone();
        wiped.sort();
        assert_eq!(wiped, vec![10, 20, 30, 40, 99]);
    }

    /// A value stored inline in the table, so that resizing copies its bytes.
    /// With `u64` keys, neither engine's entries have padding, as
    /// `record_frees` requires.
    const SECRET: [u8; 32] = *b"mapguard test secret 0123456789!";

    fn holds_secret(bytes: &[u8]) -> bool {
        bytes.windows(SECRET.len()).any(|w| w == SECRET)
    }

    /// The gap is real (old tables did hold the secret when freed, at least 4
    /// of them), and none of them reached the system allocator with it.
    fn assert_secret_was_copied_and_wiped(freed: &[FreedBlock]) {
        let copies = freed.iter().filter(|b| holds_secret(&b.before)).count();
        assert!(
            copies >= 4,
            "{copies} of {} freed tables held the secret",
            freed.len()
        );
        for block in freed {
            assert!(
                block.after.iter().all(|&b| b == 0),
                "a table was freed unwiped"
            );
        }
    }

    /// Enough entries to grow a one-shard table from 4 to 256 buckets (to 64
    /// under Miri, where scanning every freed block is slow).
    const FILLER: u64 = if cfg!(miri) { 40 } else { 200 };

    #[test]
    #[allow(unsafe_code)] // record_frees reads freed tables whole
    fn no_table_freed_by_growing_or_shrinking_a_shard_keeps_a_secret() {
        // SAFETY: entries of u64 keys and byte-array values have no padding.
        let ((), freed) = unsafe {
            record_frees(|| {
                let map: ShardedMap<u64, [u8; 32]> = ShardedMap::builder().shards(1).build();
                map.insert(0, SECRET);
                for k in 1..=FILLER {
                    map.insert(k, [0; 32]);
                }
                for k in 1..=FILLER {
                    map.remove(&k); // shrinks automatically on the way down
                }
                map.shrink_to_fit();
                assert_eq!(map.get_cloned(&0), Some(SECRET));
                assert!(map.remove_zeroized(&0));
            })
        };
        assert_secret_was_copied_and_wiped(&freed);
    }

    #[test]
    #[allow(unsafe_code)] // record_frees reads freed tables whole
    fn no_table_freed_by_snapshot_writes_keeps_a_secret() {
        // SAFETY: entries of u64 keys and byte-array values have no padding.
        let ((), freed) = unsafe {
            record_frees(|| {
                let map: SnapshotMap<u64, [u8; 32]> = SnapshotMap::new();
                map.insert(0, SECRET);
                // One draft, grown several times while it holds a copy of the secret.
                map.write_batch(|tx| {
                    for k in 1..=FILLER {
                        tx.insert(k, [0; 32]);
                    }
                });
                let older = map.snapshot();
                assert_eq!(map.remove(&0), Some(SECRET));
                map.clear();
                assert_eq!(older.get(&0), Some(&SECRET)); // outlived the writes
            })
        };
        assert_secret_was_copied_and_wiped(&freed);
    }
}

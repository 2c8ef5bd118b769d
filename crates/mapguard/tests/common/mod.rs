//! One interface over every engine, so every behavioural test runs on each.
#![allow(dead_code)]

use mapguard::{Compute, ReadMostlyMap, ShardedMap, SnapshotMap};

pub trait Engine: Send + Sync + 'static {
    const NAME: &'static str;
    fn fresh() -> Self;
    fn insert(&self, k: u64, v: u64) -> Option<u64>;
    fn remove(&self, k: u64) -> Option<u64>;
    fn get(&self, k: u64) -> Option<u64>;
    fn contains(&self, k: u64) -> bool;
    fn update_add(&self, k: u64, d: u64) -> Option<u64>;
    fn compute(&self, k: u64, f: impl FnOnce(Option<&u64>) -> Compute<u64>) -> Option<u64>;
    fn get_or_insert(&self, k: u64, v: u64) -> u64;
    fn get_versioned(&self, k: u64) -> Option<(u64, u64)>;
    fn cas(&self, k: u64, seen: u64, v: u64) -> Result<u64, mapguard::Conflict>;
    fn len(&self) -> usize;
    fn retain_even_values(&self);
    fn clear(&self);
    fn entries(&self) -> Vec<(u64, u64)>;
    fn get_or_load<E: Send + Sync + 'static>(
        &self,
        k: u64,
        f: impl FnOnce(&u64) -> Result<u64, E>,
    ) -> Result<u64, std::sync::Arc<E>>;
}

impl Engine for ShardedMap<u64, u64> {
    const NAME: &'static str = "ShardedMap";
    fn fresh() -> Self {
        // Few shards and no capacity: collisions and resizes happen early.
        ShardedMap::builder().shards(4).build()
    }
    fn insert(&self, k: u64, v: u64) -> Option<u64> {
        ShardedMap::insert(self, k, v)
    }
    fn remove(&self, k: u64) -> Option<u64> {
        ShardedMap::remove(self, &k)
    }
    fn get(&self, k: u64) -> Option<u64> {
        self.get_cloned(&k)
    }
    fn contains(&self, k: u64) -> bool {
        self.contains_key(&k)
    }
    fn update_add(&self, k: u64, d: u64) -> Option<u64> {
        self.update(&k, |v| {
            *v += d;
            *v
        })
    }
    fn compute(&self, k: u64, f: impl FnOnce(Option<&u64>) -> Compute<u64>) -> Option<u64> {
        ShardedMap::compute(self, k, f)
    }
    fn get_or_insert(&self, k: u64, v: u64) -> u64 {
        self.get_or_insert_with(k, || v)
    }
    fn get_versioned(&self, k: u64) -> Option<(u64, u64)> {
        ShardedMap::get_versioned(self, &k)
    }
    fn cas(&self, k: u64, seen: u64, v: u64) -> Result<u64, mapguard::Conflict> {
        self.compare_and_update(&k, seen, |x| *x = v)
    }
    fn len(&self) -> usize {
        ShardedMap::len(self)
    }
    fn retain_even_values(&self) {
        self.retain(|_, v| v % 2 == 0)
    }
    fn clear(&self) {
        ShardedMap::clear(self)
    }
    fn entries(&self) -> Vec<(u64, u64)> {
        let mut e: Vec<_> = self.iter().collect();
        e.sort();
        e
    }
    fn get_or_load<E: Send + Sync + 'static>(
        &self,
        k: u64,
        f: impl FnOnce(&u64) -> Result<u64, E>,
    ) -> Result<u64, std::sync::Arc<E>> {
        ShardedMap::get_or_load(self, k, f)
    }
}

impl Engine for ReadMostlyMap<u64, u64> {
    const NAME: &'static str = "ReadMostlyMap";
    fn fresh() -> Self {
        // Few shards and no capacity: migrations start early and often.
        ReadMostlyMap::builder().shards(2).build()
    }
    fn insert(&self, k: u64, v: u64) -> Option<u64> {
        ReadMostlyMap::insert(self, k, v)
    }
    fn remove(&self, k: u64) -> Option<u64> {
        ReadMostlyMap::remove(self, &k)
    }
    fn get(&self, k: u64) -> Option<u64> {
        self.get_cloned(&k)
    }
    fn contains(&self, k: u64) -> bool {
        self.contains_key(&k)
    }
    fn update_add(&self, k: u64, d: u64) -> Option<u64> {
        self.update(&k, |v| {
            *v += d;
            *v
        })
    }
    fn compute(&self, k: u64, f: impl FnOnce(Option<&u64>) -> Compute<u64>) -> Option<u64> {
        ReadMostlyMap::compute(self, k, f)
    }
    fn get_or_insert(&self, k: u64, v: u64) -> u64 {
        self.get_or_insert_with(k, || v)
    }
    fn get_versioned(&self, k: u64) -> Option<(u64, u64)> {
        ReadMostlyMap::get_versioned(self, &k)
    }
    fn cas(&self, k: u64, seen: u64, v: u64) -> Result<u64, mapguard::Conflict> {
        self.compare_and_update(&k, seen, |x| *x = v)
    }
    fn len(&self) -> usize {
        ReadMostlyMap::len(self)
    }
    fn retain_even_values(&self) {
        self.retain(|_, v| v % 2 == 0)
    }
    fn clear(&self) {
        ReadMostlyMap::clear(self)
    }
    fn entries(&self) -> Vec<(u64, u64)> {
        let mut e: Vec<_> = self.iter().collect();
        e.sort();
        e
    }
    fn get_or_load<E: Send + Sync + 'static>(
        &self,
        k: u64,
        f: impl FnOnce(&u64) -> Result<u64, E>,
    ) -> Result<u64, std::sync::Arc<E>> {
        ReadMostlyMap::get_or_load(self, k, f)
    }
}

impl Engine for SnapshotMap<u64, u64> {
    const NAME: &'static str = "SnapshotMap";
    fn fresh() -> Self {
        SnapshotMap::new()
    }
    fn insert(&self, k: u64, v: u64) -> Option<u64> {
        SnapshotMap::insert(self, k, v)
    }
    fn remove(&self, k: u64) -> Option<u64> {
        SnapshotMap::remove(self, &k)
    }
    fn get(&self, k: u64) -> Option<u64> {
        self.get_cloned(&k)
    }
    fn contains(&self, k: u64) -> bool {
        self.contains_key(&k)
    }
    fn update_add(&self, k: u64, d: u64) -> Option<u64> {
        self.update(&k, |v| {
            *v += d;
            *v
        })
    }
    fn compute(&self, k: u64, f: impl FnOnce(Option<&u64>) -> Compute<u64>) -> Option<u64> {
        SnapshotMap::compute(self, k, f)
    }
    fn get_or_insert(&self, k: u64, v: u64) -> u64 {
        self.get_or_insert_with(k, || v)
    }
    fn get_versioned(&self, k: u64) -> Option<(u64, u64)> {
        SnapshotMap::get_versioned(self, &k)
    }
    fn cas(&self, k: u64, seen: u64, v: u64) -> Result<u64, mapguard::Conflict> {
        self.compare_and_update(&k, seen, |x| *x = v)
    }
    fn len(&self) -> usize {
        SnapshotMap::len(self)
    }
    fn retain_even_values(&self) {
        self.retain(|_, v| v % 2 == 0)
    }
    fn clear(&self) {
        SnapshotMap::clear(self)
    }
    fn entries(&self) -> Vec<(u64, u64)> {
        let mut e: Vec<_> = self.snapshot().iter().map(|(k, v)| (*k, *v)).collect();
        e.sort();
        e
    }
    fn get_or_load<E: Send + Sync + 'static>(
        &self,
        k: u64,
        f: impl FnOnce(&u64) -> Result<u64, E>,
    ) -> Result<u64, std::sync::Arc<E>> {
        SnapshotMap::get_or_load(self, k, f)
    }
}

/// `native` normally and `miri` under Miri, whose interpreter is several
/// thousand times slower: the same test with fewer iterations, so that
/// `scripts/miri.sh` finishes in minutes.
pub const fn scaled(native: u64, miri: u64) -> u64 {
    if cfg!(miri) {
        miri
    } else {
        native
    }
}

/// Runs `f` on a thread and fails the test if it hasn't finished in `secs`:
/// a deadlock becomes a failure instead of a hung test run.
pub fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(()) => match handle.join().expect("joined") {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(_) => panic!("did not finish within {secs}s: deadlock or livelock"),
    }
}

//! One interface over every engine, so every behavioural test runs on each.
#![allow(dead_code)]

use mapguard::{ConcurrentMap, Conflict, ReadMostlyMap, ShardedMap, SnapshotMap};

/// An engine under test: everything but construction goes through the
/// library's [`ConcurrentMap`] trait, so each test is one generic function
/// instantiated per engine. The provided methods are the tests' shorthands.
pub trait Engine: ConcurrentMap<u64, u64> + Send + Sync + 'static {
    const NAME: &'static str;
    fn fresh() -> Self;

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
    fn get_or_insert(&self, k: u64, v: u64) -> u64 {
        self.get_or_insert_with(k, || v)
    }
    fn cas(&self, k: u64, seen: u64, v: u64) -> Result<u64, Conflict> {
        self.compare_and_update(&k, seen, |x| *x = v)
    }
    fn retain_even_values(&self) {
        self.retain(|_, v| v % 2 == 0)
    }
    /// Every entry, sorted.
    fn entries(&self) -> Vec<(u64, u64)> {
        let mut e: Vec<_> = self.iter().collect();
        e.sort();
        e
    }
}

impl Engine for ShardedMap<u64, u64> {
    const NAME: &'static str = "ShardedMap";
    fn fresh() -> Self {
        // Few shards and no capacity: collisions and resizes happen early.
        ShardedMap::builder().shards(4).build()
    }
}

impl Engine for ReadMostlyMap<u64, u64> {
    const NAME: &'static str = "ReadMostlyMap";
    fn fresh() -> Self {
        // Few shards and no capacity: migrations start early and often.
        ReadMostlyMap::builder().shards(2).build()
    }
}

impl Engine for SnapshotMap<u64, u64> {
    const NAME: &'static str = "SnapshotMap";
    fn fresh() -> Self {
        SnapshotMap::new()
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

//! The shared API, through the `ConcurrentMap` trait: each test is one generic
//! function, instantiated for every engine, so the engines agree by
//! construction and by behaviour.

mod common;

use common::Engine;
use mapguard::{Compute, ConcurrentMap, ReadMostlyMap, ShardedMap, SnapshotMap, WouldBlock};

/// Instantiates a generic test `$name::<E>()` once per engine.
macro_rules! for_each_engine {
    ($($name:ident),* $(,)?) => {
        mod sharded {
            $(#[test] fn $name() { super::$name::<mapguard::ShardedMap<u64, u64>>() })*
        }
        mod read_mostly {
            $(#[test] fn $name() { super::$name::<mapguard::ReadMostlyMap<u64, u64>>() })*
        }
        mod snapshot {
            $(#[test] fn $name() { super::$name::<mapguard::SnapshotMap<u64, u64>>() })*
        }
    };
}

for_each_engine!(
    iteration_yields_owned_pairs_and_holds_no_lock,
    try_writes_inside_a_write_closure_would_block,
    reads_and_versions_agree,
    optional_loads_and_misses,
    stats_count_writes,
);

fn iteration_yields_owned_pairs_and_holds_no_lock<E: Engine>() {
    let map = E::fresh();
    for k in 0..100 {
        map.insert(k, k * 2);
    }
    // Owned pairs: the loop body may write the map, on every engine.
    let mut seen = Vec::new();
    for (k, v) in map.iter() {
        map.update(&k, |v| *v += 1);
        seen.push((k, v));
    }
    seen.sort();
    assert_eq!(
        seen,
        (0..100).map(|k| (k, k * 2)).collect::<Vec<_>>(),
        "{}",
        E::NAME
    );

    let mut sum = 0;
    map.for_each(|k, v| {
        sum += v;
        map.insert(*k, 0); // no lock held here either
    });
    assert_eq!(sum, (0..100).map(|k| k * 2 + 1).sum::<u64>(), "{}", E::NAME);
    assert_eq!(map.iter().map(|(_, v)| v).sum::<u64>(), 0, "{}", E::NAME);
}

fn try_writes_inside_a_write_closure_would_block<E: Engine>() {
    let map = E::fresh();
    map.insert(1, 10);
    // The closure runs under the lock a write of the same key needs: a blocking
    // write would deadlock, a try_* write returns WouldBlock on every engine.
    let nested = map.update(&1, |_| {
        (
            map.try_insert(1, 11),
            map.try_remove(&1),
            map.try_update(&1, |v| *v),
            map.try_compute(1, |_| Compute::Remove),
            map.try_get_cloned(&1),
        )
    });
    let (insert, remove, update, compute, get) = nested.expect("present");
    assert_eq!(insert, Err(WouldBlock), "{}", E::NAME);
    assert_eq!(remove, Err(WouldBlock), "{}", E::NAME);
    assert_eq!(update, Err(WouldBlock), "{}", E::NAME);
    assert_eq!(compute, Err(WouldBlock), "{}", E::NAME);
    // Reads wait only on the engine whose readers lock (ShardedMap).
    assert!(
        matches!(get, Err(WouldBlock) | Ok(Some(10))),
        "{}: {get:?}",
        E::NAME
    );
    assert_eq!(
        map.get_cloned(&1),
        Some(10),
        "{}: nothing was changed",
        E::NAME
    );
}

fn reads_and_versions_agree<E: Engine>() {
    let map = E::fresh();
    assert_eq!(map.read_versioned(&1, |v| *v), None);
    assert!(map.is_empty());
    map.insert(1, 5);
    let (v, version) = map.read_versioned(&1, |v| v * 10).unwrap();
    assert_eq!(v, 50, "{}", E::NAME);
    assert_eq!(map.version(&1), Some(version), "{}", E::NAME);
    assert_eq!(map.get_versioned(&1), Some((5, version)), "{}", E::NAME);
    assert_eq!(map.read(&1, |v| v + 1), Some(6), "{}", E::NAME);
    let new = map.compare_and_update(&1, version, |v| *v = 7).unwrap();
    assert!(new > version, "{}", E::NAME);
    assert_eq!(
        map.compare_and_update(&1, version, |v| *v = 8)
            .unwrap_err()
            .current,
        Some(new),
        "{}",
        E::NAME
    );
    assert_eq!(map.get_or_insert_with(1, || 9), 7, "{}", E::NAME);
    assert!(map.contains_key(&1) && !map.contains_key(&2), "{}", E::NAME);
}

fn optional_loads_and_misses<E: Engine>() {
    let map = E::fresh();
    assert_eq!(map.get_or_load_optional(1, |_| Ok::<_, ()>(None)), Ok(None));
    assert!(map.is_empty(), "{}: a miss stores nothing", E::NAME);
    map.forget_miss(&1);
    assert_eq!(
        map.get_or_load_optional(1, |k| Ok::<_, ()>(Some(k + 1))),
        Ok(Some(2))
    );
    assert_eq!(map.get_or_load(1, |_| Err::<u64, _>("not called")), Ok(2));
    let err = map.get_or_load(3, |_| Err::<u64, _>("down")).unwrap_err();
    assert_eq!(*err, "down", "{}", E::NAME);
    assert!(!map.contains_key(&3), "{}", E::NAME);
}

fn stats_count_writes<E: Engine>() {
    let map = E::fresh();
    map.insert(1, 1);
    map.insert(2, 2);
    let stats = format!("{:?}", map.stats());
    assert!(stats.contains("writes"), "{}: {stats}", E::NAME);
}

/// The engine-specific stats types, through the trait's associated type.
#[test]
fn stats_types_are_the_engines_own() {
    fn writes_of<M: ConcurrentMap<u64, u64, Stats = mapguard::MapStats>>(map: &M) -> u64 {
        map.stats().writes()
    }
    let sharded: ShardedMap<u64, u64> = ShardedMap::new();
    let read_mostly: ReadMostlyMap<u64, u64> = ReadMostlyMap::new();
    sharded.insert(1, 1);
    read_mostly.insert(1, 1);
    assert_eq!((writes_of(&sharded), writes_of(&read_mostly)), (1, 1));
    let snapshot: SnapshotMap<u64, u64> = SnapshotMap::new();
    snapshot.insert(1, 1);
    let stats: mapguard::SnapshotStats = ConcurrentMap::stats(&snapshot);
    assert_eq!((stats.writes, stats.publishes, stats.len), (1, 1, 1));
}

#[cfg(feature = "prometheus")]
mod prometheus {
    use super::common::Engine;
    use prometheus_client::{encoding::text::encode, registry::Registry};

    fn registers_writes_and_entries<E: Engine>() {
        let map = E::fresh();
        let mut registry = Registry::default();
        map.register(&mut registry, "m");
        map.insert(1, 1);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains("m_writes_total"), "{}: {text}", E::NAME);
        assert!(text.contains("m_entries"), "{}: {text}", E::NAME);
        drop(map);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            !text.contains("m_writes_total"),
            "{}: a dropped map is gone",
            E::NAME
        );
    }

    #[test]
    fn every_engine_registers() {
        registers_writes_and_entries::<mapguard::ShardedMap<u64, u64>>();
        registers_writes_and_entries::<mapguard::ReadMostlyMap<u64, u64>>();
        registers_writes_and_entries::<mapguard::SnapshotMap<u64, u64>>();
    }
}

/// A replacement into a full table grows it (hashbrown grows before it looks):
/// `capacity()` sees the growth at once.
#[test]
fn sharded_capacity_follows_a_growth_by_replacement() {
    let map: ShardedMap<u64, u64> = ShardedMap::builder().shards(1).build();
    let mut k = 0;
    while map.len() < map.capacity() || map.is_empty() {
        map.insert(k, k);
        k += 1;
    }
    let full = map.capacity();
    assert_eq!(map.len(), full);
    assert_eq!(map.insert(0, 1), Some(0));
    assert!(map.capacity() > full, "{} after {full}", map.capacity());
    assert_eq!(map.stats().shards[0].capacity, map.capacity());
    assert_eq!(map.len(), full);
}

/// Inserts and removes (their own code path) are counted exactly, bump
/// versions, and are timed one in 256 per thread.
#[test]
fn sharded_inserts_and_removes_are_counted_versioned_and_sampled() {
    let map: ShardedMap<u64, u64> = ShardedMap::builder().shards(1).build();
    let n = 2_000;
    for k in 0..n {
        assert_eq!(map.insert(k, k), None);
    }
    let v1 = map.version(&1).unwrap();
    assert_eq!(map.insert(1, 1), Some(1));
    let v2 = map.version(&1).unwrap();
    assert!(v2 > v1);
    let inserted = map.stats();
    assert_eq!(inserted.writes(), n + 1);
    assert!(inserted.hold().count() >= n / 256, "{:?}", inserted.hold());
    for k in 0..n {
        assert_eq!(map.remove(&k), Some(k));
    }
    assert_eq!(map.remove(&0), None);
    let removed = map.stats();
    assert_eq!(removed.writes(), 2 * n + 2);
    assert!(
        removed.hold().count() >= 2 * n / 256,
        "{:?}",
        removed.hold()
    );
    assert!(map.is_empty());
    // Removed and inserted again: a version never seen for the key.
    map.insert(1, 1);
    assert!(map.version(&1).unwrap() > v2);

    let quiet: ShardedMap<u64, u64> = ShardedMap::builder().telemetry(false).build();
    quiet.insert(1, 1);
    quiet.remove(&1);
    assert_eq!(quiet.stats().writes(), 0);
    assert_eq!(quiet.stats().hold().count(), 0);
}

//! Model-based tests: random operation sequences on each engine, single
//! threaded, compared step by step with `std::collections::HashMap`. One
//! generic run over the library's `ConcurrentMap` trait, instantiated per engine.

mod common;

use std::collections::HashMap;

use common::Engine;
use mapguard::{Compute, ReadMostlyMap, ShardedMap, SnapshotMap};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u64),
    Remove(u64),
    Get(u64),
    Contains(u64),
    UpdateAdd(u64, u64),
    ComputeIncr(u64),
    ComputeRemoveIfOdd(u64),
    GetOrInsert(u64, u64),
    /// Read the version, then compare-and-update with it: must succeed.
    CasFresh(u64, u64),
    /// Read the version, write the key, then CAS with the old version: must fail.
    CasStale(u64, u64),
    RetainEven,
    Clear,
    Len,
    Entries,
    /// Insert many keys then remove them: exercises growth and auto-shrink.
    Burst(u64),
    /// The `try_*` forms: single threaded, nothing holds a lock, so each must
    /// succeed and agree with its blocking form.
    TryInsert(u64, u64),
    TryRemove(u64),
    TryGet(u64),
    TryUpdateAdd(u64, u64),
    TryComputeIncr(u64),
}

fn op() -> impl Strategy<Value = Op> {
    // A small key space makes hits, overwrites and removals frequent.
    let k = 0u64..24;
    let v = 0u64..1000;
    prop_oneof![
        4 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => k.clone().prop_map(Op::Remove),
        3 => k.clone().prop_map(Op::Get),
        1 => k.clone().prop_map(Op::Contains),
        2 => (k.clone(), 1u64..5).prop_map(|(k, d)| Op::UpdateAdd(k, d)),
        2 => k.clone().prop_map(Op::ComputeIncr),
        1 => k.clone().prop_map(Op::ComputeRemoveIfOdd),
        2 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
        1 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::CasFresh(k, v)),
        1 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::CasStale(k, v)),
        1 => Just(Op::RetainEven),
        1 => Just(Op::Clear),
        1 => Just(Op::Len),
        1 => Just(Op::Entries),
        // Under Miri, smaller: a `SnapshotMap` copies itself on every insert.
        1 => (common::scaled(100, 20)..common::scaled(400, 60)).prop_map(Op::Burst),
        1 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::TryInsert(k, v)),
        1 => k.clone().prop_map(Op::TryRemove),
        1 => k.clone().prop_map(Op::TryGet),
        1 => (k.clone(), 1u64..5).prop_map(|(k, d)| Op::TryUpdateAdd(k, d)),
        1 => k.clone().prop_map(Op::TryComputeIncr),
    ]
}

fn run<E: Engine>(ops: &[Op]) -> Result<(), TestCaseError> {
    let map = E::fresh();
    let mut model: HashMap<u64, u64> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        let ctx = format!("{} step {i}: {op:?}", E::NAME);
        match *op {
            Op::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v), "{}", ctx),
            Op::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k), "{}", ctx),
            Op::Get(k) => prop_assert_eq!(map.get(k), model.get(&k).copied(), "{}", ctx),
            Op::Contains(k) => prop_assert_eq!(map.contains(k), model.contains_key(&k), "{}", ctx),
            Op::UpdateAdd(k, d) => {
                let expected = model.get_mut(&k).map(|v| {
                    *v += d;
                    *v
                });
                prop_assert_eq!(map.update_add(k, d), expected, "{}", ctx);
            }
            Op::ComputeIncr(k) => {
                let old = map.compute(k, |v| Compute::Set(v.map_or(1, |v| v + 1)));
                let expected_old = model.get(&k).copied();
                model.insert(k, expected_old.map_or(1, |v| v + 1));
                prop_assert_eq!(old, expected_old, "{}", ctx);
            }
            Op::ComputeRemoveIfOdd(k) => {
                let old = map.compute(k, |v| match v {
                    Some(v) if v % 2 == 1 => Compute::Remove,
                    _ => Compute::Keep,
                });
                let expected = match model.get(&k) {
                    Some(v) if v % 2 == 1 => model.remove(&k),
                    _ => None,
                };
                prop_assert_eq!(old, expected, "{}", ctx);
            }
            Op::GetOrInsert(k, v) => {
                let expected = *model.entry(k).or_insert(v);
                prop_assert_eq!(map.get_or_insert(k, v), expected, "{}", ctx);
            }
            Op::CasFresh(k, v) => match map.get_versioned(&k) {
                Some((value, seen)) => {
                    prop_assert_eq!(Some(value), model.get(&k).copied(), "{}", ctx);
                    let new = map.cas(k, seen, v);
                    prop_assert!(matches!(new, Ok(n) if n > seen), "{}: {:?}", ctx, new);
                    model.insert(k, v);
                }
                None => prop_assert!(!model.contains_key(&k), "{}", ctx),
            },
            Op::CasStale(k, v) => {
                if let Some((_, seen)) = map.get_versioned(&k) {
                    map.insert(k, v);
                    model.insert(k, v);
                    let err = map
                        .cas(k, seen, v + 1)
                        .expect_err("stale version must conflict");
                    prop_assert_eq!(
                        err.current,
                        map.get_versioned(&k).map(|(_, ver)| ver),
                        "{}",
                        ctx
                    );
                    // Remove and re-insert: versions are never reused (no ABA).
                    map.remove(&k);
                    map.insert(k, v);
                    prop_assert!(map.cas(k, seen, v).is_err(), "{}: ABA", ctx);
                }
            }
            Op::RetainEven => {
                map.retain_even_values();
                model.retain(|_, v| *v % 2 == 0);
            }
            Op::Clear => {
                map.clear();
                model.clear();
            }
            Op::Len => prop_assert_eq!(map.len(), model.len(), "{}", ctx),
            Op::Entries => {
                let mut expected: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
                expected.sort();
                prop_assert_eq!(map.entries(), expected, "{}", ctx);
            }
            Op::Burst(n) => {
                for i in 0..n {
                    map.insert(1000 + i, i);
                }
                prop_assert_eq!(map.len(), model.len() + n as usize, "{}", ctx);
                for i in 0..n {
                    prop_assert_eq!(map.remove(&(1000 + i)), Some(i), "{}", ctx);
                }
            }
            Op::TryInsert(k, v) => {
                prop_assert_eq!(map.try_insert(k, v), Ok(model.insert(k, v)), "{}", ctx)
            }
            Op::TryRemove(k) => {
                prop_assert_eq!(map.try_remove(&k), Ok(model.remove(&k)), "{}", ctx)
            }
            Op::TryGet(k) => {
                let expected = model.get(&k).copied();
                prop_assert_eq!(map.try_get_cloned(&k), Ok(expected), "{}", ctx);
                prop_assert_eq!(
                    map.try_read(&k, |v| v + 1),
                    Ok(expected.map(|v| v + 1)),
                    "{}",
                    ctx
                );
            }
            Op::TryUpdateAdd(k, d) => {
                let expected = model.get_mut(&k).map(|v| {
                    *v += d;
                    *v
                });
                let got = map.try_update(&k, |v| {
                    *v += d;
                    *v
                });
                prop_assert_eq!(got, Ok(expected), "{}", ctx);
            }
            Op::TryComputeIncr(k) => {
                let old = map.try_compute(k, |v| Compute::Set(v.map_or(1, |v| v + 1)));
                let expected_old = model.get(&k).copied();
                model.insert(k, expected_old.map_or(1, |v| v + 1));
                prop_assert_eq!(old, Ok(expected_old), "{}", ctx);
            }
        }
        prop_assert_eq!(map.len(), model.len(), "{} (len after)", ctx);
    }
    let mut expected: Vec<_> = model.into_iter().collect();
    expected.sort();
    prop_assert_eq!(map.entries(), expected);
    Ok(())
}

/// Longest operation sequence (shorter under Miri, which interprets it).
const MAX_OPS: usize = common::scaled(120, 30) as usize;

proptest! {
    // Under Miri: a few cases, and no failure file (Miri isolates the file system).
    #![proptest_config(ProptestConfig {
        cases: common::scaled(256, 2) as u32,
        failure_persistence: if cfg!(miri) {
            None
        } else {
            ProptestConfig::default().failure_persistence
        },
        ..ProptestConfig::default()
    })]

    #[test]
    fn sharded_map_matches_hashmap(ops in proptest::collection::vec(op(), 1..MAX_OPS)) {
        run::<ShardedMap<u64, u64>>(&ops)?;
    }

    #[test]
    fn snapshot_map_matches_hashmap(ops in proptest::collection::vec(op(), 1..MAX_OPS)) {
        run::<SnapshotMap<u64, u64>>(&ops)?;
    }

    #[test]
    fn read_mostly_map_matches_hashmap(ops in proptest::collection::vec(op(), 1..120)) {
        run::<ReadMostlyMap<u64, u64>>(&ops)?;
    }
}

// Too many operations for Miri; growth and shrinking run under it in the
// bursts above and in the crate's zeroize tests.
#[test]
#[cfg_attr(miri, ignore)]
fn shards_shrink_after_mass_removal() {
    let map: ShardedMap<u64, u64> = ShardedMap::builder().shards(2).build();
    for i in 0..100_000 {
        map.insert(i, i);
    }
    let grown = map.capacity();
    for i in 0..99_900 {
        map.remove(&i);
    }
    assert_eq!(map.len(), 100);
    assert!(
        map.capacity() * 16 < grown,
        "capacity {} after removing 99.9% of {grown}",
        map.capacity()
    );
    for i in 99_900..100_000 {
        assert_eq!(map.get_cloned(&i), Some(i));
    }
}

#[test]
fn snapshot_outlives_writes_and_batches_are_atomic() {
    let map: SnapshotMap<u64, u64> = SnapshotMap::new();
    map.write_batch(|tx| {
        for i in 0..10 {
            tx.insert(i, i);
        }
    });
    let before = map.snapshot();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        map.write_batch(|tx| {
            tx.clear();
            panic!("abandon the batch");
        })
    }));
    assert!(result.is_err());
    assert_eq!(map.len(), 10, "a panicking batch publishes nothing");
    map.clear();
    assert_eq!(before.len(), 10);
    assert_eq!(before.get(&3), Some(&3));
    assert!(map.is_empty());
}

//! Re-entrant calls from inside a closure are reported at once, never a hang.

mod common;

use common::within;
use mapguard::{ReadMostlyMap, ShardedMap, SnapshotMap, WouldBlock};

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn expect_reentry_panic(f: impl FnOnce() + Send + 'static, inner: &str, outer: &str) {
    let message = within(10, move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        panic_message(r.expect_err("re-entry must panic"))
    });
    assert!(message.contains("re-entrant"), "{message}");
    assert!(message.contains(inner), "names the inner call: {message}");
    assert!(message.contains(outer), "names the outer call: {message}");
}

#[test]
fn same_shard_reentry_panics_naming_both_calls() {
    expect_reentry_panic(
        || {
            let map: ShardedMap<u32, u32> = ShardedMap::builder().shards(1).build();
            map.insert(1, 1);
            map.insert(2, 2);
            map.update(&1, |_| map.get_cloned(&2));
        },
        "ShardedMap::get_cloned",
        "ShardedMap::update",
    );
}

#[test]
fn other_shard_reentry_panics_too() {
    // Another shard would not self-deadlock, but two threads doing this in
    // opposite orders would: it is refused deterministically.
    expect_reentry_panic(
        || {
            let map: ShardedMap<u32, u32> = ShardedMap::builder().shards(64).build();
            let a = 0;
            let b = (1..1000)
                .find(|b| (map.hash_of(b) << 7) >> 58 != (map.hash_of(&a) << 7) >> 58)
                .expect("a key in another shard");
            map.insert(a, 0);
            map.read(&a, |_| map.insert(b, 1));
        },
        "ShardedMap::insert",
        "ShardedMap::read",
    );
}

#[test]
fn reentry_from_every_closure_taking_method() {
    let map: ShardedMap<u32, u32> = ShardedMap::builder().shards(1).build();
    map.insert(1, 1);
    type Case = Box<dyn Fn(&ShardedMap<u32, u32>)>;
    let cases: Vec<(&str, Case)> = vec![
        (
            "ShardedMap::read",
            Box::new(|m| {
                let _ = m.read(&1, |_| m.len() + m.contains_key(&1) as usize);
            }),
        ),
        (
            "ShardedMap::update",
            Box::new(|m| {
                let _ = m.update(&1, |_| m.remove(&1));
            }),
        ),
        (
            "ShardedMap::compute",
            Box::new(|m| {
                let _ = m.compute(1, |_| {
                    m.insert(1, 1);
                    mapguard::Compute::Keep
                });
            }),
        ),
        (
            "ShardedMap::retain",
            Box::new(|m| m.retain(|_, _| m.contains_key(&1))),
        ),
        (
            "ShardedMap::get_or_insert_with",
            Box::new(|m| {
                let _ = m.get_or_insert_with(9, || m.get_cloned(&1).unwrap());
            }),
        ),
        (
            "ShardedMap::compare_and_update",
            Box::new(|m| {
                let _ = m.compare_and_update(&1, m.version(&1).unwrap(), |_| m.clear());
            }),
        ),
    ];
    for (outer, case) in cases {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&map)));
        let msg = panic_message(r.expect_err(outer));
        assert!(msg.contains(outer), "{outer}: {msg}");
        // The map still works after the panic (nothing poisoned, no lock leaked).
        assert_eq!(map.get_cloned(&1), Some(1), "{outer}");
    }
}

#[test]
fn try_methods_return_would_block_instead_of_waiting() {
    let map: ShardedMap<u32, u32> = ShardedMap::builder().shards(1).build();
    map.insert(1, 1);
    let nested = within(10, move || {
        map.update(&1, |_| {
            (
                map.try_get_cloned(&1),
                map.try_insert(2, 2),
                map.try_update(&1, |v| *v),
                map.try_remove(&1),
            )
        })
    });
    assert_eq!(
        nested,
        Some((
            Err(WouldBlock),
            Err(WouldBlock),
            Err(WouldBlock),
            Err(WouldBlock)
        ))
    );
}

#[test]
fn another_map_inside_a_closure_is_fine() {
    let a: ShardedMap<u32, u32> = ShardedMap::new();
    let b: ShardedMap<u32, u32> = ShardedMap::new();
    a.insert(1, 1);
    b.insert(1, 10);
    assert_eq!(
        a.update(&1, |v| {
            *v += b.get_cloned(&1).unwrap();
            *v
        }),
        Some(11)
    );
}

#[test]
fn reentry_through_another_maps_closure_panics_naming_the_outer_call() {
    // A's closure runs B's, which calls back into A: the record of A is below
    // B's, and is still found.
    expect_reentry_panic(
        || {
            let a: ShardedMap<u32, u32> = ShardedMap::new();
            let b: ShardedMap<u32, u32> = ShardedMap::new();
            a.insert(1, 1);
            b.insert(1, 1);
            a.update(&1, |_| b.read(&1, |_| a.get_cloned(&1)));
        },
        "ShardedMap::get_cloned",
        "ShardedMap::update",
    );
    // And once out of both, each map is usable again, also after a panic
    // in the inner closure.
    let a: ShardedMap<u32, u32> = ShardedMap::new();
    let b: ShardedMap<u32, u32> = ShardedMap::new();
    a.insert(1, 1);
    b.insert(1, 1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.update(&1, |_| b.read(&1, |_| panic!("inner")));
    }));
    assert!(r.is_err());
    assert_eq!(a.insert(1, 2), Some(1));
    assert_eq!(b.update(&1, |v| a.insert(2, *v)), Some(None));
}

#[test]
fn loader_may_use_the_map_but_not_wait_for_itself() {
    let map: ShardedMap<u32, u32> = ShardedMap::new();
    map.insert(1, 5);
    // No lock is held while loading: reading other keys works.
    assert_eq!(
        map.get_or_load(2, |_| Ok::<_, ()>(map.get_cloned(&1).unwrap() * 2)),
        Ok(10)
    );
    let msg = within(10, move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = map.get_or_load(3, |_| {
                map.get_or_load(3, |_| Ok::<_, ()>(1)).map_err(|_| ())
            });
        }));
        panic_message(r.expect_err("self-wait must panic"))
    });
    assert!(msg.contains("re-entrant `get_or_load`"), "{msg}");
}

#[test]
fn snapshot_map_write_reentry_panics_reads_do_not() {
    let map: SnapshotMap<u32, u32> = SnapshotMap::new();
    map.insert(1, 1);
    // Reads hold no lock: any call is fine inside them, writes included.
    assert_eq!(
        map.read(&1, |v| {
            map.insert(2, *v);
            map.get_cloned(&2)
        }),
        Some(Some(1))
    );
    // Reads inside a batch see the previous snapshot.
    map.write_batch(|tx| {
        tx.insert(3, 3);
        assert_eq!(map.get_cloned(&3), None);
        assert_eq!(map.try_write_batch(|_| ()), Err(WouldBlock));
    });
    expect_reentry_panic(
        move || {
            map.write_batch(|_| {
                map.insert(4, 4);
            });
        },
        "SnapshotMap::insert",
        "SnapshotMap::write_batch",
    );
}

/// The read-mostly engine: reads hold no lock, so reading the map from inside
/// any closure (even a write's) is allowed and sees the committed state; a
/// blocking write from inside a write closure is refused, naming both calls.
#[test]
fn read_mostly_reads_inside_closures_are_fine_writes_inside_writes_panic() {
    let map: ReadMostlyMap<u32, u32> = ReadMostlyMap::builder().shards(1).build();
    map.insert(1, 1);
    map.insert(2, 2);
    // A read closure may write (it holds nothing), and a write closure may read.
    map.read(&1, |_| map.insert(3, 3));
    assert_eq!(
        map.update(&1, |v| *v + map.get_cloned(&2).unwrap()),
        Some(3)
    );
    assert_eq!(
        map.update(&1, |v| map.get_cloned(&1) == Some(*v)),
        Some(true)
    );
    expect_reentry_panic(
        || {
            let map: ReadMostlyMap<u32, u32> = ReadMostlyMap::builder().shards(1).build();
            map.insert(1, 1);
            map.update(&1, |_| map.insert(2, 2));
        },
        "ReadMostlyMap::insert",
        "ReadMostlyMap::update",
    );
    // Nothing was published by the panicking closure, and the lock was released.
    let map: ReadMostlyMap<u32, u32> = ReadMostlyMap::builder().shards(1).build();
    map.insert(1, 1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        map.compute(1, |_| {
            map.remove(&1);
            mapguard::Compute::Keep
        })
    }));
    assert!(panic_message(r.expect_err("re-entry")).contains("ReadMostlyMap::compute"));
    assert_eq!(map.get_cloned(&1), Some(1));
    assert_eq!(within(10, move || map.try_insert(1, 5)), Ok(Some(1)));
}

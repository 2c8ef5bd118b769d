//! Stress tests and the classic Go map hazards, on both engines.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{scaled, within, Engine};
use mapguard::{Compute, ReadMostlyMap, ShardedMap, SnapshotMap};

const THREADS: usize = 8;

/// N threads increment shared counters through `update`: nothing is lost.
/// The same with get-then-insert can lose increments (reported, not asserted:
/// a lucky schedule may lose none).
fn lost_update<E: Engine>(per_thread: u64) {
    let map = Arc::new(E::fresh());
    for k in 0..4 {
        map.insert(k, 0);
    }
    let barrier = Arc::new(Barrier::new(THREADS));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (map, barrier) = (&map, &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..per_thread {
                    map.update_add((i + t as u64) % 4, 1).expect("present");
                }
            });
        }
    });
    let total: u64 = (0..4).map(|k| map.get(k).unwrap()).sum();
    assert_eq!(
        total,
        THREADS as u64 * per_thread,
        "{}: update lost increments",
        E::NAME
    );

    let naive = Arc::new(E::fresh());
    naive.insert(0, 0);
    let barrier = Arc::new(Barrier::new(THREADS));
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let (naive, barrier) = (&naive, &barrier);
            s.spawn(move || {
                barrier.wait();
                for _ in 0..per_thread {
                    let v = naive.get(0).unwrap();
                    std::hint::spin_loop();
                    naive.insert(0, v + 1);
                }
            });
        }
    });
    let naive_total = naive.get(0).unwrap();
    assert!(naive_total <= THREADS as u64 * per_thread);
    eprintln!(
        "{}: get-then-insert kept {naive_total} of {} increments (update kept all)",
        E::NAME,
        THREADS as u64 * per_thread
    );
}

#[test]
fn sharded_update_loses_nothing() {
    lost_update::<ShardedMap<u64, u64>>(scaled(20_000, 100));
}

#[test]
fn snapshot_update_loses_nothing() {
    lost_update::<SnapshotMap<u64, u64>>(scaled(2_000, 10));
}

#[test]
fn read_mostly_update_loses_nothing() {
    lost_update::<ReadMostlyMap<u64, u64>>(scaled(20_000, 100));
}

/// Many concurrent callers of `get_or_load` on one missing key: one load.
fn single_flight<E: Engine>(threads: u64, rounds: u64) {
    let map = Arc::new(E::fresh());
    for round in 0..rounds {
        let key = round;
        let calls = AtomicUsize::new(0);
        let barrier = Barrier::new(threads as usize);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    barrier.wait();
                    let v = map
                        .get_or_load(key, |k| {
                            calls.fetch_add(1, SeqCst);
                            std::thread::sleep(Duration::from_millis(2));
                            Ok::<_, String>(k * 10)
                        })
                        .unwrap();
                    assert_eq!(v, key * 10);
                });
            }
        });
        assert_eq!(
            calls.load(SeqCst),
            1,
            "{}: round {round} loaded more than once",
            E::NAME
        );
    }
}

#[test]
fn sharded_single_flight_1000_callers() {
    // 32 x 32 = 1024 callers (32 under Miri).
    within(60, || {
        single_flight::<ShardedMap<u64, u64>>(scaled(32, 8), scaled(32, 4))
    });
}

#[test]
fn snapshot_single_flight_1000_callers() {
    within(60, || {
        single_flight::<SnapshotMap<u64, u64>>(scaled(32, 8), scaled(32, 4))
    });
}

#[test]
fn read_mostly_single_flight_1000_callers() {
    within(60, || {
        single_flight::<ReadMostlyMap<u64, u64>>(scaled(32, 8), scaled(32, 4))
    });
}

/// A panicking loader: the panic reaches its caller, the waiters retry, one of
/// them loads, and the map keeps working.
fn panicking_loader<E: Engine>() {
    let map = Arc::new(E::fresh());
    let calls = AtomicUsize::new(0);
    let barrier = Barrier::new(8);
    let (ok, panicked) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                barrier.wait();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    map.get_or_load(1, |_| {
                        let n = calls.fetch_add(1, SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        if n == 0 {
                            panic!("loader failed");
                        }
                        Ok::<_, String>(99)
                    })
                }));
                match r {
                    Ok(v) => {
                        assert_eq!(v.unwrap(), 99);
                        ok.fetch_add(1, SeqCst);
                    }
                    Err(_) => {
                        panicked.fetch_add(1, SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(
        panicked.load(SeqCst),
        1,
        "{}: only the loading caller panics",
        E::NAME
    );
    assert_eq!(
        ok.load(SeqCst),
        7,
        "{}: waiters get the retried value",
        E::NAME
    );
    assert_eq!(calls.load(SeqCst), 2, "{}: one retry", E::NAME);
    assert_eq!(map.get(1), Some(99));
    map.insert(2, 2);
    assert_eq!(map.get_or_load(3, |_| Ok::<_, String>(3)).unwrap(), 3);
}

#[test]
fn sharded_panicking_loader() {
    within(30, panicking_loader::<ShardedMap<u64, u64>>);
}

#[test]
fn snapshot_panicking_loader() {
    within(30, panicking_loader::<SnapshotMap<u64, u64>>);
}

#[test]
fn read_mostly_panicking_loader_leaves_a_working_map() {
    within(30, panicking_loader::<ReadMostlyMap<u64, u64>>);
}

/// A loader's error is shared with the waiters (not retried by each of them).
fn shared_error<E: Engine>() {
    let map = E::fresh();
    let calls = AtomicUsize::new(0);
    let barrier = Barrier::new(6);
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                barrier.wait();
                let err = map
                    .get_or_load(5, |_| {
                        calls.fetch_add(1, SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        Err::<u64, _>(std::io::Error::other("backend down"))
                    })
                    .unwrap_err();
                assert_eq!(err.to_string(), "backend down");
            });
        }
    });
    // All six arrived within the 30 ms load: typically one call; a straggler
    // arriving after the failure loads again, so allow a little.
    assert!(
        calls.load(SeqCst) <= 2,
        "{}: {} loads",
        E::NAME,
        calls.load(SeqCst)
    );
    assert_eq!(map.get(5), None, "errors are not cached");
}

#[test]
fn sharded_shared_error() {
    within(30, shared_error::<ShardedMap<u64, u64>>);
}

#[test]
fn snapshot_shared_error() {
    within(30, shared_error::<SnapshotMap<u64, u64>>);
}

#[test]
fn read_mostly_waiters_share_the_error() {
    within(30, shared_error::<ReadMostlyMap<u64, u64>>);
}

/// Go hazard: cache stampede after a delete. 100 concurrent reloads (16
/// under Miri), one load.
fn stampede_after_delete<E: Engine>() {
    let callers = scaled(100, 16);
    let map = E::fresh();
    map.insert(7, 1);
    map.remove(&7);
    let calls = AtomicUsize::new(0);
    let barrier = Barrier::new(callers as usize);
    std::thread::scope(|s| {
        for _ in 0..callers {
            s.spawn(|| {
                barrier.wait();
                let v = map
                    .get_or_load(7, |_| {
                        calls.fetch_add(1, SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        Ok::<_, ()>(2)
                    })
                    .unwrap();
                assert_eq!(v, 2);
            });
        }
    });
    assert_eq!(calls.load(SeqCst), 1, "{}: stampede", E::NAME);
}

#[test]
fn sharded_no_stampede_after_delete() {
    within(60, stampede_after_delete::<ShardedMap<u64, u64>>);
}

#[test]
fn snapshot_no_stampede_after_delete() {
    within(60, stampede_after_delete::<SnapshotMap<u64, u64>>);
}

#[test]
fn read_mostly_no_stampede_after_delete() {
    within(60, stampede_after_delete::<ReadMostlyMap<u64, u64>>);
}

/// Hazard: a stale fill. A load reads its source; then the source changes and
/// the key is invalidated in the map (the classic "update the database, then
/// invalidate the cache"); then the load finishes. Its caller still gets what it
/// read, but the map must not keep that pre-invalidation value, or it would be
/// served until the next write. Barriers pin the interleaving.
fn no_stale_fill<E: Engine>(invalidate: &str, write: fn(&E)) {
    let map = E::fresh();
    let source = AtomicU64::new(1);
    let source_read = Barrier::new(2);
    let written = Barrier::new(2);
    std::thread::scope(|s| {
        let loader = s.spawn(|| {
            map.get_or_load(7, |_| {
                let value = source.load(SeqCst);
                source_read.wait();
                written.wait();
                Ok::<_, ()>(value)
            })
        });
        source_read.wait();
        source.store(2, SeqCst);
        write(&map);
        written.wait();
        assert_eq!(
            loader.join().unwrap(),
            Ok(1),
            "the loading caller gets its value"
        );
    });
    assert_eq!(
        map.get(7),
        None,
        "{}: the value loaded before `{invalidate}` was stored",
        E::NAME
    );
    let reloaded = map.get_or_load(7, |_| Ok::<_, ()>(source.load(SeqCst)));
    assert_eq!(
        reloaded,
        Ok(2),
        "{}: the next load reads the source again",
        E::NAME
    );
    assert_eq!(map.get(7), Some(2));
}

fn no_stale_fill_after_any_write<E: Engine>() {
    no_stale_fill::<E>("remove", |m| {
        m.remove(&7);
    });
    no_stale_fill::<E>("insert then remove", |m| {
        m.insert(7, 2);
        m.remove(&7);
    });
    no_stale_fill::<E>("compute to remove", |m| {
        m.compute(7, |_| Compute::Remove);
    });
    no_stale_fill::<E>("retain", |m| m.retain_even_values());
    no_stale_fill::<E>("clear", |m| m.clear());
}

#[test]
fn sharded_no_stale_fill_after_invalidation() {
    within(30, no_stale_fill_after_any_write::<ShardedMap<u64, u64>>);
}

#[test]
fn snapshot_no_stale_fill_after_invalidation() {
    within(30, no_stale_fill_after_any_write::<SnapshotMap<u64, u64>>);
}

#[test]
fn read_mostly_no_stale_fill_after_any_write() {
    within(30, no_stale_fill_after_any_write::<ReadMostlyMap<u64, u64>>);
}

/// Invalidation is per key: writing another key while a load is in flight
/// leaves the load's fill alone.
fn other_keys_do_not_invalidate<E: Engine>() {
    let map = E::fresh();
    let loading = Barrier::new(2);
    let written = Barrier::new(2);
    std::thread::scope(|s| {
        let loader = s.spawn(|| {
            map.get_or_load(7, |_| {
                loading.wait();
                written.wait();
                Ok::<_, ()>(1)
            })
        });
        loading.wait();
        map.insert(8, 8);
        map.remove(&9);
        map.compute(10, |_| Compute::Set(10));
        written.wait();
        assert_eq!(loader.join().unwrap(), Ok(1));
    });
    assert_eq!(
        map.get(7),
        Some(1),
        "{}: an unrelated write dropped the fill",
        E::NAME
    );
}

#[test]
fn sharded_other_keys_do_not_invalidate() {
    within(30, other_keys_do_not_invalidate::<ShardedMap<u64, u64>>);
}

#[test]
fn snapshot_other_keys_do_not_invalidate() {
    within(30, other_keys_do_not_invalidate::<SnapshotMap<u64, u64>>);
}

#[test]
fn read_mostly_other_keys_do_not_invalidate() {
    within(30, other_keys_do_not_invalidate::<ReadMostlyMap<u64, u64>>);
}

/// An invalidated load that found nothing is not remembered as a miss: the
/// key may exist at the source by now.
fn invalidated_miss_not_cached(
    load: impl Fn(&dyn Fn() -> Option<u64>) -> Option<u64> + Sync,
    remove: impl Fn() + Sync,
) {
    let source = std::sync::Mutex::new(None);
    let source_read = Barrier::new(2);
    let written = Barrier::new(2);
    std::thread::scope(|s| {
        let loader = s.spawn(|| {
            load(&|| {
                let found = *source.lock().unwrap();
                source_read.wait();
                written.wait();
                found
            })
        });
        source_read.wait();
        *source.lock().unwrap() = Some(5);
        remove();
        written.wait();
        assert_eq!(loader.join().unwrap(), None);
    });
    assert_eq!(
        load(&|| *source.lock().unwrap()),
        Some(5),
        "a stale miss was cached"
    );
}

#[test]
fn invalidated_misses_are_not_cached() {
    within(30, || {
        let ttl = Duration::from_secs(600);
        let sharded: ShardedMap<u64, u64> = ShardedMap::builder().negative_ttl(ttl).build();
        invalidated_miss_not_cached(
            |read| {
                sharded
                    .get_or_load_optional(7, |_| Ok::<_, ()>(read()))
                    .unwrap()
            },
            || {
                sharded.remove(&7);
            },
        );
        let snapshot: SnapshotMap<u64, u64> = SnapshotMap::builder().negative_ttl(ttl).build();
        invalidated_miss_not_cached(
            |read| {
                snapshot
                    .get_or_load_optional(7, |_| Ok::<_, ()>(read()))
                    .unwrap()
            },
            || {
                snapshot.remove(&7);
            },
        );
    });
}

/// Go hazard: concurrent read and write. Values are written as (n, n) pairs in
/// one `u128`-like tuple; a reader must never see a torn or half-built value.
#[test]
fn readers_during_writes_see_complete_values() {
    let map: Arc<ShardedMap<u64, (u64, Vec<u64>)>> =
        Arc::new(ShardedMap::builder().shards(2).build());
    let snap: Arc<SnapshotMap<u64, (u64, Vec<u64>)>> = Arc::new(SnapshotMap::new());
    let stop = AtomicBool::new(false);
    // Readers that completed a pass over the keys.
    let passed = AtomicUsize::new(0);
    let complete =
        |v: &(u64, Vec<u64>)| v.1.len() as u64 == v.0 % 64 && v.1.iter().all(|x| *x == v.0);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Goes on until both readers completed a pass: on a loaded machine
            // the writer could otherwise be done before a reader got to run
            // (as in `reads_during_resize`).
            let mut n = 0;
            while n < scaled(20_000, 200) || passed.load(SeqCst) < 2 {
                let value = (n, vec![n; (n % 64) as usize]);
                map.insert(n % 16, value.clone());
                map.update(&((n + 1) % 16), |v| *v = (n, vec![n; (n % 64) as usize]));
                if n % 8 == 0 {
                    snap.insert(n % 16, value);
                }
                n += 1;
            }
            stop.store(true, SeqCst);
        });
        for _ in 0..2 {
            s.spawn(|| {
                let mut reads = 0u64;
                while !stop.load(SeqCst) {
                    for k in 0..16 {
                        if let Some(ok) = map.read(&k, complete) {
                            assert!(ok, "torn read from ShardedMap");
                        }
                        if let Some(ok) = snap.read(&k, complete) {
                            assert!(ok, "torn read from SnapshotMap");
                        }
                        reads += 1;
                    }
                    if reads == 16 {
                        passed.fetch_add(1, SeqCst);
                    }
                }
                assert!(reads > 0);
            });
        }
    });
}

/// Go hazard: stale or ghost reads while the map grows. Keys 0..N are present
/// (never removed) and keys in the removed set are gone before the readers
/// start; a writer grows the map from a tiny capacity by inserting many fresh
/// keys (resizing every shard many times) and churns a separate key range.
fn reads_during_resize<E: Engine>() {
    const PRESENT: u64 = 200;
    let map = E::fresh();
    for k in 0..PRESENT + 100 {
        map.insert(k, k);
    }
    for k in PRESENT..PRESENT + 100 {
        map.remove(&k); // deleted: must never be seen again
    }
    let stop = AtomicBool::new(false);
    let checked = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Goes on until the readers completed two passes: on a loaded machine
            // the writer could otherwise be done before a reader got to run.
            let mut i = 0;
            while i < scaled(20_000, 300) || checked.load(SeqCst) < 2 {
                map.insert(1_000_000 + i, i); // growth
                if i % 3 == 0 {
                    map.remove(&(1_000_000 + i / 2)); // churn: growth and shrink
                }
                i += 1;
            }
            stop.store(true, SeqCst);
        });
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(SeqCst) {
                    for k in 0..PRESENT {
                        assert_eq!(
                            map.get(k),
                            Some(k),
                            "{}: present key {k} missed during resize",
                            E::NAME
                        );
                    }
                    for k in PRESENT..PRESENT + 100 {
                        assert_eq!(
                            map.get(k),
                            None,
                            "{}: deleted key {k} seen during resize",
                            E::NAME
                        );
                    }
                    checked.fetch_add(1, SeqCst);
                }
            });
        }
    });
    assert!(checked.load(SeqCst) >= 2);
}

#[test]
fn sharded_no_stale_reads_while_resizing() {
    reads_during_resize::<ShardedMap<u64, u64>>();
}

#[test]
fn read_mostly_no_stale_reads_while_resizing() {
    reads_during_resize::<ReadMostlyMap<u64, u64>>();
}

#[test]
fn snapshot_no_stale_reads_while_resizing() {
    // Copy-on-write of a growing map is O(n) per write; fewer writes suffice.
    let map: SnapshotMap<u64, u64> = SnapshotMap::new();
    for k in 0..100 {
        map.insert(k, k);
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..scaled(2_000, 8) {
                map.write_batch(|tx| {
                    tx.insert(1_000_000 + i, i);
                    tx.remove(&(1_000_000 + i / 2));
                });
            }
            stop.store(true, SeqCst);
        });
        s.spawn(|| {
            while !stop.load(SeqCst) {
                let snapshot = map.snapshot();
                for k in 0..100 {
                    assert_eq!(snapshot.get(&k), Some(&k));
                    assert_eq!(map.get_cloned(&k), Some(k));
                }
            }
        });
    });
}

/// Telemetry sees contention and stays exact under concurrency.
#[test]
fn telemetry_counts_exactly_and_sees_contention() {
    let map: ShardedMap<u64, u64> = ShardedMap::builder().shards(1).build();
    map.insert(0, 0);
    // Enough that each thread's one-in-256 sampling times some operations.
    let per_thread = scaled(20_000, 300);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..per_thread {
                    map.update(&0, |v| *v += 1);
                    map.get_cloned(&0);
                }
            });
        }
    });
    let stats = map.stats();
    assert_eq!(stats.writes(), 1 + 4 * per_thread);
    assert_eq!(stats.reads(), 4 * per_thread);
    assert!(stats.hold().count() > 0);
    assert_eq!(stats.hottest_keys(1)[0].hash, map.hash_of(&0));
    // On two cores four writers on one lock collide; on one core they might not.
    eprintln!(
        "contended {} of {} ops, wait p99 {:?}",
        stats.contended(),
        stats.reads() + stats.writes(),
        stats.wait().quantile(0.99)
    );
}

//! Stress tests and the classic Go map hazards, on both engines.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{within, Engine};
use mapguard::{ShardedMap, SnapshotMap};

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
    lost_update::<ShardedMap<u64, u64>>(20_000);
}

#[test]
fn snapshot_update_loses_nothing() {
    lost_update::<SnapshotMap<u64, u64>>(2_000);
}

/// Many concurrent callers of `get_or_load` on one missing key: one load.
fn single_flight<E: Engine>(threads: usize, rounds: usize) {
    let map = Arc::new(E::fresh());
    for round in 0..rounds {
        let key = round as u64;
        let calls = AtomicUsize::new(0);
        let barrier = Barrier::new(threads);
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
    within(60, || single_flight::<ShardedMap<u64, u64>>(32, 32)); // 32 x 32 = 1024 callers
}

#[test]
fn snapshot_single_flight_1000_callers() {
    within(60, || single_flight::<SnapshotMap<u64, u64>>(32, 32));
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

/// Go hazard: cache stampede after a delete. 100 concurrent reloads, one load.
fn stampede_after_delete<E: Engine>() {
    let map = E::fresh();
    map.insert(7, 1);
    map.remove(7);
    let calls = AtomicUsize::new(0);
    let barrier = Barrier::new(100);
    std::thread::scope(|s| {
        for _ in 0..100 {
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

/// Go hazard: concurrent read and write. Values are written as (n, n) pairs in
/// one `u128`-like tuple; a reader must never see a torn or half-built value.
#[test]
fn readers_during_writes_see_complete_values() {
    let map: Arc<ShardedMap<u64, (u64, Vec<u64>)>> =
        Arc::new(ShardedMap::builder().shards(2).build());
    let snap: Arc<SnapshotMap<u64, (u64, Vec<u64>)>> = Arc::new(SnapshotMap::new());
    let stop = AtomicBool::new(false);
    let complete =
        |v: &(u64, Vec<u64>)| v.1.len() as u64 == v.0 % 64 && v.1.iter().all(|x| *x == v.0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for n in 0..20_000u64 {
                let value = (n, vec![n; (n % 64) as usize]);
                map.insert(n % 16, value.clone());
                map.update(&((n + 1) % 16), |v| *v = (n, vec![n; (n % 64) as usize]));
                if n % 8 == 0 {
                    snap.insert(n % 16, value);
                }
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
        map.remove(k); // deleted: must never be seen again
    }
    let stop = AtomicBool::new(false);
    let checked = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..20_000u64 {
                map.insert(1_000_000 + i, i); // growth
                if i % 3 == 0 {
                    map.remove(1_000_000 + i / 2); // churn: growth and shrink
                }
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
    assert!(checked.load(SeqCst) > 0);
}

#[test]
fn sharded_no_stale_reads_while_resizing() {
    reads_during_resize::<ShardedMap<u64, u64>>();
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
            for i in 0..2_000u64 {
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
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20_000 {
                    map.update(&0, |v| *v += 1);
                    map.get_cloned(&0);
                }
            });
        }
    });
    let stats = map.stats();
    assert_eq!(stats.writes(), 1 + 4 * 20_000);
    assert_eq!(stats.reads(), 4 * 20_000);
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

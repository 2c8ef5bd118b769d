//! loom models of the crate's own blocking protocols: single-flight loading
//! (join, share, abandon on panic, retry, invalidation by a concurrent write)
//! and serialized snapshot writers.
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test -p mapguard --release --test loom`.
//! Under `--cfg loom` the crate's `sync` shim swaps in loom's Mutex/Condvar, so
//! loom explores every interleaving of these primitives.
#![cfg(loom)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use mapguard::{Compute, ShardedMap, SnapshotMap};

fn sharded() -> ShardedMap<u32, u32> {
    ShardedMap::builder().shards(1).telemetry(false).build()
}

#[test]
fn two_callers_one_load_both_get_the_value() {
    loom::model(|| {
        let map = Arc::new(sharded());
        let calls = Arc::new(AtomicUsize::new(0));
        let load = |calls: Arc<AtomicUsize>| {
            move |_: &u32| {
                calls.fetch_add(1, SeqCst);
                Ok::<_, ()>(7)
            }
        };
        let t = {
            let (map, calls) = (Arc::clone(&map), Arc::clone(&calls));
            thread::spawn(move || map.get_or_load(1, load(calls)))
        };
        let mine = map.get_or_load(1, load(Arc::clone(&calls)));
        let theirs = t.join().unwrap();
        assert_eq!((mine, theirs), (Ok(7), Ok(7)));
        assert_eq!(calls.load(SeqCst), 1);
    });
}

#[test]
fn panicking_loader_hands_over_to_a_waiter() {
    loom::model(|| {
        let map = Arc::new(sharded());
        let calls = Arc::new(AtomicUsize::new(0));
        let caller = |map: Arc<ShardedMap<u32, u32>>, calls: Arc<AtomicUsize>| {
            catch_unwind(AssertUnwindSafe(move || {
                map.get_or_load(1, |_| {
                    if calls.fetch_add(1, SeqCst) == 0 {
                        panic!("first load fails");
                    }
                    Ok::<_, ()>(7)
                })
            }))
        };
        let t = {
            let (map, calls) = (Arc::clone(&map), Arc::clone(&calls));
            thread::spawn(move || caller(map, calls))
        };
        let mine = caller(Arc::clone(&map), Arc::clone(&calls));
        let theirs = t.join().unwrap();
        let outcomes = [mine, theirs];
        assert_eq!(
            outcomes.iter().filter(|r| r.is_err()).count(),
            1,
            "only the loader panics"
        );
        assert!(
            outcomes.iter().any(|r| matches!(r, Ok(Ok(7)))),
            "the other caller gets a value"
        );
        assert_eq!(calls.load(SeqCst), 2);
        assert_eq!(map.get_cloned(&1), Some(7));
    });
}

#[test]
fn errors_are_shared_or_reloaded_never_lost() {
    loom::model(|| {
        let map = Arc::new(sharded());
        let t = {
            let map = Arc::clone(&map);
            thread::spawn(move || map.get_or_load(1, |_| Err::<u32, _>("down")))
        };
        let mine = map.get_or_load(1, |_| Err::<u32, _>("down"));
        let theirs = t.join().unwrap();
        assert_eq!(mine.unwrap_err().as_ref(), &"down");
        assert_eq!(theirs.unwrap_err().as_ref(), &"down");
        assert!(map.is_empty());
    });
}

#[test]
fn snapshot_loads_once_and_writers_do_not_lose_updates() {
    loom::model(|| {
        let map: Arc<SnapshotMap<u32, u32>> = Arc::new(SnapshotMap::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let t = {
            let (map, calls) = (Arc::clone(&map), Arc::clone(&calls));
            thread::spawn(move || {
                let v = map.get_or_load(1, |_| {
                    calls.fetch_add(1, SeqCst);
                    Ok::<_, ()>(10)
                });
                map.compute(2, |n| Compute::Set(n.map_or(1, |n| n + 1)));
                v
            })
        };
        let mine = map.get_or_load(1, |_| {
            calls.fetch_add(1, SeqCst);
            Ok::<_, ()>(10)
        });
        map.compute(2, |n| Compute::Set(n.map_or(1, |n| n + 1)));
        assert_eq!(t.join().unwrap(), Ok(10));
        assert_eq!(mine, Ok(10));
        assert_eq!(calls.load(SeqCst), 1);
        assert_eq!(map.get_cloned(&2), Some(2));
    });
}

/// A loader racing a remover that first changes the source (1 -> 2) and then
/// removes the key: "update the database, then invalidate the cache". The
/// source is a Relaxed atomic, so nothing but the map's own locks orders the
/// loader's read of it against the remover: the model checks that the engine
/// lock orders the loader's registration and re-check against the writer's
/// write and invalidation. Whatever the interleaving, the loader's caller gets
/// a value the source held, and the map never ends holding the value read
/// before the remove.
fn remove_during_load<M: Send + Sync + 'static>(
    map: M,
    load: fn(&M, &AtomicU32) -> Result<u32, std::sync::Arc<()>>,
    remove: fn(&M),
    cached: fn(&M) -> Option<u32>,
) {
    let map = Arc::new(map);
    let source = Arc::new(AtomicU32::new(1));
    let loader = {
        let (map, source) = (Arc::clone(&map), Arc::clone(&source));
        thread::spawn(move || load(&map, &source))
    };
    source.store(2, Relaxed);
    remove(&map);
    let loaded = loader.join().unwrap();
    assert!(matches!(loaded, Ok(1 | 2)), "loaded {loaded:?}");
    let cached = cached(&map);
    assert!(
        matches!(cached, None | Some(2)),
        "the map kept {cached:?}, loaded before the remove"
    );
}

#[test]
fn sharded_remove_during_load_leaves_no_stale_value() {
    loom::model(|| {
        remove_during_load(
            sharded(),
            |map, source| map.get_or_load(1, |_| Ok(source.load(Relaxed))),
            |map| {
                map.remove(&1);
            },
            |map| map.get_cloned(&1),
        )
    });
}

#[test]
fn snapshot_remove_during_load_leaves_no_stale_value() {
    loom::model(|| {
        remove_during_load(
            SnapshotMap::<u32, u32>::new(),
            |map, source| map.get_or_load(1, |_| Ok(source.load(Relaxed))),
            |map| {
                map.remove(&1);
            },
            |map| map.get_cloned(&1),
        )
    });
}

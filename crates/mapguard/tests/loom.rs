//! loom models of the crate's own protocols: single-flight loading (join,
//! share, abandon on panic, retry, invalidation by a concurrent write),
//! serialized snapshot writers, and the read-mostly engine's publication and
//! incremental migration (lock-free readers racing movers and writers).
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test -p mapguard --release --test loom`.
//! Under `--cfg loom` the crate's `sync` shim swaps in loom's Mutex/Condvar, so
//! loom explores every interleaving of these primitives.
#![cfg(loom)]

use std::hash::BuildHasher;
use std::panic::{catch_unwind, AssertUnwindSafe};

use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use mapguard::{Compute, ReadMostlyMap, ShardedMap, SnapshotMap};

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

type FixedMap = ReadMostlyMap<u32, u32, foldhash::fast::FixedState>;

/// A one-shard read-mostly map in the middle of a migration: keys 1..=6 still
/// live in the old 8-slot table, key 7 already in the new one (inserting it
/// needed room and started the migration). The hasher is fixed: slot positions
/// decide which loom atomics an operation touches, and loom replays schedules
/// only for a model that does the same operations every execution.
fn read_mostly_mid_migration() -> FixedMap {
    let map = ReadMostlyMap::builder()
        .shards(1)
        .telemetry(false)
        .hasher(foldhash::fast::FixedState::with_seed(7))
        .build();
    for k in 1..=7 {
        map.insert(k, k * 10);
    }
    map
}

/// Explores interleavings with up to `bound` preemptions (the full space of
/// four threads over a table's worth of atomics is too large to finish; two
/// preemptions take under a minute and catch a mover that marks a slot before
/// publishing its entry in the new table).
///
/// The model runs on a loom thread with a roomy stack: loom's default (32 KiB)
/// overflows (a bare SIGSEGV) in the writer's paths over loom atomics.
fn bounded(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let f = std::sync::Arc::new(f);
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    let counted = std::sync::Arc::clone(&runs);
    builder.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let f = std::sync::Arc::clone(&f);
        spawn_roomy(move || f()).join().unwrap();
    });
    let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("explored {runs} executions");
    // One execution means loom saw no interleaving to try: a model that does
    // different operations each run (say, a randomly seeded hasher) or whose
    // threads never overlap. Either way it would check nothing.
    assert!(runs > 1, "loom explored a single execution");
}

/// A loom thread with the roomy stack the read-mostly models need.
fn spawn_roomy<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    thread::Builder::new().stack_size(1 << 20).spawn(f).unwrap()
}

/// A reader racing a mover and a writer: one writer's next write moves every
/// old slot and completes the migration, another updates a key and removes
/// one. The reader never misses a present key, never sees a removed key come
/// back, and never sees a value go back in time.
#[test]
fn read_mostly_reader_racing_migration_and_writes() {
    bounded(2, || {
        let map = Arc::new(read_mostly_mid_migration());
        let mover = {
            let map = Arc::clone(&map);
            spawn_roomy(move || {
                map.insert(8, 80); // moves the old slots, completes the migration
            })
        };
        let writer = {
            let map = Arc::clone(&map);
            spawn_roomy(move || {
                map.update(&1, |v| *v = 11);
                map.remove(&2);
            })
        };
        let reader = {
            let map = Arc::clone(&map);
            spawn_roomy(move || {
                let first = (map.get_cloned(&1), map.get_cloned(&2));
                let present = (map.get_cloned(&3), map.get_cloned(&7));
                let second = (map.get_cloned(&1), map.get_cloned(&2));
                assert_eq!(present, (Some(30), Some(70)), "a present key was missed");
                assert!(matches!(first.0, Some(10 | 11)) && matches!(second.0, Some(10 | 11)));
                assert!(
                    !(first.0 == Some(11) && second.0 == Some(10)),
                    "stale read after a newer one"
                );
                assert!(
                    !(first.1.is_none() && second.1.is_some()),
                    "removed key reappeared"
                );
            })
        };
        reader.join().unwrap();
        mover.join().unwrap();
        writer.join().unwrap();
        assert_eq!(map.get_cloned(&1), Some(11));
        assert_eq!(map.get_cloned(&2), None);
        assert_eq!(map.get_cloned(&8), Some(80));
        assert_eq!(map.len(), 7);
    });
}

/// Publication: a reader that sees a new entry sees it whole, and once a
/// write has completed (joined), every later read returns it, also when the
/// write had to move the key out of the old table first.
#[test]
fn read_mostly_write_then_read_after_join() {
    bounded(2, || {
        let map = Arc::new(read_mostly_mid_migration());
        let writer = {
            let map = Arc::clone(&map);
            spawn_roomy(move || {
                map.insert(3, 33); // moves key 3 first, then replaces it in the new table
            })
        };
        let reader = {
            let map = Arc::clone(&map);
            spawn_roomy(move || map.get_cloned(&3))
        };
        let during = reader.join().unwrap();
        assert!(matches!(during, Some(30 | 33)), "{during:?}");
        writer.join().unwrap();
        assert_eq!(map.get_cloned(&3), Some(33));
        assert_eq!(map.get_cloned(&4), Some(40));
    });
}

/// A replacement that must leave its key's group: the group is full, so the
/// new entry goes to the next one, published there before the old slot is
/// marked dead. A reader racing it never misses the key (as it would if the
/// old slot died first) and never sees the value go back.
#[test]
fn read_mostly_reader_racing_a_replacement_into_the_next_group() {
    let hasher = foldhash::fast::FixedState::with_seed(7);
    // Eight keys whose home is group 0 of a four-group (32-slot) table.
    let keys: Vec<u32> = (0..)
        .filter(|k| hasher.hash_one(k) & 3 == 0)
        .take(8)
        .collect();
    let full_group = move || {
        let map: FixedMap = ReadMostlyMap::builder()
            .shards(1)
            .capacity(20)
            .telemetry(false)
            .hasher(hasher.clone())
            .build();
        for &k in &keys {
            map.insert(k, 1);
        }
        assert_eq!(map.capacity(), 24, "a 32-slot table");
        (map, keys[0])
    };
    bounded(3, move || {
        let (map, key) = full_group();
        let map = Arc::new(map);
        let writer = {
            let map = Arc::clone(&map);
            spawn_roomy(move || map.insert(key, 2))
        };
        let reader = {
            let map = Arc::clone(&map);
            spawn_roomy(move || (map.get_cloned(&key), map.get_cloned(&key)))
        };
        let (first, second) = reader.join().unwrap();
        assert!(
            matches!(first, Some(1 | 2)) && matches!(second, Some(1 | 2)),
            "a present key was missed: {first:?} {second:?}"
        );
        assert!(
            !(first == Some(2) && second == Some(1)),
            "stale read after a newer one"
        );
        assert_eq!(writer.join().unwrap(), Some(1));
        assert_eq!(map.get_cloned(&key), Some(2));
    });
}

/// The epoch protocol (`read_mostly/epoch.rs`, with real fences in place of
/// membarrier: the form the asymmetric barrier stands in for): a reader that
/// pins twice, loading a shared pointer each time, races a writer that
/// replaces the object and stamps it, and another writer that advances the
/// epoch (the unlinker does not advance it itself: in the map, other shards'
/// writers do); the unlinker "frees" the object (a write loom would report as
/// racing any read not ordered before it) once the stamp expired. Removing
/// the reader's fence in `enter`, the unlinker's in `stamp`, the heavy barrier
/// in `advance`, or one of the three epochs of grace fails this.
#[test]
fn epoch_never_frees_what_a_reader_holds() {
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicPtr, Ordering::AcqRel, Ordering::Acquire};
    use mapguard::LoomEpochDomain;

    bounded(4, || {
        let domain = Arc::new(LoomEpochDomain::new());
        let first = Box::into_raw(Box::new(UnsafeCell::new(1u32)));
        let slot = Arc::new(AtomicPtr::new(first));
        let reader = {
            let (domain, slot) = (Arc::clone(&domain), Arc::clone(&slot));
            thread::spawn(move || {
                let record = domain.register();
                let mut seen = Vec::new();
                for _ in 0..2 {
                    domain.enter(record);
                    let p = slot.load(Acquire);
                    // SAFETY: loaded under `enter`; the model checks the claim.
                    seen.push(unsafe { (*p).with(|v| *v) });
                    domain.leave(record);
                }
                domain.release(record);
                seen
            })
        };
        // Other shards' writers advancing the epoch, enough for the stamp to
        // expire.
        let advancer = {
            let domain = Arc::clone(&domain);
            thread::spawn(move || {
                for _ in 0..3 {
                    domain.advance();
                }
            })
        };
        let second = Box::into_raw(Box::new(UnsafeCell::new(2u32)));
        let old = slot.swap(second, AcqRel);
        let stamp = domain.stamp();
        advancer.join().unwrap();
        if domain.expired(stamp) {
            // SAFETY: the stamp expired: no reader can hold `old` now.
            unsafe { (*old).with_mut(|v| *v = 0) };
        }
        let seen = reader.join().unwrap();
        assert!(
            seen.iter().all(|&v| v == 1 || v == 2),
            "read a freed object: {seen:?}"
        );
        // SAFETY: every thread is done.
        unsafe {
            drop(Box::from_raw(old));
            drop(Box::from_raw(slot.load(Acquire)));
        }
    });
}

//! Hunting ghost and stale reads in the read-mostly engine while its tables
//! migrate without pause: continuous growth and shrink under concurrent readers.
//!
//! The writer keeps a set of present keys whose values only increase, and after
//! each round of updates publishes the round it finished (`committed`). A
//! reader that loads `committed = c` and then reads a present key must see a
//! value from round `c` or later (anything older is a stale read), and never a
//! miss; keys removed before the readers started must never reappear (ghosts).
//! Meanwhile the writer inserts and removes thousands of other keys so that
//! every table grows and shrinks again and again, each time by incremental
//! migration.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use common::{scaled, within};
use mapguard::ReadMostlyMap;

const PRESENT: u64 = 64;
/// Fresh keys each round inserts, then removes again (fewer under Miri).
const GROWTH: u64 = scaled(300, 20);
const DELETED: std::ops::Range<u64> = 10_000..10_064;

fn hunt(shards: usize, rounds: u64) {
    let map: ReadMostlyMap<u64, u64> = ReadMostlyMap::builder().shards(shards).build();
    for k in 0..PRESENT {
        map.insert(k, 0);
    }
    for k in DELETED {
        map.insert(k, u64::MAX);
    }
    for k in DELETED {
        map.remove(&k);
    }
    let committed = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let checks = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 1..=rounds {
                // Growth: a few hundred fresh keys, then shrink them away again.
                let base = 1_000_000 + round * 1_000;
                for k in base..base + GROWTH {
                    map.insert(k, k);
                }
                for k in 0..PRESENT {
                    map.update(&k, |v| *v = round);
                }
                committed.store(round, SeqCst);
                for k in base..base + GROWTH {
                    map.remove(&k);
                }
            }
            stop.store(true, SeqCst);
        });
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(SeqCst) {
                    let floor = committed.load(SeqCst);
                    for k in 0..PRESENT {
                        match map.get_cloned(&k) {
                            None => panic!("present key {k} missed during a migration"),
                            Some(v) => assert!(
                                v >= floor,
                                "stale read: key {k} = round {v} after round {floor} was committed"
                            ),
                        }
                    }
                    for k in DELETED {
                        assert_eq!(map.get_cloned(&k), None, "deleted key {k} reappeared");
                    }
                    checks.fetch_add(1, SeqCst);
                }
            });
        }
    });
    assert!(checks.load(SeqCst) > 0, "the readers never ran");
    assert_eq!(map.len() as u64, PRESENT);
    for k in 0..PRESENT {
        assert_eq!(map.get_cloned(&k), Some(rounds));
    }
}

#[test]
fn no_ghost_or_stale_reads_with_one_shard() {
    within(120, || hunt(1, scaled(300, 4)));
}

#[test]
fn no_ghost_or_stale_reads_with_many_shards() {
    within(120, || hunt(8, scaled(300, 4)));
}

/// Iteration and `len` during migrations: every present key exactly once.
#[test]
fn iteration_sees_each_present_key_once_during_migrations() {
    within(120, || {
        let map: ReadMostlyMap<u64, u64> = ReadMostlyMap::builder().shards(2).build();
        for k in 0..PRESENT {
            map.insert(k, k);
        }
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for round in 0..scaled(200, 4) {
                    let base = 1_000_000 + round * 1_000;
                    for k in base..base + GROWTH {
                        map.insert(k, k);
                    }
                    for k in base..base + GROWTH {
                        map.remove(&k);
                    }
                }
                stop.store(true, SeqCst);
            });
            s.spawn(|| {
                while !stop.load(SeqCst) {
                    let mut present: Vec<u64> = map
                        .iter()
                        .map(|(k, _)| k)
                        .filter(|&k| k < PRESENT)
                        .collect();
                    present.sort_unstable();
                    assert_eq!(present, (0..PRESENT).collect::<Vec<_>>());
                }
            });
        });
    });
}

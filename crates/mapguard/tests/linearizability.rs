//! Linearizability: concurrent histories recorded from each engine, checked with
//! a Wing–Gong search.
//!
//! A map is linearizable iff each key's history is linearizable as a register
//! (the keys are independent objects; locality of linearizability), so the
//! histories are split per key and each is searched separately, which keeps the
//! search tiny. Invocation and response times come from one shared atomic
//! counter (a total order consistent with real time).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

use common::Engine;
use mapguard::{Compute, ReadMostlyMap, ShardedMap, SnapshotMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Get,
    Insert(u64),
    Remove,
    /// `update(|v| *v += d)`, returning the new value.
    UpdateAdd(u64),
    /// `compute(|v| Set(v.unwrap_or(0) + 1))`, returning the old value.
    ComputeIncr,
    GetOrInsert(u64),
}

#[derive(Debug, Clone, Copy)]
struct Event {
    key: u64,
    call: Call,
    /// What the operation returned.
    ret: Option<u64>,
    invoked: u64,
    responded: u64,
}

/// The register model: applies `call` to `state`, returning the new state if the
/// observed return value is possible.
fn step(state: Option<u64>, call: Call, ret: Option<u64>) -> Option<Option<u64>> {
    let (expected, next) = match call {
        Call::Get => (state, state),
        Call::Insert(v) => (state, Some(v)),
        Call::Remove => (state, None),
        Call::UpdateAdd(d) => match state {
            Some(v) => (Some(v + d), Some(v + d)),
            None => (None, None),
        },
        Call::ComputeIncr => (state, Some(state.unwrap_or(0) + 1)),
        Call::GetOrInsert(v) => match state {
            Some(s) => (Some(s), Some(s)),
            None => (Some(v), Some(v)),
        },
    };
    (expected == ret).then_some(next)
}

/// Wing–Gong: is there a total order of `events`, respecting real-time order
/// (an event that responded before another was invoked comes first), in which
/// every return value is what the model gives? Memoises failed (done-set, state)
/// pairs, so repeated sub-searches are skipped.
fn linearizable(events: &[Event]) -> bool {
    assert!(
        events.len() <= 64,
        "bitmask search supports 64 events per key"
    );
    fn search(
        events: &[Event],
        done: u64,
        state: Option<u64>,
        failed: &mut HashSet<(u64, Option<u64>)>,
    ) -> bool {
        if done.count_ones() as usize == events.len() {
            return true;
        }
        if failed.contains(&(done, state)) {
            return false;
        }
        // An event may go next only if no pending event responded before it was invoked.
        let earliest_response = events
            .iter()
            .enumerate()
            .filter(|(i, _)| done & (1 << i) == 0)
            .map(|(_, e)| e.responded)
            .min()
            .expect("some pending");
        for (i, e) in events.iter().enumerate() {
            if done & (1 << i) != 0 || e.invoked > earliest_response {
                continue;
            }
            if let Some(next) = step(state, e.call, e.ret) {
                if search(events, done | (1 << i), next, failed) {
                    return true;
                }
            }
        }
        failed.insert((done, state));
        false
    }
    search(events, 0, None, &mut HashSet::new())
}

/// Records one history of `threads` x `ops_per_thread` random calls on keys
/// `0..keys`. With `resizing`, one more thread inserts and removes other keys
/// all the while, so the tables grow, shrink and migrate under the recorded calls.
fn record<E: Engine>(
    threads: usize,
    ops_per_thread: usize,
    keys: u64,
    seed: u64,
    resizing: bool,
) -> Vec<Event> {
    let map = E::fresh();
    let clock = AtomicU64::new(0);
    // A start gate the threads spin at (yielding, for a thread still waiting
    // for a CPU): a sleeping barrier wakes them one by one, and on a loaded
    // 2-CPU machine they then ran their few operations one after another in
    // every history, failing the overlap check below.
    let arrived = AtomicUsize::new(0);
    let recording = AtomicU64::new(threads as u64);
    let mut all = Vec::new();
    std::thread::scope(|s| {
        if resizing {
            let (map, recording) = (&map, &recording);
            s.spawn(move || {
                let mut round = 0u64;
                while recording.load(SeqCst) > 0 {
                    // Grow to 64 extra keys, then remove them all: every table
                    // migrates up and down again.
                    let base = 1_000 + (round % 4) * 100;
                    for k in base..base + 64 {
                        map.insert(k, k);
                    }
                    for k in base..base + 64 {
                        map.remove(&k);
                    }
                    round += 1;
                }
            });
        }
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (map, clock, arrived, recording) = (&map, &clock, &arrived, &recording);
                s.spawn(move || {
                    // xorshift, seeded per thread and history.
                    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        ^ (t as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                    let mut rand = move |n: u64| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x % n
                    };
                    let mut events = Vec::with_capacity(ops_per_thread);
                    arrived.fetch_add(1, SeqCst);
                    while arrived.load(SeqCst) < threads {
                        std::thread::yield_now();
                    }
                    for i in 0..ops_per_thread {
                        let key = rand(keys);
                        // Written values are unique per history, so a read pins its writer.
                        let unique = 1_000_000 * (t as u64 + 1) + i as u64 * 10;
                        let call = match rand(6) {
                            0 => Call::Get,
                            1 => Call::Insert(unique),
                            2 => Call::Remove,
                            3 => Call::UpdateAdd(1 + rand(3)),
                            4 => Call::ComputeIncr,
                            _ => Call::GetOrInsert(unique),
                        };
                        let invoked = clock.fetch_add(1, SeqCst);
                        let ret = match call {
                            Call::Get => map.get(key),
                            Call::Insert(v) => map.insert(key, v),
                            Call::Remove => map.remove(&key),
                            Call::UpdateAdd(d) => map.update_add(key, d),
                            Call::ComputeIncr => {
                                map.compute(key, |v| Compute::Set(v.copied().unwrap_or(0) + 1))
                            }
                            Call::GetOrInsert(v) => Some(map.get_or_insert(key, v)),
                        };
                        let responded = clock.fetch_add(1, SeqCst);
                        events.push(Event {
                            key,
                            call,
                            ret,
                            invoked,
                            responded,
                        });
                    }
                    recording.fetch_sub(1, SeqCst);
                    events
                })
            })
            .collect();
        for h in handles {
            all.extend(h.join().expect("worker"));
        }
    });
    all
}

fn check_many<E: Engine>(histories: u64, resizing: bool) {
    let mut overlapping = 0;
    // More histories while none had overlapping operations yet: on a loaded
    // machine the threads may get a CPU one at a time for a while.
    let mut seed = 0;
    while seed < histories || (overlapping == 0 && seed < 20 * histories) {
        let events = record::<E>(3, 10, 2, seed, resizing);
        overlapping += events
            .iter()
            .enumerate()
            .flat_map(|(i, a)| events[i + 1..].iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.invoked < b.responded && b.invoked < a.responded)
            .count();
        for key in 0..2 {
            let per_key: Vec<Event> = events.iter().copied().filter(|e| e.key == key).collect();
            assert!(
                linearizable(&per_key),
                "{}: history {seed}, key {key} is not linearizable:\n{per_key:#?}",
                E::NAME
            );
        }
        seed += 1;
    }
    // Otherwise the run only checked sequential histories.
    assert!(
        overlapping > 0,
        "{}: no two operations ever overlapped",
        E::NAME
    );
}

#[test]
fn sharded_map_histories_are_linearizable() {
    check_many::<ShardedMap<u64, u64>>(common::scaled(300, 8), false);
}

#[test]
fn snapshot_map_histories_are_linearizable() {
    check_many::<SnapshotMap<u64, u64>>(common::scaled(300, 8), false);
}

#[test]
fn read_mostly_map_histories_are_linearizable() {
    check_many::<ReadMostlyMap<u64, u64>>(common::scaled(300, 8), false);
}

/// The same, with every table growing, shrinking and migrating under the
/// recorded calls, thousands of times.
#[test]
fn read_mostly_map_histories_are_linearizable_while_resizing() {
    check_many::<ReadMostlyMap<u64, u64>>(common::scaled(2_000, 16), true);
}

#[test]
fn sharded_map_histories_are_linearizable_while_resizing() {
    check_many::<ShardedMap<u64, u64>>(common::scaled(300, 8), true);
}

fn ev(call: Call, ret: Option<u64>, invoked: u64, responded: u64) -> Event {
    Event {
        key: 0,
        call,
        ret,
        invoked,
        responded,
    }
}

/// The checker must be able to say no, or the tests above prove nothing.
#[test]
fn checker_rejects_non_linearizable_histories() {
    // A read after a completed insert that misses it (a stale read).
    assert!(!linearizable(&[
        ev(Call::Insert(1), None, 0, 1),
        ev(Call::Get, None, 2, 3)
    ]));
    // Two increments that both saw the same old value (a lost update).
    assert!(!linearizable(&[
        ev(Call::Insert(5), None, 0, 1),
        ev(Call::UpdateAdd(1), Some(6), 2, 5),
        ev(Call::UpdateAdd(1), Some(6), 3, 4),
    ]));
    // A read of a value that was removed before the read began (a ghost read).
    assert!(!linearizable(&[
        ev(Call::Insert(7), None, 0, 1),
        ev(Call::Remove, Some(7), 2, 3),
        ev(Call::Get, Some(7), 4, 5),
    ]));
    // Two get-or-inserts on a missing key that both inserted their own value.
    assert!(!linearizable(&[
        ev(Call::GetOrInsert(1), Some(1), 0, 3),
        ev(Call::GetOrInsert(2), Some(2), 1, 2),
    ]));
}

#[test]
fn checker_accepts_overlapping_orders() {
    // A read overlapping an insert may see either state.
    assert!(linearizable(&[
        ev(Call::Insert(1), None, 0, 5),
        ev(Call::Get, Some(1), 1, 2)
    ]));
    assert!(linearizable(&[
        ev(Call::Insert(1), None, 0, 5),
        ev(Call::Get, None, 1, 2)
    ]));
    // Concurrent increments in the order opposite to their invocations.
    assert!(linearizable(&[
        ev(Call::ComputeIncr, Some(1), 0, 9),
        ev(Call::ComputeIncr, None, 1, 8),
    ]));
}

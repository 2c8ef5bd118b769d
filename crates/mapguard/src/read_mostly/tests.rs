//! White-box tests of the migration protocol (the black-box ones, shared with
//! the other engines, are in `tests/`).

use super::shard::migrating;
use super::*;

/// Scales a test's size down under Miri, which runs ~1000x slower.
const fn sized(n: u64) -> u64 {
    if cfg!(miri) {
        n / 20
    } else {
        n
    }
}

fn one_shard() -> ReadMostlyMap<u64, u64> {
    ReadMostlyMap::builder().shards(1).build()
}

#[test]
fn a_growing_table_migrates_incrementally_and_every_key_stays_readable() {
    let map = one_shard();
    let mut saw_migration = false;
    let n = sized(5_000);
    for k in 0..n {
        map.insert(k, k * 10);
        saw_migration |= migrating(&map.shards[0]);
        // Every key written so far is visible with its latest value, mid-migration too.
        if k % 97 == 0 {
            for j in 0..=k {
                assert_eq!(
                    map.get_cloned(&j),
                    Some(j * 10),
                    "key {j} after inserting {k}"
                );
            }
        }
    }
    assert!(
        saw_migration,
        "growth happened without an incremental migration"
    );
    assert_eq!(map.len() as u64, n);
    assert_eq!(map.iter().count() as u64, n);
}

#[test]
fn writes_during_a_migration_land_in_the_new_table_only() {
    let map = one_shard();
    for k in 0..sized(1_000) {
        map.insert(k, 0);
    }
    // Drive inserts until a migration is in progress, then write old keys.
    let mut k = sized(1_000);
    while !migrating(&map.shards[0]) {
        map.insert(k, 0);
        k += 1;
    }
    for j in 0..k {
        map.update(&j, |v| *v = j + 1);
        assert_eq!(map.get_cloned(&j), Some(j + 1));
    }
    for j in (0..k).step_by(2) {
        assert_eq!(map.remove(&j), Some(j + 1));
        assert_eq!(map.get_cloned(&j), None, "removed key {j} reappeared");
    }
    for j in 0..k {
        let expected = (j % 2 == 1).then_some(j + 1);
        assert_eq!(map.get_cloned(&j), expected);
    }
    assert_eq!(map.len() as u64, k / 2);
}

#[test]
fn an_entry_of_two_words_takes_three() {
    // Key, value and version: 24 bytes a slot (every slot has an entry's room).
    assert_eq!(std::mem::size_of::<table::Entry<u64, u64>>(), 24);
}

#[test]
fn a_growth_doubles_the_table() {
    let map = one_shard();
    let mut k = 0;
    let mut capacities = vec![map.capacity()];
    while capacities.len() < 8 {
        map.insert(k, k);
        k += 1;
        if map.capacity() != *capacities.last().unwrap() {
            capacities.push(map.capacity());
        }
    }
    for pair in capacities.windows(2) {
        assert_eq!(pair[1], 2 * pair[0], "growths: {capacities:?}");
    }
}

/// After a bulk load that left the table at its growth threshold,
/// `shrink_to_fit` grows it, so the next writes start no migration.
#[test]
fn shrink_to_fit_gives_a_table_at_its_threshold_room() {
    let map = one_shard();
    let mut k = 0;
    // Fill up to one key below a growth threshold (with no removals, every
    // key used one slot).
    while map.capacity() < 256 {
        map.insert(k, k);
        k += 1;
    }
    let threshold = map.capacity() as u64;
    while k < threshold - 1 {
        map.insert(k, k);
        k += 1;
    }
    map.shrink_to_fit();
    assert!(
        map.capacity() as u64 > threshold,
        "still {}",
        map.capacity()
    );
    map.insert(k, k);
    assert!(
        !migrating(&map.shards[0]),
        "the next insert started a growth"
    );
    for j in 0..=k {
        assert_eq!(map.get_cloned(&j), Some(j));
    }
}

#[test]
fn mass_removal_shrinks_the_table() {
    let map = one_shard();
    let n = sized(10_000);
    for k in 0..n {
        map.insert(k, k);
    }
    let grown = map.capacity();
    for k in 0..n - 10 {
        map.remove(&k);
    }
    // Shrinking is a migration too: let a few writes finish it.
    for _ in 0..sized(2_000) {
        map.insert(1_000_000, 0);
    }
    assert!(map.capacity() < grown / 8, "{} vs {grown}", map.capacity());
    for k in n - 10..n {
        assert_eq!(map.get_cloned(&k), Some(k));
    }
}

#[test]
fn clear_mid_migration_frees_both_tables_and_keeps_working() {
    let map = one_shard();
    let mut k = 0;
    while !migrating(&map.shards[0]) || k < 100 {
        map.insert(k, k);
        k += 1;
    }
    map.clear();
    assert!(map.is_empty());
    assert_eq!(map.get_cloned(&1), None);
    map.insert(1, 2);
    assert_eq!(map.get_cloned(&1), Some(2));
}

#[test]
fn values_are_dropped_exactly_once() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    static LIVE: AtomicUsize = AtomicUsize::new(0);
    struct Counted(#[allow(dead_code)] u64);
    impl Clone for Counted {
        fn clone(&self) -> Self {
            LIVE.fetch_add(1, SeqCst);
            Counted(self.0)
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, SeqCst);
        }
    }
    fn counted(v: u64) -> Counted {
        LIVE.fetch_add(1, SeqCst);
        Counted(v)
    }
    {
        let map: ReadMostlyMap<u64, Counted> = ReadMostlyMap::builder().shards(2).build();
        let n = sized(3_000);
        for k in 0..n {
            map.insert(k, counted(k));
        }
        for k in 0..n {
            map.update(&k, |_| ());
        }
        for k in (0..n).step_by(3) {
            drop(map.remove(&k));
        }
        map.retain(|k, _| k % 2 == 0);
        drop(map.insert(5, counted(5)));
    }
    assert_eq!(LIVE.load(SeqCst), 0, "values leaked or dropped twice");
}

/// Readers racing a writer that grows, updates and shrinks: under Miri this
/// checks the unsafe code for data races and use-after-free (entries and
/// tables retired while readers hold them), natively it is one more hunt.
#[test]
fn readers_racing_migrations_read_only_committed_entries() {
    let map = one_shard();
    let present = 8u64;
    for k in 0..present {
        map.insert(k, 0);
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 1..=sized(400) {
                let base = 1_000 + round * 100;
                for k in base..base + 20 {
                    map.insert(k, k);
                }
                for k in 0..present {
                    map.update(&k, |v| *v = round);
                }
                for k in base..base + 20 {
                    map.remove(&k);
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        s.spawn(|| {
            let mut last = [0u64; 8];
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for k in 0..present {
                    let v = map.get_cloned(&k).expect("present key missed");
                    assert!(v >= last[k as usize], "key {k} went back in time");
                    last[k as usize] = v;
                }
            }
        });
    });
}

/// Replaced values are freed while the map lives, once no reader can hold
/// them: garbage does not pile up. (Other tests' readers pin the same
/// process-wide epoch, so this waits for the count to drop instead of
/// expecting it at once.)
#[test]
fn replaced_values_are_freed_while_the_map_lives() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    static LIVE: AtomicUsize = AtomicUsize::new(0);
    struct Counted;
    impl Counted {
        fn new() -> Self {
            LIVE.fetch_add(1, SeqCst);
            Counted
        }
    }
    impl Clone for Counted {
        fn clone(&self) -> Self {
            Counted::new()
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, SeqCst);
        }
    }
    let map: ReadMostlyMap<u64, Counted> = ReadMostlyMap::builder().shards(1).build();
    let keys = 64;
    let writes = sized(20_000);
    for _ in 0..writes / keys {
        for k in 0..keys {
            drop(map.insert(k, Counted::new()));
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // Dead values wait in their slots for three advances of the epoch, each
    // after at most ADVANCE_EVERY slots or tables this thread unlinked, plus
    // the current table's dead ones.
    let bound = keys as usize + 4 * super::reclaim::ADVANCE_EVERY;
    while LIVE.load(SeqCst) > bound && std::time::Instant::now() < deadline {
        for k in 0..keys {
            drop(map.insert(k, Counted::new()));
        }
    }
    let live = LIVE.load(SeqCst);
    assert!(
        live <= bound,
        "{live} values alive for {keys} keys after {writes} writes"
    );
    drop(map);
    assert_eq!(LIVE.load(SeqCst), 0);
}

/// What a pinned read returned stays as it was, however the map changes while
/// the thread stays pinned: its key replaced and removed, its table migrated to
/// a bigger one and shrunk again, by another thread and by the pinned one
/// (Miri checks that nothing it points to is freed or reused meanwhile; a
/// reused slot would also show the new value through the old reference).
#[test]
fn a_pinned_reads_values_outlive_replacement_removal_and_migration() {
    let map: ReadMostlyMap<u64, String> = ReadMostlyMap::builder().shards(1).build();
    let (held_keys, churn) = (sized(200), sized(4_000));
    for k in 0..held_keys {
        map.insert(k, format!("v{k}"));
    }
    let capacity = map.capacity();
    let pinned = map.pin();
    let held: Vec<&String> = (0..held_keys).map(|k| pinned.get(&k).unwrap()).collect();
    let grown = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut grown = 0;
            for round in 0..3 {
                for k in 0..churn {
                    map.insert(k, format!("r{round}-{k}"));
                }
                grown = grown.max(map.capacity());
                for k in 0..churn {
                    map.remove(&k);
                }
            }
            grown
        });
        // The pinned thread writes too: a writer never waits for readers.
        for k in 0..held_keys {
            map.insert(k, format!("mine{k}"));
        }
        writer.join().unwrap()
    });
    assert!(
        grown > capacity,
        "no growth while pinned ({capacity} -> {grown})"
    );
    for (k, value) in held.iter().enumerate() {
        assert_eq!(**value, format!("v{k}"), "key {k}");
    }
    assert_eq!(pinned.get(&0), None);
    map.insert(0, "new".to_string());
    assert_eq!(pinned.get(&0).map(String::as_str), Some("new"));
    drop(pinned);
}

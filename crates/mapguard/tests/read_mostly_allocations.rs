//! ReadMostlyMap's use of memory: entries live in their table's slots, so
//! steady replacing and removing allocates nothing per write, whatever the
//! types (counted per thread by a counting global allocator); a growing
//! table's new memory is mapped in a page per
//! write, not all in one, and a dropped map's tables are reused by the next
//! (counted in page faults); a shard that retired nothing holds no room for
//! garbage. A test binary of its own, so that no
//! other test's threads hold the epoch back or fault pages.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::scaled;
use mapguard::ReadMostlyMap;

struct Counting;

std::thread_local! {
    /// This thread's allocations (a const `Cell`: using it allocates nothing).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    /// The bytes they asked for.
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        let _ = BYTES.try_with(|n| n.set(n.get() + layout.size()));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations `f` made on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// Bytes `f` allocated on this thread (frees not deducted).
fn bytes_allocated(f: impl FnOnce()) -> usize {
    let before = BYTES.with(Cell::get);
    f();
    BYTES.with(Cell::get) - before
}

#[test]
fn a_shard_that_retired_nothing_holds_no_room_for_garbage() {
    // A map has many shards; each once reserved room for a thousand retired
    // pointers (8 KiB) up front: 597,144 bytes here, 72,856 without.
    let shards = 64;
    let bytes = bytes_allocated(|| {
        let map: ReadMostlyMap<u64, u64> = ReadMostlyMap::builder().shards(shards).build();
        map.insert(1, 1);
    });
    assert!(
        bytes < shards * 2048,
        "{bytes} bytes allocated for an empty map of {shards} shards"
    );
}

/// Replaces and removes `writes` times over a one-shard map of `keys` keys;
/// returns the allocations they made.
fn steady_writes<V: Clone>(value: impl Fn(u64) -> V, keys: u64, writes: u64) -> usize {
    let map: ReadMostlyMap<u64, V> = ReadMostlyMap::builder().shards(1).build();
    for k in 0..keys {
        map.insert(k, value(k));
    }
    // Warm up: the first dead slots become reusable.
    for _ in 0..8 {
        for k in 0..keys {
            map.insert(k, value(k));
        }
    }
    allocations(|| {
        for i in 0..writes {
            let k = i % keys;
            if i % 3 == 0 {
                map.remove(&k);
            } else {
                map.insert(k, value(k));
            }
        }
    })
}

#[test]
fn writes_allocate_no_entries() {
    let (keys, writes) = (256, scaled(20_000, 2_000));
    // What remains is a bag's vector per 64 retired slots and the odd resize;
    // an allocation per new entry would be ~`writes`.
    for (made, types) in [
        (steady_writes(|k| k, keys, writes), "u64 values"),
        // With a destructor (an empty `String` allocates nothing itself).
        (
            steady_writes(|_| String::new(), keys, writes),
            "String values",
        ),
    ] {
        assert!(
            made < writes as usize / 8,
            "{made} allocations for {writes} writes of {types}"
        );
    }
}

/// Minor page faults this thread took so far.
#[cfg(all(target_os = "linux", not(miri)))]
fn minor_faults() -> i64 {
    // SAFETY: `getrusage` fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
        usage
    };
    usage.ru_minflt
}

#[cfg(all(target_os = "linux", not(miri)))]
#[test]
fn a_growing_table_is_mapped_in_a_page_per_write() {
    let map: ReadMostlyMap<u64, u64> = ReadMostlyMap::builder().shards(1).build();
    // Up to a table whose successor is big (64k slots, 512 KiB), then to 1,000
    // keys below its growth threshold (before the new table is prepared).
    let mut next = 0u64;
    while map.capacity() < 8192 {
        map.insert(next, next);
        next += 1;
    }
    let threshold = map.capacity() as u64;
    while next < threshold - 1_000 {
        map.insert(next, next);
        next += 1;
    }
    // Across the preparation, the growth and the whole migration after it.
    let mut worst = (0, 0);
    for _ in 0..4_000 {
        let before = minor_faults();
        map.insert(next, next);
        worst = worst.max((minor_faults() - before, next));
        next += 1;
    }
    assert!(map.capacity() as u64 > threshold, "the table did not grow");
    // Zeroed by the allocator, the new table was mapped in whole by the write
    // that allocated it (129 faults); lazily zeroed but not prepared, by the
    // first moves into it (dozens).
    assert!(
        worst.0 <= 3,
        "insert of key {} took {} page faults",
        worst.1,
        worst.0
    );
}

/// A map dropped gives its tables' memory back for reuse: a map of the same
/// shape built after it maps in (almost) no new pages. With 16 mappings kept,
/// a 16-shard map's 64 mapped arrays were mostly unmapped, and the next map
/// took half as many page faults again.
#[cfg(all(target_os = "linux", not(miri)))]
#[test]
fn a_map_built_after_one_of_its_shape_reuses_its_memory() {
    // Entries of a size no other test of this binary uses (56 bytes), so
    // that no other test takes these mappings meanwhile.
    let faults_to_build = || {
        let before = minor_faults();
        let map: ReadMostlyMap<u64, [u8; 40]> = ReadMostlyMap::builder().shards(16).build();
        for k in 0..50_000 {
            map.insert(k, [0; 40]);
        }
        drop(map);
        minor_faults() - before
    };
    let first = faults_to_build();
    let second = faults_to_build();
    assert!(
        second * 4 < first,
        "the first map took {first} page faults, the second {second}"
    );
}

//! ReadMostlyMap reuses the memory of expired entries when neither key nor
//! value has a destructor: steady replacing and removing does not allocate an
//! entry per write. Counted per thread by a counting global allocator, in a
//! test binary of its own so that no other test's threads hold the epoch back.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::scaled;
use mapguard::ReadMostlyMap;

struct Counting;

std::thread_local! {
    /// This thread's allocations (a const `Cell`: using it allocates nothing).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
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

#[test]
fn plain_entries_are_recycled_instead_of_allocated_per_write() {
    let map: ReadMostlyMap<u64, u64> = ReadMostlyMap::builder().shards(1).build();
    let keys = 256;
    for k in 0..keys {
        map.insert(k, k);
    }
    // Warm up: the first bags expire and fill the shard's spare entries.
    for round in 0..8 {
        for k in 0..keys {
            map.insert(k, round);
        }
    }
    let writes = scaled(20_000, 2_000);
    let made = allocations(|| {
        for i in 0..writes {
            let k = i % keys;
            if i % 3 == 0 {
                map.remove(&k);
            } else {
                map.insert(k, i);
            }
        }
    });
    // What remains is a bag's vector per 64 retired entries and the odd
    // resize; one allocation per new entry would be ~`writes`.
    assert!(
        made < writes as usize / 8,
        "{made} allocations for {writes} writes"
    );
    for k in 0..keys {
        if let Some(v) = map.get_cloned(&k) {
            assert_eq!(v % keys, k, "key {k} holds another key's value {v}");
        }
    }
}

#[test]
fn entries_with_destructors_are_freed_not_recycled() {
    // The control: `String` values are dropped outside the writer lock, so their
    // entries are freed and new ones allocated.
    let map: ReadMostlyMap<u64, String> = ReadMostlyMap::builder().shards(1).build();
    let keys = 256;
    let writes = scaled(5_000, 500);
    let made = allocations(|| {
        for i in 0..writes {
            map.insert(i % keys, String::new());
        }
    });
    assert!(
        made >= writes as usize,
        "{made} allocations for {writes} writes"
    );
}

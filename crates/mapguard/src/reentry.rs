//! Per-thread record of the maps whose locks this thread holds.
//!
//! A closure passed to a map runs while the map holds one of its locks. If that
//! closure calls back into a blocking method of the *same* map, the thread would
//! wait for itself (same shard) or could deadlock against another thread taking
//! the two shards in the opposite order (lock-order inversion). Both bugs are
//! timing-dependent in other maps; here every re-entrant blocking call panics,
//! deterministically, on its first execution, naming both calls.
//!
//! The record is a tiny per-thread stack (nesting depth is the number of
//! *different* maps a thread is inside, almost always 0 or 1), so the check is a
//! thread-local access and a scan of an empty or one-element slice. The first
//! [`INLINE`] entries live in plain `Cell`s of a thread-local with a constant
//! initializer and no destructor, which the compiler reaches with one
//! segment-relative access; deeper nesting spills to a vector in a second
//! thread-local, touched only at that depth. (In the bench's callgrind count
//! a `RefCell<Vec>` record costs ~105 instructions per get, a third of
//! `ShardedMap::read`, and inline cells in a thread-local that also holds the
//! spill vector, and so needs a destructor, ~70 per write, most of it the
//! call through the lazily registered thread-local's accessor.)
//!
//! The telemetry sampling tick is a thread-local of its own, built the same
//! way (the read-mostly engine's reads use it and nothing else from here).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

/// Telemetry times one operation in `SAMPLE_EVERY` (per thread), which keeps the
/// cost of `Instant::now()` and the hot-key sketch well under the budget.
pub(crate) const SAMPLE_EVERY: u32 = 256;

/// Entries held without touching the spill vector.
const INLINE: usize = 4;

/// Entries `0..min(depth, INLINE)` of this thread's record, and its depth.
struct ThreadState {
    inline: [Cell<Held>; INLINE],
    depth: Cell<usize>,
}

#[derive(Clone, Copy)]
struct Held {
    map: u64,
    op: &'static str,
}

const EMPTY: Held = Held { map: 0, op: "" };

impl ThreadState {
    const fn new() -> ThreadState {
        ThreadState {
            inline: [
                Cell::new(EMPTY),
                Cell::new(EMPTY),
                Cell::new(EMPTY),
                Cell::new(EMPTY),
            ],
            depth: Cell::new(0),
        }
    }

    fn get(&self, i: usize) -> Held {
        match self.inline.get(i) {
            Some(cell) => cell.get(),
            None => SPILLED.with(|spilled| spilled.borrow()[i - INLINE]),
        }
    }

    fn set(&self, i: usize, held: Held) {
        match self.inline.get(i) {
            Some(cell) => cell.set(held),
            // `SPILLED` holds exactly the entries past `INLINE`: `i` is one of
            // them, or the next.
            None => SPILLED.with(|spilled| {
                let mut spilled = spilled.borrow_mut();
                match spilled.get_mut(i - INLINE) {
                    Some(slot) => *slot = held,
                    None => spilled.push(held),
                }
            }),
        }
    }

    /// The innermost entry for `map`, if this thread is inside it.
    fn find(&self, map: u64) -> Option<Held> {
        let depth = self.depth.get();
        if depth == 0 {
            return None;
        }
        (0..depth).rev().map(|i| self.get(i)).find(|h| h.map == map)
    }

    #[inline]
    fn push(&self, held: Held) {
        let depth = self.depth.get();
        match self.inline.get(depth) {
            Some(cell) => cell.set(held),
            None => self.spill(depth, held),
        }
        self.depth.set(depth + 1);
    }

    #[cold]
    fn spill(&self, depth: usize, held: Held) {
        self.set(depth, held);
    }

    /// Removes the innermost entry for `map` (the last one, unless guards were
    /// dropped out of order).
    #[inline]
    fn remove(&self, map: u64) {
        let depth = self.depth.get();
        // The usual case: the entry on top, inline.
        if let Some(top) = depth.checked_sub(1).and_then(|i| self.inline.get(i)) {
            if top.get().map == map {
                self.depth.set(depth - 1);
                return;
            }
        }
        self.remove_slow(map);
    }

    #[cold]
    fn remove_slow(&self, map: u64) {
        let depth = self.depth.get();
        let Some(pos) = (0..depth).rev().find(|&i| self.get(i).map == map) else {
            return;
        };
        for i in pos..depth - 1 {
            self.set(i, self.get(i + 1));
        }
        self.depth.set(depth - 1);
        if depth > INLINE {
            SPILLED.with(|spilled| spilled.borrow_mut().truncate(depth - 1 - INLINE));
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static STATE: ThreadState = const { ThreadState::new() };
    static SPILLED: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };
}

#[cfg(loom)]
loom::thread_local! {
    static STATE: ThreadState = ThreadState::new();
    static SPILLED: RefCell<Vec<Held>> = RefCell::new(Vec::new());
}

#[cfg(not(loom))]
std::thread_local! {
    static TICK: Cell<u32> = const { Cell::new(0) };
}

#[cfg(loom)]
loom::thread_local! {
    static TICK: Cell<u32> = Cell::new(0);
}

/// A process-unique identity for a map, used as its key in the record.
pub(crate) fn next_map_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Proof that this thread recorded itself as inside `map`; dropping it (also
/// during unwinding out of a panicking closure) erases the record.
pub(crate) struct Entered {
    map: u64,
    /// Whether telemetry should time this operation.
    pub(crate) sampled: bool,
}

impl Entered {
    #[inline]
    fn record(map: u64, op: &'static str, check: bool) -> Entered {
        // Separate small accesses: one closure holding all of this is
        // compiled out of line, and each call would then reach the
        // thread-local through a function pointer (~30 instructions more per
        // operation, callgrind).
        // Outside every map (the usual case) there is nothing to scan.
        if check && STATE.with(|state| state.depth.get()) != 0 {
            if let Some(outer) = STATE.with(|state| state.find(map)) {
                reentry_panic(op, outer.op);
            }
        }
        STATE.with(|state| state.push(Held { map, op }));
        Entered {
            map,
            sampled: sample(),
        }
    }

    /// Enters `map` for the blocking operation `op`, panicking when this thread
    /// is already inside a closure of the same map.
    #[inline]
    pub(crate) fn blocking(map: u64, op: &'static str) -> Entered {
        Self::record(map, op, true)
    }

    /// Enters `map` for a non-blocking operation: nesting is allowed because a
    /// `try_*` call fails instead of waiting, so it can't deadlock.
    #[inline]
    pub(crate) fn non_blocking(map: u64, op: &'static str) -> Entered {
        Self::record(map, op, false)
    }
}

impl Drop for Entered {
    #[inline]
    fn drop(&mut self) {
        // `try_with`: during thread teardown the record may already be gone.
        let _ = STATE.try_with(|state| state.remove(self.map));
    }
}

/// For operations that never block and so record nothing (the read-mostly
/// engine's reads): whether telemetry should sample this one.
#[inline]
pub(crate) fn sample() -> bool {
    TICK.with(|tick| {
        let next = tick.get().wrapping_add(1);
        tick.set(next);
        next % SAMPLE_EVERY == 0
    })
}

/// Defines `op!(method)` in the calling engine's module: the name re-entry
/// panics give that engine's operation, `"Engine::method"`, spelled once per
/// engine instead of in every call.
macro_rules! name_ops {
    ($engine:literal) => {
        macro_rules! op {
            ($method:ident) => {
                concat!($engine, "::", stringify!($method))
            };
        }
    };
}
pub(crate) use name_ops;

/// Panics when this thread is inside a closure of `map`: for the operations
/// that wait without taking one of the map's locks (a single-flight load).
#[inline]
pub(crate) fn forbid_reentry(map: u64, op: &'static str) {
    if let Some(outer) = is_inside(map) {
        reentry_panic(op, outer);
    }
}

/// Whether this thread is inside a closure of `map` (any operation).
pub(crate) fn is_inside(map: u64) -> Option<&'static str> {
    STATE.with(|state| state.find(map).map(|h| h.op))
}

#[cold]
#[track_caller]
pub(crate) fn reentry_panic(inner: &str, outer: &str) -> ! {
    panic!(
        "mapguard: re-entrant call to `{inner}` from inside the closure of `{outer}` on the same map; \
         the closure runs under a shard lock, so a blocking call on that map would deadlock \
         (same shard) or risk a lock-order deadlock (another shard). Compute what you need \
         before or after the call, or use a `try_*` method, which fails instead of waiting"
    );
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn nesting_past_the_inline_entries_and_out_of_order_drops() {
        let guards: Vec<Entered> = (1..=INLINE as u64 + 3)
            .map(|m| Entered::blocking(m, "op"))
            .collect();
        for m in 1..=INLINE as u64 + 3 {
            assert_eq!(is_inside(m), Some("op"));
        }
        assert_eq!(is_inside(99), None);
        let mut guards = guards.into_iter();
        let first = guards.next().unwrap();
        drop(first); // out of order: the outermost first
        assert_eq!(is_inside(1), None);
        assert_eq!(is_inside(2), Some("op"));
        drop(guards);
        for m in 1..=INLINE as u64 + 3 {
            assert_eq!(is_inside(m), None);
        }
        assert_eq!(STATE.with(|s| s.depth.get()), 0);
        assert_eq!(SPILLED.with(|s| s.borrow().len()), 0);
    }
}

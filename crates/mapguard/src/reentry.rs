//! Per-thread record of the maps whose locks this thread holds.
//!
//! A closure passed to a map runs while the map holds one of its locks. If that
//! closure calls back into a blocking method of the *same* map, the thread would
//! wait for itself (same shard) or could deadlock against another thread taking
//! the two shards in the opposite order (lock-order inversion). Both bugs are
//! timing-dependent in other maps; here every re-entrant blocking call panics,
//! deterministically, on its first execution, naming both calls.
//!
//! Only the operations that run a caller's closure under a lock record
//! themselves ([`Entered`]); every blocking operation checks the record
//! ([`check`]). A thread outside every map (the usual case) has an empty
//! record, so the check is one load of a thread-local word and a branch. The
//! innermost entry lives in two `Cell`s of a thread-local with a constant
//! initializer and no destructor, which the compiler reaches with
//! segment-relative moves: entering is a load, a branch and the stores of the
//! map and the operation, leaving one store. Outer entries (a closure of one
//! map calling into another, which may itself run a closure) spill to a
//! vector in a second thread-local, touched only at that depth.
//!
//! Plain operations (`get_cloned`, `insert`, `remove`, ...) run no closure of
//! the caller's, only the key's `Eq` and the value's `Clone` under the lock;
//! those are not recorded, so an `Eq` or `Clone` implementation that calls
//! back into the same map is not caught (as with any map's guards).
//!
//! The telemetry sampling tick lives in the same thread-local: a countdown,
//! one decrement and a branch per operation it samples for.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

/// Telemetry times one operation in `SAMPLE_EVERY` (per thread), which keeps the
/// cost of `Instant::now()` and the hot-key sketch well under the budget.
pub(crate) const SAMPLE_EVERY: u32 = 256;

/// The innermost map this thread is inside (`0`: none) and the operation
/// whose closure runs there.
///
/// It also holds the telemetry sampling tick: a `u8` counting down wraps from
/// 0 to 255, so every `SAMPLE_EVERY`-th decrement reaches 0 with no reset to
/// write. (In the same thread-local as the record, the two are reached from
/// one address: an operation checks the one and counts down the other.)
struct ThreadState {
    map: Cell<u64>,
    op: Cell<&'static str>,
    tick: Cell<u8>,
}

const _: () = assert!(SAMPLE_EVERY == u8::MAX as u32 + 1);

impl ThreadState {
    const fn new() -> ThreadState {
        ThreadState {
            map: Cell::new(0),
            op: Cell::new(""),
            tick: Cell::new(0),
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static STATE: ThreadState = const { ThreadState::new() };
    /// The entries outside the innermost one, outermost first.
    static SPILLED: RefCell<Vec<(u64, &'static str)>> = const { RefCell::new(Vec::new()) };
}

#[cfg(loom)]
loom::thread_local! {
    static STATE: ThreadState = ThreadState::new();
    static SPILLED: RefCell<Vec<(u64, &'static str)>> = RefCell::new(Vec::new());
}

/// A process-unique identity for a map, used as its key in the record.
pub(crate) fn next_map_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Panics when this thread is inside a closure of `map`: what a blocking
/// operation that runs no closure of the caller's does before it takes a lock.
#[inline]
pub(crate) fn check(map: u64, op: &'static str) {
    if STATE.with(|state| state.map.get()) != 0 {
        check_nested(map, op);
    }
}

#[cold]
#[inline(never)]
fn check_nested(map: u64, op: &'static str) {
    if let Some(outer) = is_inside(map) {
        reentry_panic(op, outer);
    }
}

/// Proof that this thread recorded itself as inside `map`, for an operation
/// that runs a caller's closure under one of the map's locks; dropping it
/// (also during unwinding out of a panicking closure) erases the record.
/// Records are erased in the reverse order of their making: each is a local
/// of the operation that made it.
pub(crate) struct Entered {
    /// Whether the thread was inside another map already (the entry before
    /// this one is in `SPILLED`).
    nested: bool,
    /// Whether telemetry should time this operation.
    pub(crate) sampled: bool,
}

impl Entered {
    #[inline]
    fn record(map: u64, op: &'static str, check: bool) -> Entered {
        let nested = if STATE.with(|state| state.map.get()) != 0 {
            enter_nested(map, op, check);
            true
        } else {
            STATE.with(|state| {
                state.map.set(map);
                state.op.set(op);
            });
            false
        };
        Entered {
            nested,
            sampled: false,
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

    /// [`blocking`](Self::blocking), also drawing the telemetry sample.
    #[inline]
    pub(crate) fn blocking_sampled(map: u64, op: &'static str) -> Entered {
        let mut entered = Self::blocking(map, op);
        entered.sampled = sample();
        entered
    }

    /// [`non_blocking`](Self::non_blocking), also drawing the telemetry sample.
    #[inline]
    pub(crate) fn non_blocking_sampled(map: u64, op: &'static str) -> Entered {
        let mut entered = Self::non_blocking(map, op);
        entered.sampled = sample();
        entered
    }
}

/// Enters `map` from inside another map's closure: checks the whole record
/// when `check`, and moves the innermost entry out to `SPILLED`.
#[cold]
#[inline(never)]
fn enter_nested(map: u64, op: &'static str, check: bool) {
    if check {
        check_nested(map, op);
    }
    let outer = STATE.with(|state| (state.map.replace(map), state.op.replace(op)));
    SPILLED.with(|spilled| spilled.borrow_mut().push(outer));
}

/// Leaves the innermost entry, making the one before it innermost again.
#[cold]
#[inline(never)]
fn leave_nested() {
    // `try_with`: during thread teardown the spill vector may already be gone.
    let outer = SPILLED
        .try_with(|spilled| spilled.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or((0, ""));
    STATE.with(|state| {
        state.map.set(outer.0);
        state.op.set(outer.1);
    });
}

impl Drop for Entered {
    #[inline]
    fn drop(&mut self) {
        if self.nested {
            leave_nested();
        } else {
            STATE.with(|state| state.map.set(0));
        }
    }
}

/// Whether telemetry should sample this operation: one in [`SAMPLE_EVERY`] per
/// thread, counted down.
#[inline]
pub(crate) fn sample() -> bool {
    STATE.with(|state| {
        let left = state.tick.get().wrapping_sub(1);
        state.tick.set(left);
        left == 0
    })
}

/// Whether the last [`sample`] on this thread said yes and none has been
/// drawn since.
#[inline]
pub(crate) fn ticked() -> bool {
    STATE.with(|state| state.tick.get() == 0)
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
    check(map, op);
}

/// Whether this thread is inside a closure of `map` (any operation).
pub(crate) fn is_inside(map: u64) -> Option<&'static str> {
    let (top, op) = STATE.with(|state| (state.map.get(), state.op.get()));
    if top == 0 {
        return None;
    }
    if top == map {
        return Some(op);
    }
    SPILLED
        .try_with(|spilled| {
            let spilled = spilled.borrow();
            spilled.iter().rev().find(|h| h.0 == map).map(|h| h.1)
        })
        .ok()
        .flatten()
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
    fn nested_records_unwind_in_order() {
        fn nest(maps: &[u64]) {
            let Some((&map, inner)) = maps.split_first() else {
                for m in 1..=5 {
                    assert_eq!(is_inside(m), Some("op"));
                }
                assert_eq!(is_inside(99), None);
                return;
            };
            let _entered = Entered::non_blocking(map, "op");
            nest(inner);
            assert_eq!(is_inside(map), Some("op"));
        }
        nest(&[1, 2, 3, 4, 5]);
        for m in 1..=5 {
            assert_eq!(is_inside(m), None);
        }
        assert_eq!(STATE.with(|s| s.map.get()), 0);
        assert_eq!(SPILLED.with(|s| s.borrow().len()), 0);
    }

    #[test]
    fn a_blocking_entry_into_an_outer_map_panics() {
        let _a = Entered::blocking(1, "a");
        let _b = Entered::blocking(2, "b");
        check(3, "c");
        let r = std::panic::catch_unwind(|| check(1, "inner"));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| Entered::blocking(2, "inner"));
        assert!(r.is_err());
        // A panic while entering leaves the record as it was.
        assert_eq!(is_inside(1), Some("a"));
        assert_eq!(is_inside(2), Some("b"));
    }

    #[test]
    fn sampling_is_one_in_sample_every() {
        let sampled = (0..SAMPLE_EVERY * 4).filter(|_| sample()).count();
        assert_eq!(sampled, 4);
    }
}

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
//! thread-local access and a scan of an empty or one-element slice.
//!
//! The same thread-local also carries the telemetry sampling tick, so an
//! operation touches thread-local storage once.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

/// Telemetry times one operation in `SAMPLE_EVERY` (per thread), which keeps the
/// cost of `Instant::now()` and the hot-key sketch well under the budget.
pub(crate) const SAMPLE_EVERY: u32 = 256;

struct ThreadState {
    held: RefCell<Vec<Held>>,
    tick: Cell<u32>,
}

#[derive(Clone, Copy)]
struct Held {
    map: u64,
    op: &'static str,
}

#[cfg(not(loom))]
std::thread_local! {
    static STATE: ThreadState = const {
        ThreadState { held: RefCell::new(Vec::new()), tick: Cell::new(0) }
    };
}

#[cfg(loom)]
loom::thread_local! {
    static STATE: ThreadState = ThreadState { held: RefCell::new(Vec::new()), tick: Cell::new(0) };
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
    fn record(map: u64, op: &'static str, check: bool) -> Entered {
        STATE.with(|state| {
            let mut held = state.held.borrow_mut();
            if check {
                if let Some(outer) = held.iter().find(|h| h.map == map) {
                    let outer = *outer;
                    // Release the borrow before panicking so the unwinding drops of
                    // outer `Entered`s can still update the record.
                    drop(held);
                    reentry_panic(op, outer.op);
                }
            }
            held.push(Held { map, op });
            let tick = state.tick.get().wrapping_add(1);
            state.tick.set(tick);
            Entered {
                map,
                sampled: tick % SAMPLE_EVERY == 0,
            }
        })
    }

    /// Enters `map` for the blocking operation `op`, panicking when this thread
    /// is already inside a closure of the same map.
    pub(crate) fn blocking(map: u64, op: &'static str) -> Entered {
        Self::record(map, op, true)
    }

    /// Enters `map` for a non-blocking operation: nesting is allowed because a
    /// `try_*` call fails instead of waiting, so it can't deadlock.
    pub(crate) fn non_blocking(map: u64, op: &'static str) -> Entered {
        Self::record(map, op, false)
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        // `try_with`: during thread teardown the record may already be gone.
        let _ = STATE.try_with(|state| {
            let mut held = state.held.borrow_mut();
            if let Some(pos) = held.iter().rposition(|h| h.map == self.map) {
                held.remove(pos);
            }
        });
    }
}

/// Whether this thread is inside a closure of `map` (any operation).
pub(crate) fn is_inside(map: u64) -> Option<&'static str> {
    STATE.with(|state| {
        state
            .held
            .borrow()
            .iter()
            .find(|h| h.map == map)
            .map(|h| h.op)
    })
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

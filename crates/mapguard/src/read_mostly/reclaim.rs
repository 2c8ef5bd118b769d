//! Memory reclamation for the read-mostly engine: readers pin the process-wide
//! epoch (`epoch.rs`); writers retire what they unlink into their shard's
//! [`Garbage`], under the shard's writer lock, which seals it in bags and frees
//! a bag two epochs later, after the lock is released.
//!
//! Under `--cfg loom` a guard is a plain acquire load and garbage is freed only
//! with the map, which is always safe: the loom models of the engine check its
//! own protocol (publication, migration, forwarding), and the epoch protocol
//! has a model of its own.

use std::collections::VecDeque;

#[cfg(loom)]
pub(crate) use self::loom_guard::{pin, Guard};
#[cfg(not(loom))]
pub(crate) use super::epoch::global::{pin, Guard};

/// Objects a writer retires before it seals them in a bag. Each seal costs a
/// process-wide barrier (~0.7 us here), so this spreads it to ~10 ns a write,
/// while a shard holds at most a few bags of garbage. Bags are freed by the
/// shard's own later writes (or the map's drop): a shard that stops being
/// written keeps its last few bags until then.
const BATCH: usize = 64;

/// A retired heap object and how to free it.
struct Retired {
    ptr: *mut (),
    free: unsafe fn(*mut ()),
}

impl Retired {
    /// Runs the destructor and frees the memory.
    ///
    /// # Safety
    /// No reader can reach the object any more, and this runs once.
    unsafe fn free(self) {
        // SAFETY: the caller's contract; `free` matches the allocation.
        unsafe { (self.free)(self.ptr) }
    }
}

/// What one shard's writer retired and has not freed yet.
pub(crate) struct Garbage {
    /// Retired since the last seal.
    pending: Vec<Retired>,
    /// Sealed bags with their stamps, oldest first.
    sealed: VecDeque<(u64, Vec<Retired>)>,
}

/// Bags whose readers are gone: dropping this frees them (do it after
/// releasing the writer lock: destructors run here).
#[must_use]
pub(crate) struct Freed(Vec<Vec<Retired>>);

impl Drop for Freed {
    fn drop(&mut self) {
        for retired in self.0.drain(..).flatten() {
            // SAFETY: the bag expired: every reader that could reach it left.
            unsafe { retired.free() };
        }
    }
}

impl Garbage {
    pub(crate) fn new() -> Self {
        Garbage {
            pending: Vec::new(),
            sealed: VecDeque::new(),
        }
    }

    /// Frees `ptr` (a `Box`) once no reader that might have loaded it is left.
    ///
    /// # Safety
    /// `ptr` came from `Box::into_raw`, is retired once, and is already
    /// unreachable for readers that start from now on.
    pub(crate) unsafe fn retire<T>(&mut self, ptr: *mut T) {
        unsafe fn free<T>(ptr: *mut ()) {
            // SAFETY: `ptr` is the `Box<T>` passed to `retire`.
            drop(unsafe { Box::from_raw(ptr.cast::<T>()) });
        }
        self.pending.push(Retired {
            ptr: ptr.cast(),
            free: free::<T>,
        });
    }

    /// After a write: seals the pending objects when there are enough of them,
    /// and hands over the bags that may be freed now.
    pub(crate) fn collect(&mut self) -> Freed {
        if self.pending.len() >= BATCH {
            let stamp = seal();
            let bag = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH));
            self.sealed.push_back((stamp, bag));
        }
        let mut freed = Vec::new();
        while let Some(&(stamp, _)) = self.sealed.front() {
            if !expired(stamp) {
                break;
            }
            freed.extend(self.sealed.pop_front().map(|(_, bag)| bag));
        }
        Freed(freed)
    }

    /// Frees everything now.
    ///
    /// # Safety
    /// No reader can be inside the map: it is being dropped.
    pub(crate) unsafe fn free_all(&mut self) {
        let bags = self.sealed.drain(..).map(|(_, bag)| bag);
        drop(Freed(
            bags.chain([std::mem::take(&mut self.pending)]).collect(),
        ));
    }
}

impl Drop for Garbage {
    fn drop(&mut self) {
        // SAFETY: a shard's garbage is dropped with the shard, after the map
        // (no reader can be inside it).
        unsafe { self.free_all() }
    }
}

#[cfg(not(loom))]
use super::epoch::global::{expired, seal};

/// Under loom no bag ever expires: garbage is kept until the map drops.
#[cfg(loom)]
fn seal() -> u64 {
    0
}

#[cfg(loom)]
fn expired(_stamp: u64) -> bool {
    false
}

#[cfg(loom)]
mod loom_guard {
    use loom::sync::atomic::{AtomicPtr, Ordering::Acquire};

    pub(crate) struct Guard;

    pub(crate) fn pin() -> Guard {
        Guard
    }

    impl Guard {
        pub(crate) fn protect<T>(&self, ptr: &AtomicPtr<T>) -> *mut T {
            ptr.load(Acquire)
        }
    }
}

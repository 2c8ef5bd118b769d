//! Memory reclamation for the read-mostly engine: seize (the collector papaya
//! uses), or, under `--cfg loom`, a stand-in that frees nothing until the map
//! is dropped.
//!
//! seize is chosen over crossbeam-epoch because entering a guard costs no
//! memory fence on Linux (it uses `membarrier` to move the fence cost to the
//! rare reclaiming thread), which is what keeps a read from writing or fencing
//! anything shared. loom cannot see inside seize, so the loom models check the
//! engine's own protocol (publication, migration, forwarding) with reclamation
//! deferred to the end of each execution, which is always safe.

#[cfg(not(loom))]
mod imp {
    use std::sync::atomic::{AtomicPtr, Ordering::Acquire};

    use seize::Guard as _;

    /// Owns everything retired by one map.
    pub(crate) struct Reclaimer(seize::Collector);

    /// Keeps every pointer loaded through it valid while it lives.
    pub(crate) struct Guard<'a>(seize::LocalGuard<'a>);

    impl Reclaimer {
        pub(crate) fn new() -> Self {
            Reclaimer(seize::Collector::new())
        }

        #[inline]
        pub(crate) fn enter(&self) -> Guard<'_> {
            Guard(self.0.enter())
        }
    }

    impl Guard<'_> {
        /// Loads `ptr` so that what it points to stays allocated for the guard's
        /// life, even if it is retired meanwhile.
        #[inline]
        pub(crate) fn protect<T>(&self, ptr: &AtomicPtr<T>) -> *mut T {
            self.0.protect(ptr, Acquire)
        }

        /// Frees `ptr` (a `Box`) once no guard that might have loaded it is left.
        ///
        /// # Safety
        /// `ptr` came from `Box::into_raw`, is retired once, and is no longer
        /// reachable from the map for any guard entered after this call.
        pub(crate) unsafe fn retire<T>(&self, ptr: *mut T) {
            // SAFETY: the caller's contract is seize's `defer_retire` contract,
            // and `boxed` matches the allocation.
            unsafe { self.0.defer_retire(ptr, seize::reclaim::boxed) }
        }
    }
}

#[cfg(loom)]
mod imp {
    use loom::sync::atomic::{AtomicPtr, Ordering::Acquire};

    /// Collects everything retired and frees it when the map is dropped.
    pub(crate) struct Reclaimer {
        retired: std::sync::Mutex<Vec<Retired>>,
    }

    struct Retired {
        ptr: *mut (),
        free: unsafe fn(*mut ()),
    }

    // SAFETY: retired objects are only freed, by whichever thread drops the map,
    // and the map is only `Send`/`Sync` when its keys and values are.
    unsafe impl Send for Retired {}

    pub(crate) struct Guard<'a>(&'a Reclaimer);

    impl Reclaimer {
        pub(crate) fn new() -> Self {
            Reclaimer {
                retired: std::sync::Mutex::new(Vec::new()),
            }
        }

        pub(crate) fn enter(&self) -> Guard<'_> {
            Guard(self)
        }
    }

    impl Guard<'_> {
        pub(crate) fn protect<T>(&self, ptr: &AtomicPtr<T>) -> *mut T {
            ptr.load(Acquire)
        }

        /// # Safety
        /// As seize's version: `ptr` came from `Box::into_raw`, retired once.
        pub(crate) unsafe fn retire<T>(&self, ptr: *mut T) {
            unsafe fn free<T>(ptr: *mut ()) {
                // SAFETY: `ptr` is the `Box<T>` passed to `retire`.
                drop(unsafe { Box::from_raw(ptr.cast::<T>()) });
            }
            let retired = Retired {
                ptr: ptr.cast(),
                free: free::<T>,
            };
            self.0.retired.lock().unwrap().push(retired);
        }
    }

    impl Drop for Reclaimer {
        fn drop(&mut self) {
            for r in self.retired.get_mut().unwrap().drain(..) {
                // SAFETY: each retired pointer is freed once, after every guard is gone.
                unsafe { (r.free)(r.ptr) }
            }
        }
    }
}

pub(crate) use imp::{Guard, Reclaimer};

//! Epoch-based reclamation whose read side is two plain stores: the engine's
//! own, because it is what makes a read cheap.
//!
//! Why not seize or crossbeam-epoch: both put an ordering instruction on every
//! read. crossbeam-epoch fences when a thread pins; seize (papaya's collector)
//! leaves a guard with an atomic swap. Either is a full barrier on x86, and it
//! stops the processor from overlapping one read's cache misses with the
//! next's: papaya's random gets on a 32k-entry map take ~20 ns with a guard
//! per get and ~10 ns with one guard held. Here a reader announces
//! the epoch it saw with a plain (release) store and a compiler fence, and
//! withdraws with another. The missing hardware fence is paid by the rare
//! reclaiming side with `membarrier(2)` (PRIVATE_EXPEDITED: every running
//! thread of the process executes a full barrier), the asymmetric fence of
//! liburcu's "memb" flavour. Without membarrier (not Linux, an old kernel, a
//! seccomp filter, Miri) both sides use real `SeqCst` fences instead; the loom
//! model in `tests/loom.rs` checks the protocol in that form, and membarrier
//! only moves the reader's fence to the moment the reclaimer needs it.
//!
//! The trade, measured on a VM host whose interrupts between CPUs are slow
//! (each `membarrier` 30-280 us while another thread runs, against 2-5 us on
//! the host the constants were chosen on): readers fencing with one `xchg`
//! run 10-20 % fewer reads than this, and the `exchange` write loop at two
//! threads 10-20 % more writes (a perf profile gives `membarrier` a fifth to
//! two fifths of its samples there). Reads are what this engine is for, so
//! the barrier stays with the writers (BENCHMARKS.md, ReadMostlyMap).
//!
//! ## The protocol
//!
//! A global epoch counter, and one record per thread holding the epoch it
//! entered at, or [`INACTIVE`]:
//!
//! - **enter** (outermost guard of a thread): `record = epoch` (release), light
//!   barrier; **leave**: `record = INACTIVE` (release).
//! - **stamp** an object just unlinked from every shared place (a slot marked
//!   dead, a table no longer current): light barrier, `stamp = epoch`. The
//!   object may be freed or reused once the epoch is `stamp + 3` or more
//!   ([`GRACE`]).
//! - **advance** (a writer, now and then): `seen = epoch`; heavy barrier; if
//!   every record is `INACTIVE` or `seen`, move the epoch from `seen` to
//!   `seen + 1`.
//!
//! Why that is safe: while a reader stays inside, the epoch gets at most one
//! past the epoch it entered at (the advance beyond that reads the epoch the
//! reader saw, or one later, before its heavy barrier, so its scan sees the
//! reader's record). So a reader still inside when the epoch reaches
//! `stamp + 3` entered at `stamp + 2` or later: after the advance from
//! `stamp + 1` to `stamp + 2`, whose heavy barrier came after the unlinker's
//! light one (it read an epoch the unlinker had not yet seen), which made the
//! unlink visible to everything that read the epoch after that advance. Such
//! a reader never finds the object. Frees happen after the freer reads the
//! advanced epoch (acquire), which the advancer wrote (release) after reading
//! every departed reader's `INACTIVE`, or its later re-entry (acquire of a
//! release store): their reads happen before the free.
//!
//! The third epoch is for the membarrier form, where the unlinker's light
//! barrier is no fence: the advance to `stamp + 1` may have read `stamp` and
//! finished its heavy barrier while the unlink still sat in the unlinker's
//! store buffer, so a reader entering at `stamp + 1` could still find the
//! object, and stay while the epoch reaches `stamp + 2`. In the fence form two
//! would do (the unlinker's fence then orders the unlink before the advance to
//! `stamp + 1`), which is why the loom model (fence form) cannot tell two
//! from three; it fails with one, or without the reader's or the unlinker's
//! fence or the heavy barrier.
//!
//! Stamps are the epoch's low 8 bits and compared by wrapping difference: an
//! epoch 256 advances on, or 512, only looks too young, which delays a reuse
//! by up to three advances. Why a byte: a table keeps a stamp per group of
//! eight slots, and at four bytes that array would get its own memory mapping
//! for tables of 32k slots, whose page faults would make a growing map's
//! slowest inserts slower (bench `rapid_grow`, two threads: inserts of four
//! page faults, against none with one-byte stamps).

use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use crate::sync::{AtomicBool, AtomicPtr, AtomicU64};

/// A record's value while its thread is not reading.
pub(crate) const INACTIVE: u64 = 0;

/// Epochs from an object's stamp until it may be freed (see the module docs).
const GRACE: u8 = 3;

/// The global epoch and every thread's record.
pub struct Domain {
    epoch: AtomicU64,
    /// An append-only list: records are reused, never unlinked, so a scan needs
    /// no protection.
    records: AtomicPtr<Record>,
}

/// One thread's announcement of the epoch it reads in. Aligned to its own
/// cache-line pair: readers store to it on every read, and records that share
/// a line would make readers on different cores contend.
#[repr(align(128))]
pub struct Record {
    epoch: AtomicU64,
    in_use: AtomicBool,
    /// Set before the record is published, never changed after.
    next: *mut Record,
}

// SAFETY: `next` is written once before publication (release) and only read
// after (acquire); the rest are atomics.
unsafe impl Sync for Record {}
unsafe impl Send for Record {}

impl Domain {
    /// A domain of its own (the engine uses the process-wide one; models use
    /// their own).
    #[cfg(loom)]
    #[allow(
        clippy::new_without_default,
        reason = "a model's constructor, not an API"
    )]
    pub fn new() -> Self {
        Domain {
            epoch: AtomicU64::new(1),
            records: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// A record for the calling thread: a released one reused, or a new one.
    pub fn register(&self) -> &Record {
        let mut p = self.records.load(Acquire);
        while !p.is_null() {
            // SAFETY: records are freed only with the domain.
            let r = unsafe { &*p };
            if !r.in_use.load(Relaxed)
                && r.in_use
                    .compare_exchange(false, true, Acquire, Relaxed)
                    .is_ok()
            {
                return r;
            }
            p = r.next;
        }
        let record = Box::into_raw(Box::new(Record {
            epoch: AtomicU64::new(INACTIVE),
            in_use: AtomicBool::new(true),
            next: ptr::null_mut(),
        }));
        let mut head = self.records.load(Relaxed);
        loop {
            // SAFETY: not yet published; ours alone.
            unsafe { (*record).next = head };
            match self
                .records
                .compare_exchange_weak(head, record, Release, Relaxed)
            {
                // SAFETY: published records live as long as the domain.
                Ok(_) => return unsafe { &*record },
                Err(now) => head = now,
            }
        }
    }

    /// Gives a record back for another thread (its owner is not reading).
    pub fn release(&self, record: &Record) {
        record.epoch.store(INACTIVE, Release);
        record.in_use.store(false, Release);
    }

    /// Marks the record's thread as reading: pointers it loads after this stay
    /// allocated until [`leave`](Self::leave).
    #[inline]
    pub fn enter(&self, record: &Record) {
        // Release (free on x86): a scan that reads this epoch must also see
        // this thread's earlier reads as done, like its `INACTIVE` would.
        record.epoch.store(self.epoch.load(Relaxed), Release);
        barrier::light();
    }

    /// Ends the read [`enter`](Self::enter) began.
    #[inline]
    pub fn leave(&self, record: &Record) {
        record.epoch.store(INACTIVE, Release);
    }

    /// Stamps an object the caller just unlinked from every shared place:
    /// it may be freed or reused once [`expired`](Self::expired).
    #[inline]
    pub fn stamp(&self) -> u8 {
        barrier::light();
        self.epoch.load(Acquire) as u8
    }

    /// Whether an object stamped `stamp` may be freed or reused.
    #[inline]
    pub fn expired(&self, stamp: u8) -> bool {
        (self.epoch.load(Acquire) as u8).wrapping_sub(stamp) >= GRACE
    }

    /// Moves the epoch on if every reader is in the current one (one heavy
    /// barrier: call it rarely, see `reclaim.rs`).
    pub fn advance(&self) {
        let seen = self.epoch.load(Acquire);
        barrier::heavy();
        if self.readers_all_in(seen) {
            // Failing means someone else advanced it: as good.
            let _ = self.epoch.compare_exchange(seen, seen + 1, AcqRel, Relaxed);
        }
    }

    fn readers_all_in(&self, epoch: u64) -> bool {
        let mut p = self.records.load(Acquire);
        while !p.is_null() {
            // SAFETY: records are freed only with the domain.
            let r = unsafe { &*p };
            let e = r.epoch.load(Acquire);
            if e != INACTIVE && e != epoch {
                return false;
            }
            p = r.next;
        }
        true
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        let mut p = self.records.load(Relaxed);
        while !p.is_null() {
            // SAFETY: the domain owns its records, and no thread uses them now.
            let record = unsafe { Box::from_raw(p) };
            p = record.next;
        }
    }
}

/// The two halves of an asymmetric fence.
mod barrier {
    /// The reader's half: free when `membarrier` works.
    #[inline]
    pub(super) fn light() {
        #[cfg(not(loom))]
        if membarrier::active() {
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            return;
        }
        crate::sync::fence_seq_cst();
    }

    /// The reclaimer's half: a full barrier on every running thread of the
    /// process (or only its own, when readers fence themselves).
    pub(super) fn heavy() {
        #[cfg(not(loom))]
        if membarrier::barrier() {
            return;
        }
        crate::sync::fence_seq_cst();
    }

    #[cfg(not(loom))]
    mod membarrier {
        use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
        use std::sync::Once;

        const UNKNOWN: u8 = 0;
        const WORKS: u8 = 1;
        const UNAVAILABLE: u8 = 2;

        /// Decided once, before the first heavy barrier; readers that still see
        /// `UNKNOWN` fence, which is always safe.
        static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
        static PROBE: Once = Once::new();

        /// Whether readers may skip their fence: only once registration worked,
        /// so every heavy barrier from then on is a real membarrier.
        #[inline]
        pub(crate) fn active() -> bool {
            STATE.load(Relaxed) == WORKS
        }

        /// Runs the process-wide barrier; false if this system has none.
        pub(crate) fn barrier() -> bool {
            PROBE.call_once(|| {
                let works = register();
                STATE.store(if works { WORKS } else { UNAVAILABLE }, Relaxed);
            });
            if STATE.load(Relaxed) != WORKS {
                return false;
            }
            // Cannot fail once registered (the kernel does not unregister).
            let done = syscall(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
            assert!(
                done,
                "membarrier(PRIVATE_EXPEDITED) failed after registration"
            );
            true
        }

        const MEMBARRIER_CMD_QUERY: i32 = 0;
        const MEMBARRIER_CMD_PRIVATE_EXPEDITED: i32 = 1 << 3;
        const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: i32 = 1 << 4;

        fn register() -> bool {
            if cfg!(miri) || !cfg!(target_os = "linux") {
                return false;
            }
            let supported = syscall(MEMBARRIER_CMD_QUERY);
            supported >= 0
                && supported & i64::from(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0
                && syscall(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
        }

        #[cfg(all(target_os = "linux", not(miri)))]
        fn syscall(cmd: i32) -> i64 {
            // SAFETY: membarrier takes (cmd, flags, cpu_id) and touches no memory
            // of ours.
            unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) }
        }

        #[cfg(not(all(target_os = "linux", not(miri))))]
        fn syscall(_cmd: i32) -> i64 {
            -1
        }
    }
}

/// The process-wide domain every read-mostly map uses, and each thread's
/// record in it (a thread-local, registered on first use, given back when the
/// thread exits).
#[cfg(not(loom))]
pub(crate) mod global {
    use std::cell::Cell;
    use std::marker::PhantomData;
    use std::ptr;

    use super::{Domain, Record};
    use crate::sync::{AtomicPtr, AtomicU64};

    static DOMAIN: Domain = Domain {
        epoch: AtomicU64::new(1),
        records: AtomicPtr::new(ptr::null_mut()),
    };

    struct Local {
        record: Cell<*const Record>,
        /// Guards alive on this thread: only the outermost enters and leaves.
        depth: Cell<usize>,
    }

    thread_local! {
        // No destructor, so access is a plain thread-local load.
        static LOCAL: Local = const {
            Local { record: Cell::new(ptr::null()), depth: Cell::new(0) }
        };
        static OWNER: Owner = const { Owner };
    }

    /// Gives the thread's record back when the thread exits.
    struct Owner;

    impl Drop for Owner {
        fn drop(&mut self) {
            LOCAL.with(|l| {
                let record = l.record.get();
                // A guard still alive in another thread-local's destructor keeps
                // the record (it is then simply never reused).
                if !record.is_null() && l.depth.get() == 0 {
                    l.record.set(ptr::null());
                    // SAFETY: records live as long as the static domain.
                    DOMAIN.release(unsafe { &*record });
                }
            });
        }
    }

    #[cold]
    fn register(local: &Local) -> *const Record {
        let record: *const Record = DOMAIN.register();
        local.record.set(record);
        // Arrange the give-back; during thread teardown (too late for that)
        // the record just stays claimed.
        let _ = OWNER.try_with(|_| ());
        record
    }

    /// Keeps every pointer a read loads through the engine allocated while it
    /// lives. Not `Send`: it is the calling thread's announcement.
    pub(crate) struct Guard {
        _thread_bound: PhantomData<*const ()>,
    }

    /// Enters a read.
    #[inline]
    pub(crate) fn pin() -> Guard {
        LOCAL.with(|l| {
            let depth = l.depth.get();
            l.depth.set(depth + 1);
            if depth == 0 {
                let mut record = l.record.get();
                if record.is_null() {
                    record = register(l);
                }
                // SAFETY: records live as long as the static domain.
                DOMAIN.enter(unsafe { &*record });
            }
        });
        Guard {
            _thread_bound: PhantomData,
        }
    }

    impl Guard {
        /// Loads `ptr` so that what it points to stays allocated for the guard's
        /// life, even if it is retired meanwhile.
        #[inline]
        pub(crate) fn protect<T>(&self, ptr: &AtomicPtr<T>) -> *mut T {
            ptr.load(std::sync::atomic::Ordering::Acquire)
        }
    }

    impl Drop for Guard {
        #[inline]
        fn drop(&mut self) {
            LOCAL.with(|l| {
                let depth = l.depth.get() - 1;
                l.depth.set(depth);
                if depth == 0 {
                    // SAFETY: set by `pin`, kept while a guard lives.
                    DOMAIN.leave(unsafe { &*l.record.get() });
                }
            });
        }
    }

    /// [`Domain::stamp`] on the process-wide domain.
    #[inline]
    pub(crate) fn stamp() -> u8 {
        DOMAIN.stamp()
    }

    /// [`Domain::expired`] on the process-wide domain.
    #[inline]
    pub(crate) fn expired(stamp: u8) -> bool {
        DOMAIN.expired(stamp)
    }

    /// [`Domain::advance`] on the process-wide domain.
    pub(crate) fn advance() {
        DOMAIN.advance()
    }
}

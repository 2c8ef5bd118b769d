//! [`WipingAlloc`]: the global allocator, except that a block is zeroed before
//! it is given back.
//!
//! This is the crate's only `unsafe` code. It is small on purpose: allocation
//! is forwarded untouched to [`Global`], and `deallocate` writes zeroes over
//! the block it has been handed before forwarding it. `grow` and `shrink` keep
//! the trait's default implementations, which allocate a new block, copy and
//! then call `self.deallocate` on the old one, so the old block is wiped on
//! that path too (forwarding them to `Global` would let `realloc` free the old
//! block unwiped).

use std::alloc::Layout;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{compiler_fence, Ordering};

use allocator_api2::alloc::{AllocError, Allocator, Global};
use zeroize::Zeroize;

/// An allocator that zeroes every block before freeing it.
///
/// The zeroing is done with volatile writes and a fence (see `wipe`), so the
/// compiler cannot drop it as a dead store to memory that is about to be freed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WipingAlloc;

// SAFETY: every method forwards to `Global`, a correct allocator, with the same
// arguments, so a block allocated here is a `Global` block, stays valid until
// it is deallocated here, and may be moved between clones of this (stateless)
// allocator. `deallocate` only adds writes to a block the caller has just
// handed back to us, before `Global` frees it.
unsafe impl Allocator for WipingAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // Test builds start every block zeroed, so that `record_frees` can read
        // a freed block whole: a never-written byte is otherwise uninitialised,
        // and reading one is undefined behaviour.
        if cfg!(test) {
            Global.allocate_zeroed(layout)
        } else {
            Global.allocate(layout)
        }
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        Global.allocate_zeroed(layout)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller guarantees that `ptr` denotes a block currently
        // allocated by this allocator and that `layout` fits it, so the block
        // is at least `layout.size()` bytes, writable, and no one else uses it
        // any more (the caller is giving it up). Its bytes may be uninitialised
        // (empty buckets, padding), hence `MaybeUninit`. A zero size gives an
        // empty slice at a dangling but non-null, aligned pointer, as allowed.
        let block = unsafe {
            std::slice::from_raw_parts_mut(ptr.as_ptr().cast::<MaybeUninit<u8>>(), layout.size())
        };
        #[cfg(test)]
        let before = record::copy_if_recording(block);
        wipe(block);
        #[cfg(test)]
        record::freed(before, block);
        // SAFETY: the caller's guarantees for this call are the ones `Global`
        // needs: `ptr` is a `Global` block (see `allocate`) fitting `layout`.
        unsafe { Global.deallocate(ptr, layout) }
    }
}

/// Zeroes `block` with volatile stores (which the compiler may not drop as
/// dead, though the block is freed right after), 16 bytes at a time where it
/// is 16-byte aligned: tables are, so that is all of a table but its end.
/// `Zeroize` on the whole byte slice would store byte by byte: filling a table
/// from empty then costs 20-80 % more than with the global allocator, against
/// 6-10 % this way (measured on growth to 10^3..10^6 entries).
fn wipe(block: &mut [MaybeUninit<u8>]) {
    // SAFETY: `MaybeUninit<u128>` has no invalid bit patterns, and
    // `align_to_mut` only reinterprets the aligned middle of the same exclusive
    // borrow.
    let (head, words, tail) = unsafe { block.align_to_mut::<MaybeUninit<u128>>() };
    head.zeroize();
    for word in words {
        // SAFETY: `word` is an exclusive, aligned reference into the block.
        unsafe { std::ptr::write_volatile(word, MaybeUninit::new(0)) };
    }
    tail.zeroize();
    // As `Zeroize` does: keep later memory operations (the free) after these.
    compiler_fence(Ordering::SeqCst);
}

/// Test support: a per-thread record of the blocks this allocator frees, with
/// their contents just before and just after the wipe.
#[cfg(test)]
pub(crate) use self::record::{record_frees, FreedBlock};

#[cfg(test)]
mod record {
    use std::cell::RefCell;
    use std::mem::MaybeUninit;

    /// A block seen by `deallocate`.
    #[derive(Debug)]
    pub(crate) struct FreedBlock {
        /// Its contents when it was handed back.
        pub(crate) before: Vec<u8>,
        /// Its contents at the moment it went to the global allocator.
        pub(crate) after: Vec<u8>,
    }

    thread_local! {
        /// `Some` while `record_frees` runs on this thread. The record's own
        /// vectors use the global allocator, never `WipingAlloc`, so recording
        /// does not recurse.
        static FREED: RefCell<Option<Vec<FreedBlock>>> = const { RefCell::new(None) };
    }

    /// Runs `f` and returns what it returned and every block that this
    /// thread freed through `WipingAlloc` meanwhile.
    ///
    /// # Safety
    ///
    /// Each block is read whole, before and after its wipe, as bytes. Blocks
    /// start zeroed in test builds, so every byte is initialised unless a
    /// typed write put padding there: the tables freed while `f` runs must
    /// hold only types without padding. (Miri reports a violation.)
    pub(crate) unsafe fn record_frees<R>(f: impl FnOnce() -> R) -> (R, Vec<FreedBlock>) {
        FREED.with(|freed| *freed.borrow_mut() = Some(Vec::new()));
        let result = f();
        let blocks = FREED
            .with(|freed| freed.borrow_mut().take())
            .unwrap_or_default();
        (result, blocks)
    }

    /// The block's bytes, if this thread is recording.
    pub(super) fn copy_if_recording(block: &[MaybeUninit<u8>]) -> Option<Vec<u8>> {
        // `try_with`: a table may be freed by a thread-local's destructor,
        // after this one is gone.
        let recording = FREED
            .try_with(|freed| freed.borrow().is_some())
            .unwrap_or(false);
        // SAFETY: `record_frees`' contract: all of the block is initialised.
        recording.then(|| block.iter().map(|b| unsafe { b.assume_init() }).collect())
    }

    pub(super) fn freed(before: Option<Vec<u8>>, after: &[MaybeUninit<u8>]) {
        let Some(before) = before else { return };
        // SAFETY: `wipe` has just initialised every byte to zero.
        let after = after.iter().map(|b| unsafe { b.assume_init() }).collect();
        let _ = FREED.try_with(|freed| {
            if let Some(blocks) = freed.borrow_mut().as_mut() {
                blocks.push(FreedBlock { before, after });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::Layout;

    use allocator_api2::alloc::Allocator;

    use super::{record_frees, WipingAlloc};

    #[test]
    fn a_freed_block_is_zero_when_it_reaches_the_global_allocator() {
        let fill_and_free = || {
            for size in [0, 1, 7, 8, 33, 4096] {
                let layout = Layout::from_size_align(size, 16).unwrap();
                let block = WipingAlloc.allocate(layout).unwrap().cast::<u8>();
                // SAFETY: the block is `size` writable bytes, ours until freed.
                unsafe { block.as_ptr().write_bytes(0xA5, size) };
                // SAFETY: allocated above with this layout, freed once.
                unsafe { WipingAlloc.deallocate(block, layout) };
            }
        };
        // SAFETY: every byte of the blocks is written before they are freed.
        let ((), freed) = unsafe { record_frees(fill_and_free) };
        assert_eq!(freed.len(), 6);
        for block in freed {
            assert!(block.before.iter().all(|&b| b == 0xA5), "{block:?}");
            assert!(block.after.iter().all(|&b| b == 0), "{block:?}");
        }
    }

    #[test]
    fn a_vector_grown_in_this_allocator_leaves_no_copy_behind() {
        // SAFETY: the blocks hold bytes only.
        let ((), freed) = unsafe {
            record_frees(|| {
                let mut v = allocator_api2::vec::Vec::with_capacity_in(4, WipingAlloc);
                v.extend_from_slice(&[0xC3_u8; 4]);
                // Growing goes through `Allocator::grow`, whose default copies and
                // then calls our `deallocate` on the old block.
                v.extend_from_slice(&[0xC3_u8; 1000]);
            })
        };
        assert!(freed.len() >= 2, "{} blocks freed", freed.len());
        assert!(freed.iter().any(|b| b.before.contains(&0xC3)));
        assert!(freed.iter().all(|b| b.after.iter().all(|&x| x == 0)));
    }
}

//! Zeroed arrays for the read-mostly engine's tables, cache-line aligned, and
//! for big tables mapped in by the writes that use them.
//!
//! Why not `alloc_zeroed`: for an alignment above 16 bytes Rust's system
//! allocator cannot use `calloc`; it allocates, then writes zeros over the
//! whole block, which maps in every page at once (measured here: 129 page
//! faults allocating 512 KiB at alignment 64, 1 at alignment 16). That put a
//! whole table's page faults (~10 us each on the bench's VM) into the one
//! write that started a migration. A fresh anonymous mapping is zero and each
//! page is mapped in when first touched, so a big table is mapped in a page at
//! a time, by `Edit::prepare_growth` ahead of the growth, and by the moves.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ops::Deref;
use std::ptr::NonNull;

/// Arrays of at least this many bytes get a mapping of their own.
const MAP_AT_LEAST: usize = 4 * 4096;

/// `len` values of `T`, created as zero bits.
pub(crate) struct Zeroed<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: a `Zeroed<T>` owns its values like a `Box<[T]>`.
unsafe impl<T: Send> Send for Zeroed<T> {}
// SAFETY: as for `Send`; shared access hands out `&[T]` only.
unsafe impl<T: Sync> Sync for Zeroed<T> {}

impl<T> Zeroed<T> {
    /// `len` values, all zero bits.
    ///
    /// # Safety
    /// All-zero bits must be a valid `T`.
    pub(crate) unsafe fn new(len: usize) -> Self {
        let layout = Self::layout(len);
        let ptr = if Self::mapped(layout) {
            map(layout.size())
        } else {
            // SAFETY: the layout has a non-zero size (checked in `layout`).
            unsafe { alloc_zeroed(layout) }
        };
        let Some(ptr) = NonNull::new(ptr.cast::<T>()) else {
            handle_alloc_error(layout)
        };
        Zeroed { ptr, len }
    }

    fn layout(len: usize) -> Layout {
        let layout = Layout::array::<T>(len).expect("table size overflows");
        assert!(layout.size() > 0, "tables have slots");
        // A mapping is page-aligned, which must satisfy `T`.
        assert!(layout.align() <= 4096);
        layout
    }

    /// Whether an array of `layout` lives in a mapping of its own (else in the
    /// global allocator).
    fn mapped(layout: Layout) -> bool {
        cfg!(all(unix, not(miri))) && layout.size() >= MAP_AT_LEAST
    }
}

impl<T> Deref for Zeroed<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialized values (zero bits are a valid
        // `T`, the contract of `new`), owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for Zeroed<T> {
    fn drop(&mut self) {
        // SAFETY: the values are owned and dropped once, here.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ))
        };
        let layout = Self::layout(self.len);
        if Self::mapped(layout) {
            unmap(self.ptr.as_ptr().cast(), layout.size());
        } else {
            // SAFETY: allocated in `new` with this layout.
            unsafe { dealloc(self.ptr.as_ptr().cast(), layout) };
        }
    }
}

/// A fresh private anonymous mapping of `size` bytes; null if there is none.
#[cfg(all(unix, not(miri)))]
fn map(size: usize) -> *mut u8 {
    // SAFETY: a new anonymous mapping aliases nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

/// Unmaps `p`, a mapping of `size` bytes from `map` no longer used, on a
/// background thread of its own (inline if there is none).
///
/// Why not inline: `munmap` flushes the mapping from the TLB of every CPU
/// running one of the process's threads and waits for them; on the bench's VM
/// that made the write freeing a grown shard's old table the slowest of
/// thousands (20-200 us; read_heavy mix, two threads: 20-36 inserts a run over
/// 20 us, 5-9 with unmapping left out, papaya 6-14). The thread is started
/// the first time a big table is freed and waits on a channel otherwise.
#[cfg(all(unix, not(miri)))]
fn unmap(p: *mut u8, size: usize) {
    use std::sync::mpsc::{channel, Sender};
    use std::sync::OnceLock;

    /// Where mappings go to be unmapped (`None`: no thread could be started).
    static UNMAPPER: OnceLock<Option<Sender<(usize, usize)>>> = OnceLock::new();
    let unmapper = UNMAPPER.get_or_init(|| {
        let (tx, rx) = channel::<(usize, usize)>();
        let worker = std::thread::Builder::new()
            .name("mapguard-unmap".into())
            .spawn(move || {
                for (addr, size) in rx {
                    unmap_now(std::ptr::with_exposed_provenance_mut(addr), size);
                }
            });
        worker.ok().map(|_| tx)
    });
    let sent = unmapper
        .as_ref()
        .is_some_and(|tx| tx.send((p.expose_provenance(), size)).is_ok());
    if !sent {
        unmap_now(p, size);
    }
}

#[cfg(all(unix, not(miri)))]
fn unmap_now(p: *mut u8, size: usize) {
    // SAFETY: `p` is a mapping of `size` bytes from `map`, no longer used.
    let done = unsafe { libc::munmap(p.cast(), size) };
    debug_assert_eq!(done, 0, "munmap of a table failed");
}

#[cfg(not(all(unix, not(miri))))]
fn map(_size: usize) -> *mut u8 {
    unreachable!("arrays are mapped only on unix")
}

#[cfg(not(all(unix, not(miri))))]
fn unmap(_p: *mut u8, _size: usize) {
    unreachable!("arrays are mapped only on unix")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[test]
    fn small_and_mapped_arrays_start_zero_and_keep_what_is_stored() {
        for len in [1, 100, MAP_AT_LEAST / 8, MAP_AT_LEAST] {
            // SAFETY: zero is a valid `AtomicU64`.
            let a = unsafe { Zeroed::<AtomicU64>::new(len) };
            assert_eq!(a.len(), len);
            assert!(a.iter().all(|x| x.load(Relaxed) == 0));
            a[len - 1].store(7, Relaxed);
            assert_eq!(a[len - 1].load(Relaxed), 7);
        }
    }
}

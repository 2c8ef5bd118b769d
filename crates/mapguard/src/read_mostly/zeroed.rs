//! Zeroed arrays for the read-mostly engine's tables: cache-line aligned, for
//! big tables in memory mappings of their own that are mapped in (or cleared)
//! a page per write, and kept for reuse instead of unmapped.
//!
//! Why not `alloc_zeroed`: for an alignment above 16 bytes Rust's system
//! allocator cannot use `calloc`; it allocates, then writes zeros over the
//! whole block, which maps in every page at once (129 page faults allocating
//! 512 KiB at alignment 64, 1 at alignment 16). That would put a whole
//! table's page faults (~10 us each on the bench's VM) into the one write
//! that starts a migration.
//!
//! Why keep freed mappings: `munmap` flushes the mapping from the TLB of every
//! CPU running one of the process's threads and waits for them. On the
//! bench's VM that makes the write freeing a grown shard's old table one of
//! the slowest (20-200 us; two threads, read_heavy mix: 20-36 inserts over
//! 20 us against 5-9 with mappings never unmapped), and handing the `munmap`
//! to a background thread costs read throughput instead (the flushes still
//! interrupt the readers). A shard's next table is often the size another
//! shard just freed, since every shard grows through the same sizes, and a
//! map replaced by a new one frees the sizes the new one will need.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ops::Deref;
use std::ptr::NonNull;

/// Arrays of at least this many bytes get a mapping of their own.
const MAP_AT_LEAST: usize = 4 * PAGE;

const PAGE: usize = 4096;

/// Raw memory of an array: a mapping of its own, or a block of the global
/// allocator.
enum Block {
    Mapped { ptr: NonNull<u8>, size: usize },
    Allocated { ptr: NonNull<u8>, layout: Layout },
}

// SAFETY: a block is plain owned memory.
unsafe impl Send for Block {}
// SAFETY: as for `Send`.
unsafe impl Sync for Block {}

impl Block {
    /// Memory for `layout`, and whether it may hold old bytes (a reused
    /// mapping): else it is zero.
    fn new(layout: Layout, reuse: bool) -> (Block, bool) {
        if !mapped(layout) {
            // SAFETY: the layout has a non-zero size (checked by the caller).
            let ptr = unsafe { alloc_zeroed(layout) };
            let Some(ptr) = NonNull::new(ptr) else {
                handle_alloc_error(layout)
            };
            return (Block::Allocated { ptr, layout }, false);
        }
        let size = layout.size().next_multiple_of(PAGE);
        let reused = reuse.then(|| mappings::take(size)).flatten();
        let dirty = reused.is_some();
        let Some(ptr) = reused.or_else(|| mappings::fresh(size)) else {
            handle_alloc_error(layout)
        };
        (Block::Mapped { ptr, size }, dirty)
    }

    fn ptr(&self) -> *mut u8 {
        match *self {
            Block::Mapped { ptr, .. } | Block::Allocated { ptr, .. } => ptr.as_ptr(),
        }
    }

    /// Pages of a mapping (0 for an allocator block, which comes zeroed).
    fn pages(&self) -> usize {
        match *self {
            Block::Mapped { size, .. } => size / PAGE,
            Block::Allocated { .. } => 0,
        }
    }

    /// Zeros page `page` of a mapping (which also maps it in).
    fn clear_page(&self, page: usize) {
        // SAFETY: the page is inside the mapping, which the block owns and no
        // one else reads or writes while it is being cleared.
        unsafe { self.ptr().add(page * PAGE).write_bytes(0, PAGE) };
    }

    /// Maps in page `page` of a fresh mapping (already zero) with one store.
    fn touch_page(&self, page: usize) {
        // SAFETY: as in `clear_page`; zero over zero.
        unsafe { self.ptr().add(page * PAGE).write(0) };
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        match *self {
            Block::Mapped { ptr, size } => mappings::give_back(ptr, size),
            // SAFETY: allocated in `new` with this layout.
            Block::Allocated { ptr, layout } => unsafe { dealloc(ptr.as_ptr(), layout) },
        }
    }
}

/// Whether an array of `layout` lives in a mapping of its own.
fn mapped(layout: Layout) -> bool {
    cfg!(all(unix, not(miri))) && layout.size() >= MAP_AT_LEAST
}

fn layout<T>(len: usize) -> Layout {
    let layout = Layout::array::<T>(len).expect("table size overflows");
    assert!(layout.size() > 0, "tables have slots");
    // A mapping is page-aligned, which must satisfy `T`.
    assert!(layout.align() <= PAGE);
    layout
}

/// `len` values of `T`, created as zero bits.
pub(crate) struct Zeroed<T> {
    /// The block's memory, typed (kept apart so a read is one load).
    values: NonNull<T>,
    len: usize,
    /// Owns the memory: frees or keeps it when dropped.
    _memory: Block,
}

// SAFETY: a `Zeroed<T>` owns its values like a `Box<[T]>`.
unsafe impl<T: Send> Send for Zeroed<T> {}
// SAFETY: as for `Send`; shared access hands out `&[T]` only.
unsafe impl<T: Sync> Sync for Zeroed<T> {}

impl<T> Zeroed<T> {
    /// `len` values, all zero bits, in fresh memory (mapped in as used).
    ///
    /// # Safety
    /// All-zero bits must be a valid `T`.
    pub(crate) unsafe fn new(len: usize) -> Self {
        let (block, dirty) = Block::new(layout::<T>(len), false);
        debug_assert!(!dirty);
        Zeroed::of(block, len)
    }

    fn of(block: Block, len: usize) -> Self {
        let values = NonNull::new(block.ptr().cast::<T>()).expect("blocks are not null");
        Zeroed {
            values,
            len,
            _memory: block,
        }
    }
}

impl<T> Deref for Zeroed<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the block holds `len` initialized values (zero bits are a
        // valid `T`, the contract of `new` and `Clearing::new`), owned by `self`
        // and aligned (mappings are page-aligned, blocks have `T`'s layout).
        unsafe { std::slice::from_raw_parts(self.values.as_ptr(), self.len) }
    }
}

impl<T> Drop for Zeroed<T> {
    fn drop(&mut self) {
        let values = std::ptr::slice_from_raw_parts_mut(self.values.as_ptr(), self.len);
        // SAFETY: the values are owned and dropped once, here; the block
        // frees (or keeps) the memory after.
        unsafe { std::ptr::drop_in_place(values) };
    }
}

/// An array of `len` values of `T` on its way to zero bits, a page a step:
/// a reused mapping is cleared, a fresh one only mapped in.
pub(crate) struct Clearing<T> {
    block: Block,
    len: usize,
    dirty: bool,
    /// Pages done.
    done: usize,
    _values: std::marker::PhantomData<T>,
}

impl<T> Clearing<T> {
    /// Memory for `len` values, reusing a kept mapping when one fits.
    ///
    /// # Safety
    /// All-zero bits must be a valid `T`.
    pub(crate) unsafe fn new(len: usize) -> Self {
        let (block, dirty) = Block::new(layout::<T>(len), true);
        Clearing {
            block,
            len,
            dirty,
            done: 0,
            _values: std::marker::PhantomData,
        }
    }

    /// Values the array will hold.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Clears (or maps in) the next page, if any is left.
    pub(crate) fn step(&mut self) {
        if self.done < self.block.pages() {
            if self.dirty {
                self.block.clear_page(self.done);
            } else {
                self.block.touch_page(self.done);
            }
            self.done += 1;
        }
    }

    /// The array, after clearing what is left.
    pub(crate) fn finish(mut self) -> Zeroed<T> {
        if self.dirty {
            while self.done < self.block.pages() {
                self.step();
            }
        }
        Zeroed::of(self.block, self.len)
    }
}

/// The process's table mappings: fresh ones, and the few kept for reuse.
#[cfg(all(unix, not(miri)))]
mod mappings {
    use std::ptr::NonNull;

    use parking_lot::Mutex;

    /// Kept mappings, at most this many (a bound on the scans below; the
    /// bytes are the bound on memory)...
    ///
    /// Why so many: a map of 16 shards growing to 8,192 slots maps arrays of
    /// four sizes in each shard, 64 mappings, and frees as many; keeping only
    /// 16, a program that builds such maps one after another (the bench's
    /// rounds) unmaps most of them and faults the next map's in afresh.
    /// Keeping 256 against 16: `rapid_grow`-mix loop +23 % at one thread and
    /// +25 % at two, inserts over 10 us at two threads 2-3x fewer, `exchange`
    /// +9 % at two (an unmap interrupts the CPUs of the process's other
    /// threads to flush their TLBs, and a fresh mapping's pages fault in one
    /// by one).
    pub(super) const MAX_KEPT: usize = 256;
    /// ...and this many bytes.
    const MAX_KEPT_BYTES: usize = 64 << 20;

    /// (address, size) of each kept mapping, the one kept longest ago first.
    static KEPT: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

    /// A fresh private anonymous mapping of `size` bytes (zero).
    pub(super) fn fresh(size: usize) -> Option<NonNull<u8>> {
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
            None
        } else {
            NonNull::new(p.cast())
        }
    }

    /// A kept mapping of exactly `size` bytes (its old contents left in it):
    /// the one kept last, so that the ones kept longest go first.
    pub(super) fn take(size: usize) -> Option<NonNull<u8>> {
        let mut kept = KEPT.lock();
        let i = kept.iter().rposition(|&(_, s)| s == size)?;
        let (addr, _) = kept.remove(i);
        NonNull::new(std::ptr::with_exposed_provenance_mut(addr))
    }

    /// Keeps a mapping no longer used for reuse, unmapping the ones kept
    /// longest ago (it last) when more than the limits would be kept.
    ///
    /// Why the oldest go: every unmap interrupts the CPUs running the
    /// process's other threads (20-300 us on the bench's VM, whatever the
    /// size), so what counts is how often a freed table unmaps one, and the
    /// sizes a program frees again soon are the ones it freed last. Unmapping
    /// the smallest instead (they cost the fewest pages) thrashes once big
    /// tables of maps long dropped fill the bytes: the sizes every growing map
    /// passes through are unmapped on each free and mapped afresh for the next
    /// map (bench `read_heavy`, full size, after the throughput part, two
    /// threads: frees of 30-570 us, insert p99.9 95-105 us; with the oldest
    /// first, 5.6 and 10.4 us, papaya's ~50 us).
    pub(super) fn give_back(ptr: NonNull<u8>, size: usize) {
        let evicted = {
            let mut kept = KEPT.lock();
            kept.push((ptr.as_ptr().expose_provenance(), size));
            let mut bytes: usize = kept.iter().map(|&(_, s)| s).sum();
            let mut evicted = 0;
            while kept.len() - evicted > MAX_KEPT || bytes > MAX_KEPT_BYTES {
                bytes -= kept[evicted].1;
                evicted += 1;
            }
            kept.drain(..evicted).collect::<Vec<_>>()
        };
        for (addr, size) in evicted {
            // SAFETY: a kept mapping of `size` bytes from `fresh`, no longer
            // reachable from the kept list.
            let done = unsafe { libc::munmap(std::ptr::with_exposed_provenance_mut(addr), size) };
            debug_assert_eq!(done, 0, "munmap of a table failed");
        }
    }
}

#[cfg(not(all(unix, not(miri))))]
mod mappings {
    use std::ptr::NonNull;

    pub(super) fn fresh(_size: usize) -> Option<NonNull<u8>> {
        unreachable!("arrays are mapped only on unix")
    }

    pub(super) fn take(_size: usize) -> Option<NonNull<u8>> {
        unreachable!("arrays are mapped only on unix")
    }

    pub(super) fn give_back(_ptr: NonNull<u8>, _size: usize) {
        unreachable!("arrays are mapped only on unix")
    }
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

    /// Past the limits, the mappings kept longest ago are unmapped, however
    /// big, not the small one freed last. (Other tests keep mappings in the
    /// same process-wide list, but never of these sizes, and only the ones
    /// kept before them go first.)
    #[cfg(all(unix, not(miri)))]
    #[test]
    fn past_the_limits_the_mappings_kept_longest_ago_are_unmapped() {
        // Sizes no other test uses (never touched, so no memory): old big
        // ones filling the bytes, then a small one.
        let big = 4 << 20;
        let olds: Vec<usize> = (0..16).map(|i| big + i * PAGE).collect();
        for &size in &olds {
            mappings::give_back(mappings::fresh(size).expect("mmap"), size);
        }
        let small = 600 * PAGE;
        mappings::give_back(mappings::fresh(small).expect("mmap"), small);
        assert!(
            mappings::take(olds[0]).is_none(),
            "the oldest went for the bytes"
        );
        let recent = mappings::take(small).expect("the one freed last is kept");
        mappings::give_back(recent, small);
        // More than the count, in few bytes (13 pages: no table's size).
        let tiny = 13 * PAGE;
        for _ in 0..=mappings::MAX_KEPT {
            mappings::give_back(mappings::fresh(tiny).expect("mmap"), tiny);
        }
        assert!(
            mappings::take(small).is_none(),
            "past the count, the oldest go too"
        );
        let kept = mappings::take(tiny).expect("the last ones are kept");
        mappings::give_back(kept, tiny);
    }

    #[test]
    fn a_reused_mapping_is_cleared_before_it_is_handed_out() {
        let len = 3 * MAP_AT_LEAST / 8;
        for round in 0..4 {
            // SAFETY: zero is a valid `AtomicU64`.
            let mut clearing = unsafe { Clearing::<AtomicU64>::new(len) };
            clearing.step();
            let a = clearing.finish();
            assert!(
                a.iter().all(|x| x.load(Relaxed) == 0),
                "round {round}: old values in a cleared array"
            );
            for x in a.iter() {
                x.store(u64::MAX, Relaxed);
            }
            // Dropped: kept for the next round's reuse.
        }
    }
}

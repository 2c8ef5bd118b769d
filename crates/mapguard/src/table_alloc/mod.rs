//! The allocator behind every hash table that stores user values (a
//! [`ShardedMap`](crate::ShardedMap) shard's slots, a
//! [`SnapshotMap`](crate::SnapshotMap) generation).
//!
//! Without feature `zeroize` it is the global allocator. With it, it is
//! [`WipingAlloc`], which zeroes every block before freeing it. That closes the
//! one gap the `*_zeroized` methods cannot reach: hashbrown grows and shrinks
//! a table by copying its entries bytewise into a new allocation and freeing
//! the old one without dropping anything in it, so the old block would still
//! hold every value that was in the table, secrets included. A `Drop` or
//! `Zeroize` impl on the value never runs for those copies; only the allocator
//! sees them.
//!
//! Why an allocator rather than, say, steering resizes by hand: hashbrown may
//! resize on any insert and on `shrink_to`/`shrink_to_fit`, and `Clone` of a
//! table (every [`SnapshotMap`](crate::SnapshotMap) write) allocates and frees
//! tables too; the allocator is the single point all of these pass through,
//! and wiping there costs one pass over a block that the resize has just
//! copied anyway.
//!
//! What stays, by design: while a table is alive, a slot a value was moved or
//! removed out of keeps its bytes until it is reused (hashbrown does not clear
//! slots, and a rehash in place, after many removals, moves entries within the
//! same block); the `*_zeroized` methods wipe the slot before removing, and
//! everything else is wiped when the block is freed.

#[cfg(feature = "zeroize")]
#[allow(unsafe_code)] // implementing `Allocator` is `unsafe`; see the module's SAFETY notes
mod wiping;

#[cfg(feature = "zeroize")]
pub(crate) use self::wiping::WipingAlloc;
#[cfg(all(feature = "zeroize", test))]
pub(crate) use self::wiping::{record_frees, FreedBlock};

/// The allocator of the tables that hold user values.
#[cfg(feature = "zeroize")]
pub(crate) type TableAlloc = WipingAlloc;

/// The allocator of the tables that hold user values.
#[cfg(not(feature = "zeroize"))]
pub(crate) type TableAlloc = allocator_api2::alloc::Global;

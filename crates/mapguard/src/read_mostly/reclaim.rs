//! Memory reclamation for the read-mostly engine: readers pin the process-wide
//! epoch (`epoch.rs`); a writer stamps what it unlinks with the epoch, and
//! reuses or frees it once the stamp expired.
//!
//! - A dead slot is stamped in its group (`table.rs`) and reused in place by a
//!   later write that picks a slot in that group, so nothing is listed per
//!   slot: a death costs a load of the epoch and a byte stored.
//! - A table migrated away from (or cleared) waits in its shard's
//!   [`Garbage`], freed by a later write of the shard once expired.
//!
//! The epoch advances only when writers ask for it, with a process-wide
//! barrier each time, so a thread asks after it unlinked [`ADVANCE_EVERY`]
//! slots or tables, in any shard of any map, and with no lock held; every
//! shard's stamps age with every thread's advances. Per thread, not per
//! shard: the shards of a map written uniformly would reach their counts
//! together, and after that burst of advances the epoch would stand still
//! while every shard counted again, so a dead slot would wait for about a
//! thousand deaths in its own shard, and tables would get rid of their dead
//! by migrating instead (bench write-count loop: 48 same-size migrations in
//! 16 shards counting per shard, 28 counting per thread).
//!
//! Under `--cfg loom` a guard is a plain acquire load and nothing ever
//! expires (dead slots are never reused, tables are freed with the map), which
//! is always safe: the loom models of the engine check its own protocol
//! (publication, migration, forwarding), and the epoch protocol has a model of
//! its own.

use std::collections::VecDeque;

use super::table::Table;

#[cfg(loom)]
pub(crate) use self::loom_guard::{pin, Guard};
#[cfg(not(loom))]
pub(crate) use super::epoch::global::{pin, Guard};

/// Slots a thread marks dead (and tables it retires) before it advances the
/// epoch. Each advance costs one process-wide barrier: ~0.7 us alone, but
/// 2-5 us on the bench's VM when it must interrupt a CPU running another
/// thread of the process; every 64 makes that the insert p99 with two threads
/// (2-3 us; 0.8-1.3 us at 256), and every 256 still the p99.9 (7-10 us,
/// read_heavy mix; 4-5 us at 1024, below papaya's 6-7 us). On a host where
/// the barrier takes 30-280 us, every 256 puts the insert p99.9 back near
/// papaya's (28-58 us), and every 4,096 buys the `exchange` loop nothing (the
/// slots it leaves dead make the tables grow instead). A dead slot waits for
/// three advances by any thread.
#[cfg(not(loom))]
pub(crate) const ADVANCE_EVERY: usize = 1024;

/// What one shard's writer retired and has not freed yet: its old tables.
///
/// `repr(C)`, the oldest stamp (what every write reads) first: it ends the
/// cache line of the shard's counts and lock, and the queue, read only when
/// a table is retired or freed, starts the next (see `Shard`).
#[repr(C)]
pub(crate) struct Garbage<K, V> {
    /// The stamp of the oldest retired table, if any: what every write
    /// checks, without reading `tables` (another cache line).
    oldest: Option<u8>,
    /// Retired tables with their stamps, oldest first.
    tables: VecDeque<(u8, *mut Table<K, V>)>,
}

/// An expired table to free after the writer lock is released (its entries'
/// destructors run there).
#[must_use]
pub(crate) struct Freed<K, V>(Option<*mut Table<K, V>>);

impl<K, V> Drop for Freed<K, V> {
    #[inline]
    fn drop(&mut self) {
        // Most writes free nothing.
        if let Some(table) = self.0.take() {
            free_table(table);
        }
    }
}

#[cold]
fn free_table<K, V>(table: *mut Table<K, V>) {
    // SAFETY: the table's stamp expired: every reader that could reach it
    // left; tables are `Box`es, freed once.
    drop(unsafe { Box::from_raw(table) });
}

impl<K, V> Garbage<K, V> {
    pub(crate) fn new() -> Self {
        Garbage {
            oldest: None,
            tables: VecDeque::new(),
        }
    }

    /// Frees `table` (a `Box`) once no reader that might have loaded it is
    /// left.
    ///
    /// # Safety
    /// It is retired once, and already unreachable for readers that start
    /// from now on.
    pub(crate) unsafe fn retire_table(&mut self, table: *mut Table<K, V>) {
        // One, not its slots: counting a big table's slots makes the write
        // that finishes a migration also advance the epoch (a process-wide
        // barrier), which puts the bench's read_heavy insert p99.9 at 16-23 us,
        // twice papaya's (0.8-1 us counting one).
        let stamp = stamp_unlinked();
        self.oldest.get_or_insert(stamp);
        self.tables.push_back((stamp, table));
    }

    /// After a write: hands over the oldest table if it expired.
    #[inline]
    pub(crate) fn collect(&mut self) -> Freed<K, V> {
        match self.oldest {
            Some(stamp) if expired(stamp) => self.take_oldest(),
            _ => Freed(None),
        }
    }

    #[cold]
    fn take_oldest(&mut self) -> Freed<K, V> {
        let oldest = self.tables.pop_front().map(|(_, table)| table);
        self.oldest = self.tables.front().map(|&(stamp, _)| stamp);
        Freed(oldest)
    }

    /// Frees every table now.
    ///
    /// # Safety
    /// No reader can be inside the map: it is being dropped.
    pub(crate) unsafe fn free_all(&mut self) {
        self.oldest = None;
        for (_, table) in self.tables.drain(..) {
            free_table(table);
        }
    }
}

impl<K, V> Drop for Garbage<K, V> {
    fn drop(&mut self) {
        // SAFETY: a shard's garbage is dropped with the shard, after the map
        // (no reader can be inside it).
        unsafe { self.free_all() }
    }
}

#[cfg(not(loom))]
use super::epoch::global::stamp;
#[cfg(not(loom))]
pub(crate) use super::epoch::global::{advance, expired};

#[cfg(not(loom))]
thread_local! {
    /// Objects this thread unlinked since it last advanced the epoch.
    static UNLINKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Stamps an object the calling thread just unlinked from every shared place
/// (a slot marked dead, a table retired), for [`expired`], and counts it
/// toward the thread's next advance.
#[inline]
pub(crate) fn stamp_unlinked() -> u8 {
    #[cfg(not(loom))]
    UNLINKED.with(|n| n.set(n.get() + 1));
    stamp()
}

/// Advances the epoch if the calling thread unlinked [`ADVANCE_EVERY`]
/// objects since it last did. Call it with no lock held: it may take a
/// process-wide barrier.
#[cfg(not(loom))]
#[inline]
pub(crate) fn advance_if_due() {
    if UNLINKED.with(|n| n.get() >= ADVANCE_EVERY) {
        UNLINKED.with(|n| n.set(0));
        advance();
    }
}

#[cfg(loom)]
pub(crate) fn advance_if_due() {}

/// Under loom nothing expires: tables are kept until the map drops, dead
/// slots are never reused.
#[cfg(loom)]
fn stamp() -> u8 {
    0
}

#[cfg(loom)]
pub(crate) fn expired(_stamp: u8) -> bool {
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

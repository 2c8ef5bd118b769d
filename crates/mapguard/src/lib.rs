//! Concurrent maps for services that cannot lose updates.
//!
//! mapguard answers the production incidents of concurrent maps: the crash of
//! an unsynchronised map, an update silently lost by get-then-set, a cache
//! stampede after a delete, stale reads while a map grows, a deadlock through a
//! guard held too long, and contention nobody could see. It does so with an API
//! in which those bugs can't be written, shared by three engines through the
//! [`ConcurrentMap`] trait, so that switching engines is a change of type:
//!
//! - **No guards.** Values are reached through closures ([`ShardedMap::read`],
//!   [`ShardedMap::update`], [`ShardedMap::compute`]) or returned owned
//!   ([`ShardedMap::get_cloned`]); nothing that holds a lock can be kept across
//!   an `.await` or forgotten.
//! - **Atomic read-modify-write.** `update` and `compute` run under the entry's
//!   lock; [`ShardedMap::compare_and_update`] does optimistic updates across an
//!   `.await` or a network call with per-entry versions.
//! - **Re-entry is an error, not a hang.** A closure that calls back into a
//!   blocking method of the same map panics at once, naming both calls; the
//!   `try_*` methods return [`WouldBlock`] instead of waiting.
//! - **No stampede.** [`ShardedMap::get_or_load`] runs one load per missing key
//!   however many callers arrive, shares its value or error, survives a
//!   panicking loader, and can remember misses for a TTL.
//! - **No stale fill.** A write to a key while its load is in flight (the
//!   classic "update the database, then invalidate the cache") keeps the load
//!   from storing what it read before: the callers get that value, the map
//!   does not keep it, and the next `get_or_load` loads again.
//! - **Resizing is invisible.** A [`ShardedMap`] shard's table only grows or
//!   shrinks under its exclusive lock; a [`ReadMostlyMap`] migrates a few slots
//!   per write while readers carry on, and a reader always sees each key's
//!   latest committed value; a [`SnapshotMap`] publishes whole immutable copies.
//! - **Reads that never block.** [`ReadMostlyMap`] reads take no lock and write
//!   no shared memory: its own epoch reclamation, where entering and leaving
//!   a read are two plain stores to the thread's own record (the fence they
//!   would need is paid by the rare reclaimer, with `membarrier`), so readers
//!   scale with cores and never wait for a writer.
//! - **Self-reporting.** [`ShardedMap::stats`] gives exact per-shard counts of
//!   reads, writes and contended lock acquisitions, sampled wait and hold time
//!   histograms, and the hottest keys; feature `prometheus` exports them.
//!
//! # Which engine for which workload
//!
//! | workload | engine | why |
//! |---|---|---|
//! | general purpose: sessions, counters, caches with steady writes | [`ShardedMap`] | writes lock one shard of many; reads take a shared lock |
//! | read-mostly and large, with steady writes: caches, `sync.Map` uses | [`ReadMostlyMap`] | lock-free reads; writes lock one shard and publish a new entry in a free slot of its table (no allocation); no resize pause |
//! | read-mostly, rarely changed: config, routing tables, feature flags | [`SnapshotMap`] | reads are wait-free and never contend; every write copies the map |
//! | several keys must change together, visible at once | [`SnapshotMap::write_batch`] | one atomic publication |
//! | expensive values loaded on miss | any, with `get_or_load` | single flight, negative caching |
//! | a value edited across an `.await` | any, with `compare_and_update` | optimistic, no lock held |
//!
//! Rules of thumb: with more than about one write per thousand reads, or more
//! than a few thousand entries and regular writes, don't use [`SnapshotMap`] (a
//! write costs O(n)). Between the other two: [`ReadMostlyMap`] when reads
//! dominate and must never wait (its reads cost about what papaya's do: ~120
//! instructions per get against papaya's ~125, in the bench's callgrind count,
//! and one cache miss, on the entry, against papaya's two or three; [`ShardedMap`]'s
//! `get_cloned` costs ~97, dashmap's `get` ~104, but takes a shared lock: a
//! write to the shard makes it wait; many reads through one [`ReadMostlyMap::pin`] ~96 each, and
//! they borrow their values instead of cloning them), [`ShardedMap`] when
//! writes are frequent or values are expensive to clone ([`ReadMostlyMap`]
//! never changes an entry readers may hold: every write publishes a new one,
//! so its writes need
//! `K: Clone + V: Clone`, cost about twice [`ShardedMap`]'s (the bench's ops
//! part, one thread, 131,072 keys: a replacement 118 ns against 50), and a
//! table keeps a replaced entry's slot until no reader can hold it). That last
//! point matters for a few hot keys removed and inserted again at a high rate:
//! each leaves dead copies that its reads probe past until they may be reused
//! (the bench's Zipf-keyed read-mostly mix, 1 % removals: a hit probes 7.4
//! groups of eight slots past its home on average, against 0.02 with uniform
//! keys, and the map runs at about 0.7x of scc's `HashIndex` there, still
//! 2.3x-3.4x papaya's rate). If you need a consistent view of the whole map,
//! use [`SnapshotMap::snapshot`]; [`ShardedMap::iter`] is consistent per shard
//! only.
//!
//! ```
//! use mapguard::{Compute, ShardedMap, SnapshotMap};
//!
//! // A shared order book: read-modify-write without lost updates.
//! let orders: ShardedMap<u64, &str> = ShardedMap::new();
//! orders.insert(1, "placed");
//! orders.compute(1, |status| match status {
//!     Some(&"placed") => Compute::Set("paid"),
//!     _ => Compute::Keep,
//! });
//! assert_eq!(orders.get_cloned(&1), Some("paid"));
//!
//! // Configuration: wait-free reads, atomic multi-key changes.
//! let config: SnapshotMap<&str, u32> = SnapshotMap::new();
//! config.write_batch(|tx| {
//!     tx.insert("timeout_ms", 500);
//!     tx.insert("retries", 3);
//! });
//! let view = config.snapshot(); // consistent; unaffected by later writes
//! assert_eq!(view.get("retries"), Some(&3));
//! ```
//!
//! # Features
//!
//! - `serde`: `Serialize`/`Deserialize` for every engine (as maps).
//! - `rayon`: `ShardedMap::par_iter`, `ReadMostlyMap::par_iter` and `Snapshot::par_iter`.
//! - `zeroize`: `remove_zeroized`, `insert_zeroizing`, `retain_zeroizing`,
//!   `clear_zeroized` for values that hold secrets; and both engines' tables
//!   are allocated by an allocator that zeroes every block it frees, so the
//!   copies a table leaves behind when it grows or shrinks (or when a
//!   [`SnapshotMap`] write copies it) never reach freed memory. Memory a value
//!   owns itself (a `Vec`'s buffer) is wiped by the `*_zeroized` methods only;
//!   store such values as `zeroize::Zeroizing<_>` to wipe them on every drop
//!   (a [`SnapshotMap`]'s old generations, a `get_or_load` result).
//!   A [`ReadMostlyMap`] wipes a slot when it frees it for reuse, and a table's
//!   slots when it frees the table (the copies a migration leaves behind
//!   included), so no table memory it frees holds a value either.
//! - `prometheus`: `register` on every engine exports its telemetry through
//!   prometheus-client (a [`SnapshotMap`] has write counters only).
//!
//! # Guarantees and limits
//!
//! Every operation on one key is linearizable (tested against a Wing–Gong
//! checker). The crate's `unsafe` code is the read-mostly engine's (entries in
//! raw table memory and their reclamation, also checked by loom models of its
//! migration and epoch protocols) and the wiping table allocator of feature `zeroize`
//! (`#![deny(unsafe_code)]` everywhere else). `scripts/miri.sh` runs the unit
//! and integration tests under Miri, which checks that code and the
//! dependencies' unsafe code (hashbrown, arc-swap, parking_lot) for
//! undefined behaviour and data races as the tests drive them;
//! `scripts/tsan.sh` runs the multi-threaded ones under ThreadSanitizer, with
//! the standard library instrumented too. Both report nothing, with nothing
//! suppressed.
//!
//! Re-entry is detected for the closures passed to a map. A key's `Eq` or a
//! value's `Clone` also runs under a lock (a lookup compares keys, `get_cloned`
//! clones), but such implementations are not expected to call into the map
//! and are not checked: one that does can deadlock, as with any map.
//!
//! Locks are not poisoned: a panicking closure leaves the map usable (the
//! value may be half-updated by the closure itself). Calling *another* map
//! from inside a closure is allowed; two threads doing so in opposite orders
//! can still deadlock, as with any two locks, so keep closures short and free
//! of other locking.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod api;
mod ext;
mod iter;
mod loader;
#[allow(unsafe_code)] // the lock-free engine: entries in raw table memory, and reclamation
mod read_mostly;
mod reentry;
mod sharded;
mod snapshot;
mod sync;
mod table_alloc;
mod telemetry;

pub use api::{Compute, ConcurrentMap, Conflict, WouldBlock};
pub use iter::Iter;
/// The read-mostly engine's epoch protocol, for its loom model only.
#[cfg(loom)]
#[doc(hidden)]
pub use read_mostly::epoch::Domain as LoomEpochDomain;
pub use read_mostly::{Pinned, ReadMostlyMap, ReadMostlyMapBuilder};
pub use sharded::{ShardedMap, ShardedMapBuilder};
pub use snapshot::{Batch, Snapshot, SnapshotMap, SnapshotMapBuilder, SnapshotStats};
pub use telemetry::{Histogram, HotKey, MapStats, ShardStats};

/// The README's examples, run as doctests (`cargo test -p mapguard --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The default hasher of every engine: foldhash's fast, randomly seeded one.
pub type DefaultHashBuilder = foldhash::fast::RandomState;

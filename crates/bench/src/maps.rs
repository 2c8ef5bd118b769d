//! The maps under test behind one narrow interface, each used the way its documentation
//! recommends, all with the same hasher (foldhash's fast hasher, one fixed seed).

use std::collections::HashMap as StdHashMap;
use std::hint::black_box;
use std::sync::RwLock as StdRwLock;

use mapguard::{ReadMostlyMap, ShardedMap, SnapshotMap};

/// The one hasher every map uses: foldhash's fast hasher with a fixed seed, so instruction
/// counts repeat exactly from run to run.
pub type Hasher = foldhash::fast::FixedState;

/// The hasher every map is built with.
pub fn hasher() -> Hasher {
    foldhash::fast::FixedState::with_seed(0x6d61_7067_7561_7264)
}

/// How many writes a [`SnapshotMap`] session buffers before publishing them in one
/// `write_batch`: every publication copies the map, so batching is its intended use for writes.
pub const SNAPSHOT_BATCH: usize = 256;

/// One thread's access to a map for the length of a run.
pub trait Session {
    /// Looks `key` up; true on a hit. The value is passed through `black_box`.
    fn get(&mut self, key: u64) -> bool;
    /// Inserts or replaces.
    fn insert(&mut self, key: u64, value: u64);
    /// Removes `key` if present.
    fn remove(&mut self, key: u64);
    /// Adds one to `key`'s value if present (a read-modify-write under the map's own
    /// synchronisation).
    fn update(&mut self, key: u64);
    /// Makes every buffered write visible (only batching sessions buffer).
    fn finish(&mut self) {}
}

/// A concurrent map as the benchmark drives it.
pub trait BenchMap: Send + Sync + Sized {
    /// A thread's handle, borrowed from the map.
    type Session<'a>: Session
    where
        Self: 'a;
    /// An empty map with no capacity reserved (growth is part of what is measured).
    fn empty() -> Self;
    /// Starts a thread's session.
    fn session(&self) -> Self::Session<'_>;
    /// Called once after a bulk load, before anything is timed: what the map's
    /// documentation recommends doing at that point (nothing, for most).
    fn loaded(&self) {}
}

/// Every map the harness knows, in the order tables list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapKind {
    /// `mapguard::ShardedMap` (hashbrown shards behind read-write locks).
    Sharded,
    /// `mapguard::SnapshotMap` (copy-on-write; writes batched, see [`SNAPSHOT_BATCH`]).
    Snapshot,
    /// `mapguard::ReadMostlyMap` (lock-free reads, incremental migration).
    ReadMostly,
    /// `dashmap::DashMap`.
    DashMap,
    /// `papaya::HashMap`, pinned per operation.
    Papaya,
    /// `scc::HashMap`.
    Scc,
    /// `scc::HashIndex` (scc's read-optimized map: lock-free reads, entries immutable while
    /// reachable, the design closest to ReadMostlyMap's).
    SccHashIndex,
    /// `flurry::HashMap`, a guard per operation.
    Flurry,
    /// `std::sync::RwLock<std::collections::HashMap>`.
    StdRwLock,
    /// `parking_lot::RwLock<hashbrown::HashMap>`.
    ParkingLotRwLock,
}

impl MapKind {
    /// Every map, mapguard's engines first.
    pub const ALL: [MapKind; 10] = [
        MapKind::Sharded,
        MapKind::Snapshot,
        MapKind::ReadMostly,
        MapKind::DashMap,
        MapKind::Papaya,
        MapKind::Scc,
        MapKind::SccHashIndex,
        MapKind::Flurry,
        MapKind::StdRwLock,
        MapKind::ParkingLotRwLock,
    ];

    /// The name used in tables, CSV and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MapKind::Sharded => "mapguard-sharded",
            MapKind::Snapshot => "mapguard-snapshot",
            MapKind::ReadMostly => "mapguard-readmostly",
            MapKind::DashMap => "dashmap",
            MapKind::Papaya => "papaya",
            MapKind::Scc => "scc",
            MapKind::SccHashIndex => "scc-hashindex",
            MapKind::Flurry => "flurry",
            MapKind::StdRwLock => "std-rwlock",
            MapKind::ParkingLotRwLock => "parking_lot-rwlock",
        }
    }

    /// Parses a name from [`MapKind::name`].
    pub fn from_name(name: &str) -> Option<MapKind> {
        MapKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// mapguard's own engines (the rest are peers).
    pub fn is_mapguard(self) -> bool {
        matches!(
            self,
            MapKind::Sharded | MapKind::Snapshot | MapKind::ReadMostly
        )
    }

    /// Calls `visitor` with this kind's map type.
    pub fn visit<V: MapVisitor>(self, visitor: V) -> V::Output {
        match self {
            MapKind::Sharded => visitor.visit::<ShardedMap<u64, u64, Hasher>>(),
            MapKind::Snapshot => visitor.visit::<SnapshotMap<u64, u64, Hasher>>(),
            MapKind::ReadMostly => visitor.visit::<ReadMostlyMap<u64, u64, Hasher>>(),
            MapKind::DashMap => visitor.visit::<dashmap::DashMap<u64, u64, Hasher>>(),
            MapKind::Papaya => visitor.visit::<papaya::HashMap<u64, u64, Hasher>>(),
            MapKind::Scc => visitor.visit::<scc::HashMap<u64, u64, Hasher>>(),
            MapKind::SccHashIndex => visitor.visit::<scc::HashIndex<u64, u64, Hasher>>(),
            MapKind::Flurry => visitor.visit::<flurry::HashMap<u64, u64, Hasher>>(),
            MapKind::StdRwLock => visitor.visit::<StdRwLock<StdHashMap<u64, u64, Hasher>>>(),
            MapKind::ParkingLotRwLock => {
                visitor.visit::<parking_lot::RwLock<hashbrown::HashMap<u64, u64, Hasher>>>()
            }
        }
    }
}

/// Code generic over the map type, run by [`MapKind::visit`] (closures can't be generic).
pub trait MapVisitor {
    /// What the visit returns.
    type Output;
    /// Runs with map type `M`.
    fn visit<M: BenchMap>(self) -> Self::Output;
}

/// Sessions of maps whose methods take `&self` and need no per-thread state.
pub struct Direct<'a, M>(pub &'a M);

macro_rules! direct_session {
    ($map:ty, |$m:ident, $k:ident, $v:ident| {
        get: $get:expr, insert: $insert:expr, remove: $remove:expr, update: $update:expr $(,)?
    }) => {
        impl<'a> Session for Direct<'a, $map> {
            #[inline]
            fn get(&mut self, $k: u64) -> bool {
                let $m = self.0;
                $get
            }
            #[inline]
            fn insert(&mut self, $k: u64, $v: u64) {
                let $m = self.0;
                $insert;
            }
            #[inline]
            fn remove(&mut self, $k: u64) {
                let $m = self.0;
                $remove;
            }
            #[inline]
            fn update(&mut self, $k: u64) {
                let $m = self.0;
                $update;
            }
        }
    };
}

// `get_cloned`: a `u64` copied out, as dashmap's and the `RwLock` maps' gets copy it out of
// their guards. (`read` runs a closure of the caller's under the lock, so it also records the
// thread as inside the map for re-entry detection: ~11 instructions more.)
direct_session!(ShardedMap<u64, u64, Hasher>, |m, k, v| {
    get: black_box(m.get_cloned(&k)).is_some(),
    insert: m.insert(k, v),
    remove: m.remove(&k),
    update: m.update(&k, |v| *v += 1),
});

impl BenchMap for ShardedMap<u64, u64, Hasher> {
    type Session<'a> = Direct<'a, Self>;
    fn empty() -> Self {
        ShardedMap::builder().hasher(hasher()).build()
    }
    fn session(&self) -> Self::Session<'_> {
        Direct(self)
    }
}

direct_session!(ReadMostlyMap<u64, u64, Hasher>, |m, k, v| {
    get: m.read(&k, |v| black_box(*v)).is_some(),
    insert: m.insert(k, v),
    remove: m.remove(&k),
    update: m.update(&k, |v| *v += 1),
});

impl BenchMap for ReadMostlyMap<u64, u64, Hasher> {
    type Session<'a> = Direct<'a, Self>;
    fn empty() -> Self {
        ReadMostlyMap::builder().hasher(hasher()).build()
    }
    fn session(&self) -> Self::Session<'_> {
        Direct(self)
    }
    /// Its docs: after a bulk load, `shrink_to_fit` finishes the migrations
    /// the load's last writes started (only writes move them along).
    fn loaded(&self) {
        self.shrink_to_fit();
    }
}

direct_session!(dashmap::DashMap<u64, u64, Hasher>, |m, k, v| {
    get: m.get(&k).map(|v| black_box(*v)).is_some(),
    insert: m.insert(k, v),
    remove: m.remove(&k),
    update: m.get_mut(&k).map(|mut v| *v += 1),
});

impl BenchMap for dashmap::DashMap<u64, u64, Hasher> {
    type Session<'a> = Direct<'a, Self>;
    fn empty() -> Self {
        dashmap::DashMap::with_hasher(hasher())
    }
    fn session(&self) -> Self::Session<'_> {
        Direct(self)
    }
}

direct_session!(papaya::HashMap<u64, u64, Hasher>, |m, k, v| {
    get: m.pin().get(&k).map(|v| black_box(*v)).is_some(),
    insert: m.pin().insert(k, v),
    remove: m.pin().remove(&k),
    update: m.pin().update(k, |v| v + 1),
});

impl BenchMap for papaya::HashMap<u64, u64, Hasher> {
    type Session<'a> = Direct<'a, Self>;
    fn empty() -> Self {
        papaya::HashMap::with_hasher(hasher())
    }
    fn session(&self) -> Self::Session<'_> {
        Direct(self)
    }
}

direct_session!(scc::HashMap<u64, u64, Hasher>, |m, k, v| {
    get: m.read(&k, |_, v| black_box(*v)).is_some(),
    insert: m.upsert(k, v),
    remove: m.remove(&k),
    update: m.update(&k, |_, v| *v += 1),
});

impl BenchMap for scc::HashMap<u64, u64, Hasher> {
    type Session<'a> = Direct<'a, Self>;
    fn empty() -> Self {
        scc::HashMap::with_hasher(hasher())
    }
    fn session(&self) -> Self::Session<'_> {
        Direct(self)
    }
}

// An insert of a present key and an update replace the entry (HashIndex's entries are
// immutable while readers may see them): `OccupiedEntry::update` adds the new one and marks the
// old one removed under the bucket's lock.
direct_session!(scc::HashIndex<u64, u64, Hasher>, |m, k, v| {
    get: m.peek_with(&k, |_, v| black_box(*v)).is_some(),
    insert: match m.entry(k) {
        scc::hash_index::Entry::Occupied(o) => o.update(v),
        scc::hash_index::Entry::Vacant(e) => drop(e.insert_entry(v)),
    },
    remove: m.remove(&k),
    update: m.get(&k).map(|o| {
        let next = *o.get() + 1;
        o.update(next)
    }),
});

impl BenchMap for scc::HashIndex<u64, u64, Hasher> {
    type Session<'a> = Direct<'a, Self>;
    fn empty() -> Self {
        scc::HashIndex::with_hasher(hasher())
    }
    fn session(&self) -> Self::Session<'_> {
        Direct(self)
    }
}

direct_session!(flurry::HashMap<u64, u64, Hasher>, |m, k, v| {
    get: m.get(&k, &m.guard()).map(|v| black_box(*v)).is_some(),
    insert: m.insert(k, v, &m.guard()),
    remove: m.remove(&k, &m.guard()),
    update: m.compute_if_present(&k, |_, v| Some(v + 1), &m.guard()),
});

impl BenchMap for flurry::HashMap<u64, u64, Hasher> {
    type Session<'a> = Direct<'a, Self>;
    fn empty() -> Self {
        flurry::HashMap::with_hasher(hasher())
    }
    fn session(&self) -> Self::Session<'_> {
        Direct(self)
    }
}

direct_session!(StdRwLock<StdHashMap<u64, u64, Hasher>>, |m, k, v| {
    get: m.read().unwrap().get(&k).map(|v| black_box(*v)).is_some(),
    insert: m.write().unwrap().insert(k, v),
    remove: m.write().unwrap().remove(&k),
    update: m.write().unwrap().get_mut(&k).map(|v| *v += 1),
});

impl BenchMap for StdRwLock<StdHashMap<u64, u64, Hasher>> {
    type Session<'a> = Direct<'a, Self>;
    fn empty() -> Self {
        StdRwLock::new(StdHashMap::with_hasher(hasher()))
    }
    fn session(&self) -> Self::Session<'_> {
        Direct(self)
    }
}

direct_session!(parking_lot::RwLock<hashbrown::HashMap<u64, u64, Hasher>>, |m, k, v| {
    get: m.read().get(&k).map(|v| black_box(*v)).is_some(),
    insert: m.write().insert(k, v),
    remove: m.write().remove(&k),
    update: m.write().get_mut(&k).map(|v| *v += 1),
});

impl BenchMap for parking_lot::RwLock<hashbrown::HashMap<u64, u64, Hasher>> {
    type Session<'a> = Direct<'a, Self>;
    fn empty() -> Self {
        parking_lot::RwLock::new(hashbrown::HashMap::with_hasher(hasher()))
    }
    fn session(&self) -> Self::Session<'_> {
        Direct(self)
    }
}

/// A write waiting in a [`SnapshotSession`]'s batch.
enum PendingWrite {
    Insert(u64, u64),
    Remove(u64),
    Update(u64),
}

/// A [`SnapshotMap`] session: reads go straight to the current snapshot (wait-free); writes
/// are buffered and published [`SNAPSHOT_BATCH`] at a time, so a thread does not see its own
/// writes until its batch is published.
pub struct SnapshotSession<'a> {
    map: &'a SnapshotMap<u64, u64, Hasher>,
    pending: Vec<PendingWrite>,
}

impl SnapshotSession<'_> {
    fn push(&mut self, write: PendingWrite) {
        self.pending.push(write);
        if self.pending.len() >= SNAPSHOT_BATCH {
            self.finish();
        }
    }
}

impl Session for SnapshotSession<'_> {
    #[inline]
    fn get(&mut self, key: u64) -> bool {
        self.map.read(&key, |v| black_box(*v)).is_some()
    }
    fn insert(&mut self, key: u64, value: u64) {
        self.push(PendingWrite::Insert(key, value));
    }
    fn remove(&mut self, key: u64) {
        self.push(PendingWrite::Remove(key));
    }
    fn update(&mut self, key: u64) {
        self.push(PendingWrite::Update(key));
    }
    fn finish(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        self.map.write_batch(|tx| {
            for write in &pending {
                match *write {
                    PendingWrite::Insert(k, v) => {
                        tx.insert(k, v);
                    }
                    PendingWrite::Remove(k) => {
                        tx.remove(&k);
                    }
                    PendingWrite::Update(k) => {
                        tx.update(&k, |v| *v += 1);
                    }
                }
            }
        });
        self.pending = pending;
        self.pending.clear();
    }
}

impl BenchMap for SnapshotMap<u64, u64, Hasher> {
    type Session<'a> = SnapshotSession<'a>;
    fn empty() -> Self {
        SnapshotMap::builder().hasher(hasher()).build()
    }
    fn session(&self) -> Self::Session<'_> {
        SnapshotSession {
            map: self,
            pending: Vec::with_capacity(SNAPSHOT_BATCH),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Roundtrip;

    impl MapVisitor for Roundtrip {
        type Output = (bool, bool, bool);
        fn visit<M: BenchMap>(self) -> Self::Output {
            let map = M::empty();
            let mut s = map.session();
            s.insert(7, 1);
            s.update(7);
            s.finish();
            let hit = s.get(7);
            s.remove(7);
            s.finish();
            let gone = !s.get(7);
            s.update(8);
            s.finish();
            (hit, gone, !s.get(8))
        }
    }

    #[test]
    fn every_map_inserts_updates_reads_and_removes() {
        for kind in MapKind::ALL {
            assert_eq!(kind.visit(Roundtrip), (true, true, true), "{}", kind.name());
            assert_eq!(MapKind::from_name(kind.name()), Some(kind));
        }
    }
}

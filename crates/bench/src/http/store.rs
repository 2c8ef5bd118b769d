//! The order-status stores the service can run on, chosen by flag.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mapguard::{ShardedMap, SnapshotMap};

use crate::maps::{hasher, Hasher};

/// Where the service keeps order statuses.
pub trait OrderStore: Send + Sync {
    /// An order's status.
    fn status(&self, id: u64) -> Option<Arc<str>>;
    /// Sets an order's status.
    fn set_status(&self, id: u64, status: Arc<str>);
    /// Orders stored.
    fn len(&self) -> usize;
}

/// The stores, by flag value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreKind {
    /// `mapguard::ShardedMap`.
    Sharded,
    /// `mapguard::SnapshotMap` (each PUT publishes a new copy: no batching in a service).
    Snapshot,
    /// `dashmap::DashMap`.
    DashMap,
    /// `std::sync::RwLock<HashMap>`.
    StdRwLock,
}

impl StoreKind {
    /// Every store.
    pub const ALL: [StoreKind; 4] = [
        StoreKind::Sharded,
        StoreKind::Snapshot,
        StoreKind::DashMap,
        StoreKind::StdRwLock,
    ];

    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sharded => "mapguard-sharded",
            StoreKind::Snapshot => "mapguard-snapshot",
            StoreKind::DashMap => "dashmap",
            StoreKind::StdRwLock => "std-rwlock",
        }
    }

    /// Parses [`StoreKind::name`].
    pub fn from_name(name: &str) -> Option<StoreKind> {
        StoreKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// mapguard's own engines.
    pub fn is_mapguard(self) -> bool {
        matches!(self, StoreKind::Sharded | StoreKind::Snapshot)
    }

    /// A store holding orders `0..orders`, all "placed".
    pub fn build(self, orders: u64) -> Arc<dyn OrderStore> {
        let placed: Arc<str> = Arc::from("placed");
        let entries = (0..orders).map(|id| (id, placed.clone()));
        match self {
            StoreKind::Sharded => {
                let map = ShardedMap::builder().hasher(hasher()).build();
                entries.for_each(|(k, v)| {
                    map.insert(k, v);
                });
                Arc::new(map)
            }
            StoreKind::Snapshot => {
                let map = SnapshotMap::builder().hasher(hasher()).build();
                map.write_batch(|tx| {
                    entries.for_each(|(k, v)| {
                        tx.insert(k, v);
                    })
                });
                Arc::new(map)
            }
            StoreKind::DashMap => {
                let map = dashmap::DashMap::with_hasher(hasher());
                entries.for_each(|(k, v)| {
                    map.insert(k, v);
                });
                Arc::new(map)
            }
            StoreKind::StdRwLock => {
                let mut map = HashMap::with_hasher(hasher());
                map.extend(entries);
                Arc::new(RwLock::new(map))
            }
        }
    }
}

impl OrderStore for ShardedMap<u64, Arc<str>, Hasher> {
    fn status(&self, id: u64) -> Option<Arc<str>> {
        self.get_cloned(&id)
    }
    fn set_status(&self, id: u64, status: Arc<str>) {
        self.insert(id, status);
    }
    fn len(&self) -> usize {
        ShardedMap::len(self)
    }
}

impl OrderStore for SnapshotMap<u64, Arc<str>, Hasher> {
    fn status(&self, id: u64) -> Option<Arc<str>> {
        self.get_cloned(&id)
    }
    fn set_status(&self, id: u64, status: Arc<str>) {
        self.insert(id, status);
    }
    fn len(&self) -> usize {
        SnapshotMap::len(self)
    }
}

impl OrderStore for dashmap::DashMap<u64, Arc<str>, Hasher> {
    fn status(&self, id: u64) -> Option<Arc<str>> {
        self.get(&id).map(|v| v.clone())
    }
    fn set_status(&self, id: u64, status: Arc<str>) {
        self.insert(id, status);
    }
    fn len(&self) -> usize {
        dashmap::DashMap::len(self)
    }
}

impl OrderStore for RwLock<HashMap<u64, Arc<str>, Hasher>> {
    fn status(&self, id: u64) -> Option<Arc<str>> {
        self.read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }
    fn set_status(&self, id: u64, status: Arc<str>) {
        self.write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, status);
    }
    fn len(&self) -> usize {
        self.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_reads_back_what_was_set() {
        for kind in StoreKind::ALL {
            let store = kind.build(10);
            assert_eq!(store.len(), 10, "{}", kind.name());
            assert_eq!(store.status(3).as_deref(), Some("placed"));
            store.set_status(3, Arc::from("paid"));
            assert_eq!(store.status(3).as_deref(), Some("paid"));
            assert_eq!(store.status(10), None);
            assert_eq!(StoreKind::from_name(kind.name()), Some(kind));
        }
    }
}

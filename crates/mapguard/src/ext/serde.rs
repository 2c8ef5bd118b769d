//! `Serialize`/`Deserialize` for every engine (feature `serde`), as plain maps.
//!
//! A `ShardedMap` or `ReadMostlyMap` serializes a per-shard copy (each shard
//! consistent, see [`ShardedMap::iter`]); a `SnapshotMap` serializes one
//! snapshot (consistent).

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{ReadMostlyMap, ShardedMap, ShardedMapBuilder, Snapshot, SnapshotMap};

impl<K, V, S> Serialize for ShardedMap<K, V, S>
where
    K: Serialize + Hash + Eq + Clone,
    V: Serialize + Clone,
    S: BuildHasher,
{
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        serialize_copy(self.iter(), serializer)
    }
}

impl<K, V, S> Serialize for ReadMostlyMap<K, V, S>
where
    K: Serialize + Hash + Eq + Clone,
    V: Serialize + Clone,
    S: BuildHasher,
{
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        serialize_copy(self.iter(), serializer)
    }
}

/// Serializes pairs copied out of a sharded engine. Copied first: the map's
/// announced length must match the entries written, and the map may change.
fn serialize_copy<K: Serialize, V: Serialize, Ser: Serializer>(
    pairs: impl Iterator<Item = (K, V)>,
    serializer: Ser,
) -> Result<Ser::Ok, Ser::Error> {
    let entries: Vec<(K, V)> = pairs.collect();
    let mut map = serializer.serialize_map(Some(entries.len()))?;
    for (k, v) in &entries {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl<K, V, S> Serialize for Snapshot<K, V, S>
where
    K: Serialize,
    V: Serialize,
{
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<K, V, S> Serialize for SnapshotMap<K, V, S>
where
    K: Serialize,
    V: Serialize,
{
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        self.snapshot().serialize(serializer)
    }
}

struct PairsVisitor<K, V>(PhantomData<fn() -> (K, V)>);

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<K, V> {
    type Value = Vec<(K, V)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        // Cap the pre-allocation: the size hint comes from untrusted input.
        let mut pairs = Vec::with_capacity(access.size_hint().unwrap_or(0).min(4096));
        while let Some(pair) = access.next_entry()? {
            pairs.push(pair);
        }
        Ok(pairs)
    }
}

impl<'de, K, V, S> Deserialize<'de> for ShardedMap<K, V, S>
where
    K: Deserialize<'de> + Hash + Eq,
    V: Deserialize<'de>,
    S: BuildHasher + Default,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs = deserializer.deserialize_map(PairsVisitor::<K, V>(PhantomData))?;
        let map = ShardedMapBuilder::default()
            .capacity(pairs.len())
            .hasher(S::default())
            .build();
        for (k, v) in pairs {
            map.insert(k, v);
        }
        Ok(map)
    }
}

impl<'de, K, V, S> Deserialize<'de> for ReadMostlyMap<K, V, S>
where
    K: Deserialize<'de> + Hash + Eq + Clone,
    V: Deserialize<'de> + Clone,
    S: BuildHasher + Default,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs = deserializer.deserialize_map(PairsVisitor::<K, V>(PhantomData))?;
        let map = ReadMostlyMap::builder()
            .capacity(pairs.len())
            .hasher(S::default())
            .build();
        for (k, v) in pairs {
            map.insert(k, v);
        }
        Ok(map)
    }
}

impl<'de, K, V, S> Deserialize<'de> for SnapshotMap<K, V, S>
where
    K: Deserialize<'de> + Hash + Eq + Clone,
    V: Deserialize<'de> + Clone,
    S: BuildHasher + Clone + Default,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs = deserializer.deserialize_map(PairsVisitor::<K, V>(PhantomData))?;
        Ok(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::{ReadMostlyMap, ShardedMap, SnapshotMap};

    #[test]
    fn round_trips_through_json() {
        let map: ShardedMap<String, u32> = (0..50).map(|i| (format!("k{i}"), i)).collect();
        let json = serde_json::to_string(&map).unwrap();
        let back: ShardedMap<String, u32> = serde_json::from_str(&json).unwrap();
        let mut a: Vec<_> = map.iter().collect();
        let mut b: Vec<_> = back.iter().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);

        let snap: SnapshotMap<String, u32> = serde_json::from_str(&json).unwrap();
        assert_eq!(snap.len(), 50);
        let again: SnapshotMap<String, u32> =
            serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
        assert_eq!(again.get_cloned("k7"), Some(7));

        let read_mostly: ReadMostlyMap<String, u32> = serde_json::from_str(&json).unwrap();
        let mut c: Vec<_> = read_mostly.iter().collect();
        c.sort();
        assert_eq!(c, a);
        let again: ReadMostlyMap<String, u32> =
            serde_json::from_str(&serde_json::to_string(&read_mostly).unwrap()).unwrap();
        assert_eq!(again.get_cloned("k7"), Some(7));
    }
}

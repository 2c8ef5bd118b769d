//! Prometheus export (feature `prometheus`): a prometheus-client `Collector`
//! that reads a map's telemetry at scrape time.
//!
//! The collector holds a weak reference to the map's shards: registering does
//! not keep a dropped map alive (its metrics just disappear from scrapes), and
//! scraping never takes a lock. Both sharded engines register the same
//! metrics; only how their per-shard stats are read differs. The snapshot
//! engine has no shards and counts no reads: it registers its write counters.

use std::fmt;
use std::sync::{Arc, Weak};

use crossbeam_utils::CachePadded;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{Histogram, MapStats};
use crate::snapshot::Counters;
use crate::{read_mostly, sharded, ReadMostlyMap, ShardedMap, SnapshotMap};

/// The stats of a live map, or `None` once it is dropped.
type StatsSource = Box<dyn Fn() -> Option<MapStats> + Send + Sync>;

struct MapCollector {
    prefix: String,
    stats: StatsSource,
}

impl fmt::Debug for MapCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapCollector")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn per_shard(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    stats: &MapStats,
    value: impl Fn(&super::ShardStats) -> u64,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for shard in &stats.shards {
        let labels = [("shard", shard.index.to_string())];
        let mut family = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => {
                family.encode_counter::<NoLabelSet, u64, u64>(&value(shard), None)?
            }
            _ => family.encode_gauge(&value(shard))?,
        }
    }
    Ok(())
}

fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    h: &Histogram,
) -> fmt::Result {
    let metric: MetricEncoder<'_> =
        encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    let last = h.buckets.len().saturating_sub(1);
    let buckets: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .enumerate()
        .map(|(i, n)| {
            // Bucket i holds [2^i, 2^(i+1)) ns; its upper bound in seconds.
            let le = if i == last {
                f64::MAX
            } else {
                (1u64 << (i + 1)) as f64 / 1e9
            };
            (le, *n)
        })
        .collect();
    let mut metric = metric;
    metric.encode_histogram::<NoLabelSet>(h.sum_ns as f64 / 1e9, h.count(), &buckets, None)
}

impl Collector for MapCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some(stats) = (self.stats)() else {
            return Ok(()); // the map is gone
        };
        let p = &self.prefix;
        per_shard(
            &mut encoder,
            &format!("{p}_reads"),
            "Read operations",
            MetricType::Counter,
            &stats,
            |s| s.reads,
        )?;
        per_shard(
            &mut encoder,
            &format!("{p}_writes"),
            "Write operations",
            MetricType::Counter,
            &stats,
            |s| s.writes,
        )?;
        per_shard(
            &mut encoder,
            &format!("{p}_contended"),
            "Lock acquisitions that had to wait",
            MetricType::Counter,
            &stats,
            |s| s.contended,
        )?;
        per_shard(
            &mut encoder,
            &format!("{p}_entries"),
            "Entries",
            MetricType::Gauge,
            &stats,
            |s| s.len as u64,
        )?;
        histogram(
            &mut encoder,
            &format!("{p}_lock_wait_seconds"),
            "Sampled (1 in 256) time waiting for a shard lock",
            &stats.wait(),
        )?;
        histogram(
            &mut encoder,
            &format!("{p}_lock_hold_seconds"),
            "Sampled (1 in 256) time a shard lock was held",
            &stats.hold(),
        )?;
        let hot_name = format!("{p}_hot_key_sampled_ops");
        let mut hot = encoder.encode_descriptor(
            &hot_name,
            "Sampled operations on the most frequent key hashes of each shard",
            None,
            MetricType::Gauge,
        )?;
        for shard in &stats.shards {
            for key in &shard.hot_keys {
                let labels = [
                    ("shard", shard.index.to_string()),
                    ("hash", format!("{:016x}", key.hash)),
                ];
                hot.encode_family(&labels)?
                    .encode_gauge(&key.sampled_count)?;
            }
        }
        Ok(())
    }
}

impl<K, V, S> ShardedMap<K, V, S>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Registers this map's telemetry with a prometheus-client registry, as
    /// metrics named `{prefix}_reads_total`, `{prefix}_writes_total`,
    /// `{prefix}_contended_total`, `{prefix}_entries` (per shard),
    /// `{prefix}_lock_wait_seconds`, `{prefix}_lock_hold_seconds` (histograms)
    /// and `{prefix}_hot_key_sampled_ops` (per shard and key hash). The registry
    /// holds only a weak reference to the map.
    ///
    /// ```
    /// use prometheus_client::{encoding::text::encode, registry::Registry};
    ///
    /// let map: mapguard::ShardedMap<u32, u32> = mapguard::ShardedMap::builder().shards(2).build();
    /// let mut registry = Registry::default();
    /// map.register(&mut registry, "sessions");
    /// map.insert(1, 1);
    /// let mut text = String::new();
    /// encode(&mut text, &registry).unwrap();
    /// assert!(text.contains("sessions_writes_total{shard="));
    /// assert!(text.contains("sessions_lock_hold_seconds_bucket"));
    /// ```
    pub fn register(&self, registry: &mut Registry, prefix: &str) {
        let shards: Weak<[CachePadded<sharded::Shard<K, V>>]> = Arc::downgrade(&self.shards);
        registry.register_collector(Box::new(MapCollector {
            prefix: prefix.to_string(),
            stats: Box::new(move || shards.upgrade().map(|s| sharded::stats_of(&s))),
        }));
    }
}

impl<K, V, S> ReadMostlyMap<K, V, S>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Registers this map's telemetry with a prometheus-client registry, under
    /// the same names as [`ShardedMap::register`] (`_reads_total` is sampled:
    /// see [`ReadMostlyMap::stats`]; the lock metrics are the writer locks').
    ///
    /// ```
    /// use prometheus_client::{encoding::text::encode, registry::Registry};
    ///
    /// let map: mapguard::ReadMostlyMap<u32, u32> = mapguard::ReadMostlyMap::builder().shards(2).build();
    /// let mut registry = Registry::default();
    /// map.register(&mut registry, "routes");
    /// map.insert(1, 1);
    /// let mut text = String::new();
    /// encode(&mut text, &registry).unwrap();
    /// assert!(text.contains("routes_writes_total{shard="));
    /// assert!(text.contains("routes_entries{shard="));
    /// ```
    pub fn register(&self, registry: &mut Registry, prefix: &str) {
        let shards: Weak<[CachePadded<read_mostly::Shard<K, V>>]> = self.shards_weak();
        registry.register_collector(Box::new(MapCollector {
            prefix: prefix.to_string(),
            stats: Box::new(move || shards.upgrade().map(|s| read_mostly::stats_of(&s))),
        }));
    }
}

/// A [`SnapshotMap`]'s write counters, read at scrape time.
struct SnapshotCollector {
    prefix: String,
    counters: Weak<Counters>,
}

impl fmt::Debug for SnapshotCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotCollector")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some(counters) = self.counters.upgrade() else {
            return Ok(()); // the map is gone
        };
        let stats = counters.stats();
        let p = &self.prefix;
        let counts = [
            (
                "writes",
                "Write operations (a batch counts once)",
                stats.writes,
            ),
            ("publishes", "Snapshots published", stats.publishes),
            (
                "contended",
                "Writes that waited for another writer",
                stats.contended_writes,
            ),
        ];
        for (name, help, value) in counts {
            encoder
                .encode_descriptor(&format!("{p}_{name}"), help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
        }
        encoder
            .encode_descriptor(&format!("{p}_entries"), "Entries", None, MetricType::Gauge)?
            .encode_gauge(&(stats.len as u64))
    }
}

impl<K, V, S> SnapshotMap<K, V, S> {
    /// Registers this map's write counters with a prometheus-client registry,
    /// as `{prefix}_writes_total`, `{prefix}_publishes_total`,
    /// `{prefix}_contended_total` and `{prefix}_entries` (see
    /// [`SnapshotStats`](crate::SnapshotStats); reads are not counted, so that
    /// wait-free readers share no counter). The registry holds only a weak
    /// reference to the counters.
    ///
    /// ```
    /// use prometheus_client::{encoding::text::encode, registry::Registry};
    ///
    /// let map: mapguard::SnapshotMap<u32, u32> = mapguard::SnapshotMap::new();
    /// let mut registry = Registry::default();
    /// map.register(&mut registry, "flags");
    /// map.insert(1, 1);
    /// let mut text = String::new();
    /// encode(&mut text, &registry).unwrap();
    /// assert!(text.contains("flags_publishes_total 1"));
    /// assert!(text.contains("flags_entries 1"));
    /// ```
    pub fn register(&self, registry: &mut Registry, prefix: &str) {
        registry.register_collector(Box::new(SnapshotCollector {
            prefix: prefix.to_string(),
            counters: self.counters_weak(),
        }));
    }
}

//! The per-shard counters that operations bump, and their snapshot into
//! [`ShardStats`](super::ShardStats).
//!
//! Cost model: a read does one relaxed `fetch_add` on a counter that sits in
//! the shard's own cache-padded block (the line the lock word already brought
//! into this core's cache); a write is counted by the shard's version clock,
//! which it ticks anyway, with a plain load and store under its lock. A
//! thread-local countdown picks one operation in
//! [`SAMPLE_EVERY`](crate::reentry::SAMPLE_EVERY) per thread for timing
//! (`Instant::now`, two histogram buckets) and the hot-key sketch, all of it
//! out of line; the sketch is skipped rather than waited for when another
//! thread is updating it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Histogram, HotKey};

/// Number of log2 buckets: bucket `i` counts durations in `[2^i, 2^(i+1))` ns,
/// bucket 0 also holds 0 ns; the last one is open-ended (about 17 minutes up).
pub(crate) const BUCKETS: usize = 40;

/// How many candidate keys each shard's sketch tracks.
pub(crate) const HOT_KEYS_PER_SHARD: usize = 8;

/// A lock-free log2 histogram of durations.
#[derive(Debug)]
pub(crate) struct AtomicHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl AtomicHistogram {
    fn new() -> Self {
        AtomicHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let bucket = (63 - ns.max(1).leading_zeros() as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    fn snapshot(&self) -> Histogram {
        Histogram {
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_ns: self.sum_ns.load(Relaxed),
        }
    }
}

/// Space-saving top-k (Metwally et al.): k counters; an unseen key takes over
/// the smallest counter and inherits its count, so a key whose true sampled
/// frequency exceeds 1/k of the samples is guaranteed to be present.
#[derive(Debug, Default)]
pub(crate) struct SpaceSaving {
    slots: Vec<HotKey>,
}

impl SpaceSaving {
    pub(crate) fn offer(&mut self, hash: u64) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.hash == hash) {
            slot.sampled_count += 1;
        } else if self.slots.len() < HOT_KEYS_PER_SHARD {
            self.slots.push(HotKey {
                hash,
                sampled_count: 1,
            });
        } else if let Some(min) = self.slots.iter_mut().min_by_key(|s| s.sampled_count) {
            min.hash = hash;
            min.sampled_count += 1;
        }
    }

    fn top(&self) -> Vec<HotKey> {
        let mut top = self.slots.clone();
        top.sort_by_key(|k| std::cmp::Reverse(k.sampled_count));
        top
    }
}

/// A shard's counts that its engine keeps itself, read without a lock: the
/// write count lives with the engine's other counts rather than in
/// [`ShardTelemetry`], so that counting a write touches no cache line the write
/// does not touch anyway (the read-mostly engine's `Shard`).
#[derive(Clone, Copy)]
pub(crate) struct ShardCounts {
    pub(crate) len: usize,
    pub(crate) capacity: usize,
    pub(crate) writes: u64,
}

/// What an engine tells its shard's telemetry about one access.
#[derive(Clone, Copy)]
pub(crate) struct Probe {
    /// Count this operation at all (the map's telemetry switch).
    pub(crate) telemetry: bool,
    /// Time it and offer its key hash to the hot-key sketch.
    pub(crate) sampled: bool,
    /// The key's hash, when the operation has one key.
    pub(crate) hash: Option<u64>,
}

/// One shard's counters. Its write count is the engine's, kept next to the
/// shard's other counts (see [`ShardCounts`]).
#[derive(Debug)]
pub(crate) struct ShardTelemetry {
    pub(crate) reads: AtomicU64,
    pub(crate) contended: AtomicU64,
    pub(crate) wait: AtomicHistogram,
    pub(crate) hold: AtomicHistogram,
    hot: Mutex<SpaceSaving>,
}

impl Default for ShardTelemetry {
    fn default() -> Self {
        ShardTelemetry {
            reads: AtomicU64::new(0),
            contended: AtomicU64::new(0),
            wait: AtomicHistogram::new(),
            hold: AtomicHistogram::new(),
            hot: Mutex::new(SpaceSaving::default()),
        }
    }
}

impl ShardTelemetry {
    /// Feeds a sampled key hash to the sketch, unless another thread is at it.
    pub(crate) fn offer_hot(&self, hash: u64) {
        if let Some(mut hot) = self.hot.try_lock() {
            hot.offer(hash);
        }
    }

    /// Records a lock acquired without waiting.
    ///
    /// This and [`held_since`](Self::held_since) and
    /// [`record_hold`](Self::record_hold) are on every write: inlined checks,
    /// the sampled work out of line (as calls, the three would cost a write
    /// ~20 instructions, callgrind).
    #[inline]
    pub(crate) fn uncontended(&self, probe: Probe) {
        if probe.sampled && probe.telemetry {
            self.record_no_wait();
        }
    }

    #[cold]
    fn record_no_wait(&self) {
        self.wait.record(Duration::ZERO);
    }

    /// Acquires a lock that was busy with `acquire`, counting the contention
    /// and timing the wait when sampled.
    #[cold]
    pub(crate) fn contended<G>(&self, probe: Probe, acquire: impl FnOnce() -> G) -> G {
        if !probe.telemetry {
            return acquire();
        }
        self.contended.fetch_add(1, Relaxed);
        if probe.sampled {
            let start = Instant::now();
            let guard = acquire();
            self.wait.record(start.elapsed());
            guard
        } else {
            acquire()
        }
    }

    /// Starts timing a hold of the lock (when sampled), offering the key's hash
    /// to the hot-key sketch.
    #[inline]
    pub(crate) fn held_since(&self, probe: Probe) -> Option<Instant> {
        if !(probe.sampled && probe.telemetry) {
            return None;
        }
        self.start_hold(probe.hash)
    }

    #[cold]
    fn start_hold(&self, hash: Option<u64>) -> Option<Instant> {
        if let Some(hash) = hash {
            self.offer_hot(hash);
        }
        Some(Instant::now())
    }

    /// Ends what [`held_since`](Self::held_since) started.
    #[inline]
    pub(crate) fn record_hold(&self, since: Option<Instant>) {
        if let Some(since) = since {
            self.end_hold(since);
        }
    }

    #[cold]
    fn end_hold(&self, since: Instant) {
        self.hold.record(since.elapsed());
    }

    pub(crate) fn snapshot(&self, index: usize, counts: ShardCounts) -> super::ShardStats {
        super::ShardStats {
            index,
            len: counts.len,
            capacity: counts.capacity,
            reads: self.reads.load(Relaxed),
            writes: counts.writes,
            contended: self.contended.load(Relaxed),
            wait: self.wait.snapshot(),
            hold: self.hold.snapshot(),
            hot_keys: self.hot.lock().top(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_power_of_two() {
        let h = AtomicHistogram::new();
        h.record(Duration::from_nanos(0));
        h.record(Duration::from_nanos(1));
        h.record(Duration::from_nanos(3));
        h.record(Duration::from_nanos(1024));
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 2);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[10], 1);
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum_ns, 1028);
    }

    #[test]
    fn space_saving_keeps_the_heavy_hitter() {
        let mut s = SpaceSaving::default();
        // Fewer offers under Miri, which interprets them thousands of times slower.
        let offers: u64 = if cfg!(miri) { 3_000 } else { 10_000 };
        for i in 0..offers {
            // Key 7 is a third of the traffic; the rest is spread over 1000 keys.
            s.offer(if i % 3 == 0 { 7 } else { 100 + i % 1000 });
        }
        let top = s.top();
        assert_eq!(top[0].hash, 7);
        assert!(top[0].sampled_count >= offers.div_ceil(3));
    }
}

//! The map workloads (bustle-style operation mixes) and the runs that time them.
//!
//! Operations are generated before the clock starts, one list per thread, each op packed into
//! a `u64` (key << 2 | op), so the timed loop does nothing but map operations.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use crate::maps::{BenchMap, MapVisitor, Session};

/// Percentages of reads, inserts, removes and updates; they add up to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Lookups.
    pub read: u8,
    /// Inserts (insert-or-replace).
    pub insert: u8,
    /// Removes.
    pub remove: u8,
    /// Read-modify-write of an existing value.
    pub update: u8,
}

/// How keys are drawn from the key space.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Zipf-distributed ranks with this exponent (a few keys take most operations).
    Zipf(f64),
}

/// One workload: a mix, a key distribution, and whether the table starts half full.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Workload {
    /// Name in tables and CSV.
    pub name: &'static str,
    /// The operation mix.
    pub mix: Mix,
    /// Key distribution.
    pub keys: KeyDist,
    /// Prefill half the key space before timing (false: start from an empty table, so growth
    /// is measured).
    pub prefill: bool,
}

const fn mix(read: u8, insert: u8, remove: u8, update: u8) -> Mix {
    Mix {
        read,
        insert,
        remove,
        update,
    }
}

/// The workloads of the map matrix.
pub const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "read_heavy",
        mix: mix(98, 1, 1, 0),
        keys: KeyDist::Uniform,
        prefill: true,
    },
    Workload {
        name: "read_heavy_zipf",
        mix: mix(98, 1, 1, 0),
        keys: KeyDist::Zipf(0.99),
        prefill: true,
    },
    Workload {
        name: "read_only",
        mix: mix(100, 0, 0, 0),
        keys: KeyDist::Uniform,
        prefill: true,
    },
    Workload {
        name: "exchange",
        mix: mix(10, 40, 40, 10),
        keys: KeyDist::Uniform,
        prefill: true,
    },
    Workload {
        name: "rapid_grow",
        mix: mix(5, 80, 5, 10),
        keys: KeyDist::Uniform,
        prefill: false,
    },
];

/// Finds a workload by name.
pub fn workload(name: &str) -> Option<Workload> {
    WORKLOADS.into_iter().find(|w| w.name == name)
}

const READ: u64 = 0;
const INSERT: u64 = 1;
const REMOVE: u64 = 2;
const UPDATE: u64 = 3;

/// The operations of one run: the prefill keys and each thread's packed ops.
pub struct Plan {
    /// Keys inserted before the clock starts.
    pub prefill: Vec<u64>,
    /// One list of packed ops per thread.
    pub threads: Vec<Vec<u64>>,
}

impl Plan {
    /// Generates a plan: `ops` operations in all, split over `threads`. Prefilled workloads
    /// use `key_space` keys, half of them present at the start; the growing workload draws
    /// from a key space as large as its op count, so most inserts add a new key.
    pub fn new(w: &Workload, threads: usize, ops: usize, key_space: u64, seed: u64) -> Plan {
        let space = if w.prefill { key_space } else { ops as u64 };
        let prefill = if w.prefill {
            (0..space).step_by(2).collect()
        } else {
            Vec::new()
        };
        let per_thread = ops / threads;
        let zipf = match w.keys {
            KeyDist::Zipf(s) => Some(Zipf::new(space as f64, s).expect("valid Zipf parameters")),
            KeyDist::Uniform => None,
        };
        let threads = (0..threads)
            .map(|t| {
                let mut rng = SmallRng::seed_from_u64(seed ^ (t as u64).wrapping_mul(0x9e37_79b9));
                (0..per_thread)
                    .map(|_| {
                        let key = match &zipf {
                            // Ranks start at 1; rank 1 is key 0, which is prefilled.
                            Some(z) => z.sample(&mut rng) as u64 - 1,
                            None => rng.random_range(0..space),
                        };
                        let roll = rng.random_range(0..100u8);
                        let m = w.mix;
                        let op = if roll < m.read {
                            READ
                        } else if roll < m.read + m.insert {
                            INSERT
                        } else if roll < m.read + m.insert + m.remove {
                            REMOVE
                        } else {
                            UPDATE
                        };
                        key << 2 | op
                    })
                    .collect()
            })
            .collect();
        Plan { prefill, threads }
    }

    /// Operations in all threads.
    pub fn ops(&self) -> usize {
        self.threads.iter().map(Vec::len).sum()
    }
}

#[inline(always)]
fn apply<S: Session>(s: &mut S, packed: u64) -> u64 {
    let key = packed >> 2;
    match packed & 3 {
        READ => {
            s.get(key);
        }
        INSERT => s.insert(key, key),
        REMOVE => s.remove(key),
        _ => s.update(key),
    }
    packed & 3
}

/// A new map holding `keys` (each as its own value), readied as its documentation says to
/// after a bulk load.
pub fn prefilled<M: BenchMap>(keys: &[u64]) -> M {
    let map = M::empty();
    let mut s = map.session();
    for &k in keys {
        s.insert(k, k);
    }
    s.finish();
    drop(s);
    map.loaded();
    map
}

/// Times one run of a plan on a fresh map: the wall time from the first thread's start to the
/// last one's finish (including publishing any batched writes). Each thread reads the clock
/// itself: on a busy 2-CPU machine the releasing thread may run only after a worker is done.
pub struct Throughput<'a>(pub &'a Plan);

impl MapVisitor for Throughput<'_> {
    type Output = Duration;
    fn visit<M: BenchMap>(self) -> Duration {
        let plan = self.0;
        let map = prefilled::<M>(&plan.prefill);
        let barrier = Barrier::new(plan.threads.len());
        let elapsed = std::thread::scope(|scope| {
            let workers: Vec<_> = plan
                .threads
                .iter()
                .map(|ops| {
                    let (map, barrier) = (&map, &barrier);
                    scope.spawn(move || {
                        let mut s = map.session();
                        barrier.wait();
                        let start = Instant::now();
                        for &op in ops {
                            apply(&mut s, op);
                        }
                        s.finish();
                        (start, Instant::now())
                    })
                })
                .collect();
            let spans: Vec<(Instant, Instant)> = workers
                .into_iter()
                .map(|w| w.join().expect("benchmark thread panicked"))
                .collect();
            let start = spans
                .iter()
                .map(|s| s.0)
                .min()
                .expect("at least one thread");
            let end = spans
                .iter()
                .map(|s| s.1)
                .max()
                .expect("at least one thread");
            end - start
        });
        drop(map);
        elapsed
    }
}

/// Per-operation latency histograms (nanoseconds) of one run.
pub struct Latencies {
    /// Lookups.
    pub reads: Histogram<u64>,
    /// Inserts.
    pub inserts: Histogram<u64>,
}

/// A latency histogram from 1 ns to 100 s at 3 significant figures: wide enough that no
/// sample (a resize, a publication of a large snapshot, a descheduled thread) is clipped.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs a plan timing every read and insert on its own (a clock read on each side of the
/// operation, ~20-40 ns of this VM's clock cost included in every sample).
pub struct Latency<'a>(pub &'a Plan);

impl MapVisitor for Latency<'_> {
    type Output = Latencies;
    fn visit<M: BenchMap>(self) -> Latencies {
        let plan = self.0;
        let map = prefilled::<M>(&plan.prefill);
        let barrier = Barrier::new(plan.threads.len());
        let per_thread: Vec<Latencies> = std::thread::scope(|scope| {
            let workers: Vec<_> = plan
                .threads
                .iter()
                .map(|ops| {
                    let (map, barrier) = (&map, &barrier);
                    scope.spawn(move || {
                        let mut s = map.session();
                        let mut lat = Latencies {
                            reads: histogram(),
                            inserts: histogram(),
                        };
                        barrier.wait();
                        for &op in ops {
                            let start = Instant::now();
                            let kind = apply(&mut s, op);
                            let ns = start.elapsed().as_nanos() as u64;
                            match kind {
                                READ => lat.reads.saturating_record(ns),
                                INSERT => lat.inserts.saturating_record(ns),
                                _ => {}
                            }
                        }
                        s.finish();
                        lat
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("benchmark thread panicked"))
                .collect()
        });
        let mut all = Latencies {
            reads: histogram(),
            inserts: histogram(),
        };
        for lat in per_thread {
            all.reads.add(&lat.reads).expect("histograms auto-resize");
            all.inserts
                .add(&lat.inserts)
                .expect("histograms auto-resize");
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_the_mix_and_split_ops_over_threads() {
        let w = workload("exchange").unwrap();
        let plan = Plan::new(&w, 2, 100_000, 1024, 1);
        assert_eq!(plan.threads.len(), 2);
        assert_eq!(plan.ops(), 100_000);
        assert_eq!(plan.prefill.len(), 512);
        let count = |op| plan.threads[0].iter().filter(|&&p| p & 3 == op).count() as f64;
        // 40 % inserts of 50,000 ops: well within 2 % of it.
        assert!((count(INSERT) / 50_000.0 - 0.40).abs() < 0.02);
        assert!((count(READ) / 50_000.0 - 0.10).abs() < 0.02);
        assert!(plan.threads[0].iter().all(|&p| p >> 2 < 1024));
    }

    #[test]
    fn latency_histograms_keep_long_samples() {
        let mut h = histogram();
        h.saturating_record(40);
        h.saturating_record(5_000_000_000);
        assert!(h.max() >= 5_000_000_000 * 999 / 1000, "max {}", h.max());
        assert_eq!(h.value_at_quantile(0.0), 40);
    }

    #[test]
    fn rapid_grow_starts_empty_and_zipf_concentrates_on_few_keys() {
        let grow = Plan::new(&workload("rapid_grow").unwrap(), 1, 10_000, 1024, 1);
        assert!(grow.prefill.is_empty());
        let zipf = Plan::new(&workload("read_heavy_zipf").unwrap(), 1, 10_000, 1 << 16, 1);
        let hot = zipf.threads[0].iter().filter(|&&p| p >> 2 < 16).count();
        assert!(
            hot > 2_000,
            "16 hottest of 65,536 keys took only {hot} of 10,000 ops"
        );
    }
}

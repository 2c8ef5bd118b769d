//! Cost per kind of operation, one thread: where the throughput cells mix operations, this
//! part says which operation a map pays for. A map is filled with half the key space (the
//! even keys), then runs N operations of one kind at a time, keys in a fixed random order:
//! gets of present and of absent keys, inserts of present keys (replacements), updates,
//! removes of absent keys, and inserts of absent keys each followed by its removal (so every
//! kind leaves the map as it found it). Each kind is timed as a whole (no clock read per
//! operation); maps are interleaved round by round, and the table shows medians.

use std::hint::black_box;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::maps::{BenchMap, MapKind, MapVisitor, Session};
use crate::report::Section;
use crate::stats::Summary;
use crate::table::Table;
use crate::workload::prefilled;

/// The kinds of operation, in the order they run on a map.
pub const KINDS: [&str; 6] = [
    "get hit",
    "get miss",
    "replace",
    "update",
    "remove miss",
    "insert+remove",
];

/// One map's nanoseconds per operation, per kind and round.
pub struct OpsResult {
    /// The map.
    pub map: MapKind,
    /// `ns[kind][round]`.
    pub ns: [Vec<f64>; KINDS.len()],
}

/// The keys one run uses: `n` present and `n` absent ones, drawn from a key space of
/// `key_space` keys whose even half is present.
struct Keys {
    prefill: Vec<u64>,
    present: Vec<u64>,
    absent: Vec<u64>,
}

impl Keys {
    fn new(key_space: u64, n: usize) -> Keys {
        let mut rng = SmallRng::seed_from_u64(0x0b5);
        let half = (key_space / 2).max(1);
        Keys {
            prefill: (0..half).map(|k| k * 2).collect(),
            present: (0..n).map(|_| rng.random_range(0..half) * 2).collect(),
            absent: (0..n).map(|_| rng.random_range(0..half) * 2 + 1).collect(),
        }
    }
}

/// Runs every kind on every map `rounds` times, maps interleaved.
pub fn run(maps: &[MapKind], rounds: usize, ops: usize, key_space: u64) -> Vec<OpsResult> {
    let keys = Keys::new(key_space, ops);
    let mut results: Vec<OpsResult> = maps
        .iter()
        .map(|&map| OpsResult {
            map,
            ns: Default::default(),
        })
        .collect();
    for round in 0..rounds {
        for i in 0..results.len() {
            let r = &mut results[(i + round) % maps.len()];
            let ns = r.map.visit(Costs(&keys));
            for (kind, ns) in ns.into_iter().enumerate() {
                r.ns[kind].push(ns);
            }
        }
        eprintln!("ops round {}/{rounds} done", round + 1);
    }
    results
}

/// One round on a fresh map: ns per operation of each kind.
struct Costs<'a>(&'a Keys);

impl MapVisitor for Costs<'_> {
    type Output = [f64; KINDS.len()];

    fn visit<M: BenchMap>(self) -> Self::Output {
        let keys = self.0;
        let map = prefilled::<M>(&keys.prefill);
        let mut s = map.session();
        let (present, absent) = (&keys.present[..], &keys.absent[..]);
        let mut time = |op: &dyn Fn(&mut M::Session<'_>, usize)| {
            let start = Instant::now();
            for i in 0..present.len() {
                op(&mut s, i);
            }
            // A batching session's writes are only done once published.
            s.finish();
            start.elapsed().as_nanos() as f64 / present.len() as f64
        };
        [
            time(&|s, i| {
                black_box(s.get(present[i]));
            }),
            time(&|s, i| {
                black_box(s.get(absent[i]));
            }),
            time(&|s, i| s.insert(present[i], i as u64)),
            time(&|s, i| s.update(present[i])),
            time(&|s, i| s.remove(absent[i])),
            time(&|s, i| {
                s.insert(absent[i], i as u64);
                s.remove(absent[i]);
            }),
        ]
    }
}

/// The table: median ns per operation of each kind, and the best peer's median over the
/// map's (how fast the map is against the fastest peer at that kind, 1.00x for that peer).
pub fn section(results: &[OpsResult], ops: usize, key_space: u64) -> Section {
    let summaries: Vec<[Summary; KINDS.len()]> = results
        .iter()
        .map(|r| std::array::from_fn(|kind| Summary::of(&r.ns[kind])))
        .collect();
    let best: [f64; KINDS.len()] = std::array::from_fn(|kind| {
        results
            .iter()
            .zip(&summaries)
            .filter(|(r, _)| !r.map.is_mapguard())
            .map(|(_, s)| s[kind].median)
            .fold(f64::INFINITY, f64::min)
    });
    let mut table = Table::new(std::iter::once("map").chain(KINDS));
    let mut csv = vec![[
        "map",
        "op",
        "rounds",
        "median_ns",
        "min_ns",
        "max_ns",
        "best_peer_ratio",
    ]
    .map(String::from)
    .to_vec()];
    for (r, s) in results.iter().zip(&summaries) {
        let mut row = vec![r.map.name().to_string()];
        for (kind, name) in KINDS.iter().enumerate() {
            let ratio = best[kind] / s[kind].median;
            row.push(format!("{:.0} {ratio:.2}x", s[kind].median));
            csv.push(vec![
                r.map.name().to_string(),
                name.to_string(),
                r.ns[kind].len().to_string(),
                format!("{:.2}", s[kind].median),
                format!("{:.2}", s[kind].min),
                format!("{:.2}", s[kind].max),
                format!("{ratio:.4}"),
            ]);
        }
        table.push(row);
    }
    Section {
        title: "Cost per kind of operation (ns, 1 thread)".into(),
        intro: format!(
            "A map filled with {} of {key_space} keys runs {ops} operations of one kind at a \
             time, keys in a fixed random order: gets of present and absent keys, inserts of \
             present keys (replacements), updates, removes of absent keys, inserts of absent \
             keys each with its removal. Each cell: median ns per operation over the rounds, \
             and the fastest peer's median over the map's (1.00x for that peer).",
            key_space / 2
        ),
        table,
        csv_name: "ops.csv",
        csv,
        plots: Vec::new(),
    }
}

//! Instructions per get and per write, counted by callgrind (exact, unlike timings on this VM).
//!
//! The bench binary has a mode (`count-gets`) that fills a map and then does N gets in one
//! function that is never inlined ([`measured_gets`], and [`measured_gets_held`] for reads
//! through one held guard). Each map runs under `valgrind --tool=callgrind
//! --toggle-collect=*measured_gets*`, so callgrind counts only instructions executed inside
//! that function and what it calls: process start, the fill and teardown are not collected
//! at all, and one run per map and hit/miss does.
//! Total / N is the cost of one get; it includes the loop's own few instructions per
//! iteration (next key, index wrap, count, branch), the same for every map. The hasher seed
//! and keys are fixed, so the counts repeat exactly. With `--writes` the same mode does N
//! writes instead ([`measured_writes`]: insert and remove by turns over the present and
//! absent keys in random order, so the map stays about half full and writes add, replace,
//! remove or miss), the cost of a write with whatever allocation, reclamation and resizing
//! the map does in steady use (after [`WARM_UP_WRITES`] uncollected ones).

use std::hint::black_box;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::maps::{BenchMap, MapKind, MapVisitor, Session};
use crate::report::Section;
use crate::table::Table;
use crate::workload::prefilled;

/// What `count-gets` measures: a map through its session, or papaya or ReadMostlyMap with one
/// guard held for all gets (their cheapest read paths).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A map as the throughput matrix uses it.
    Map(MapKind),
    /// papaya with a guard taken once for the whole loop.
    PapayaHeldGuard,
    /// mapguard's ReadMostlyMap pinned once for the whole loop (`ReadMostlyMap::pin`).
    ReadMostlyPinned,
    /// mapguard's ShardedMap built with `telemetry(false)`: what its default counters cost.
    ShardedNoTelemetry,
}

impl Target {
    /// Every target, in table order.
    pub fn all(maps: &[MapKind]) -> Vec<Target> {
        let mut t: Vec<Target> = maps.iter().map(|&m| Target::Map(m)).collect();
        if maps.contains(&MapKind::Sharded) {
            t.push(Target::ShardedNoTelemetry);
        }
        if maps.contains(&MapKind::ReadMostly) {
            t.push(Target::ReadMostlyPinned);
        }
        if maps.contains(&MapKind::Papaya) {
            t.push(Target::PapayaHeldGuard);
        }
        t
    }

    /// Name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Map(m) => m.name(),
            Target::PapayaHeldGuard => "papaya-held-guard",
            Target::ReadMostlyPinned => "mapguard-readmostly-pinned",
            Target::ShardedNoTelemetry => "mapguard-sharded-no-telemetry",
        }
    }

    /// Whether writes are counted too (the variants are read paths).
    pub fn counts_writes(self) -> bool {
        matches!(self, Target::Map(_))
    }

    /// Parses [`Target::name`].
    pub fn from_name(name: &str) -> Option<Target> {
        match name {
            "papaya-held-guard" => Some(Target::PapayaHeldGuard),
            "mapguard-readmostly-pinned" => Some(Target::ReadMostlyPinned),
            "mapguard-sharded-no-telemetry" => Some(Target::ShardedNoTelemetry),
            _ => MapKind::from_name(name).map(Target::Map),
        }
    }
}

/// The keys of a `count-gets` run: `entries` present keys, and the keys `op` uses (the
/// present ones, as many absent ones, or both for writes), each in a fixed shuffled order.
fn keys(entries: u64, op: Op) -> (Vec<u64>, Vec<u64>) {
    let mut rng = SmallRng::seed_from_u64(42);
    let mut present: Vec<u64> = (0..entries).map(|k| k * 2).collect();
    present.shuffle(&mut rng);
    let mut probe: Vec<u64> = match op {
        Op::Hit => return (present.clone(), present),
        Op::Miss => (0..entries).map(|k| k * 2 + 1).collect(),
        Op::Write => (0..entries * 2).collect(),
    };
    probe.shuffle(&mut rng);
    (present, probe)
}

/// The measured loop (callgrind collects inside it only; keep the name in sync with
/// [`TOGGLE`]).
#[inline(never)]
fn measured_gets<S: Session>(s: &mut S, keys: &[u64], n: u64) -> u64 {
    let mut hits = 0;
    for i in 0..n as usize {
        hits += s.get(keys[i % keys.len()]) as u64;
    }
    hits
}

/// Writes done before the measured ones, not collected: a map that reuses retired memory
/// reaches its steady state only after thousands of writes (ReadMostlyMap reuses a dead slot
/// three epochs after it died, and a writer advances the epoch every 1,024 deaths; when it
/// reused entries two epochs after a seal of 1,024 per shard, 20,000 writes into 8 shards
/// counted 506 instructions a write, 425 once warm).
const WARM_UP_WRITES: u64 = 100_000;

/// Writes like [`measured_writes`], outside callgrind's collection.
#[inline(never)]
fn warm_up_writes<S: Session>(s: &mut S, keys: &[u64]) {
    write_loop(s, keys, WARM_UP_WRITES);
}

/// The measured write loop: inserts and removes by turns, keys in `keys`' order (see
/// [`TOGGLE`]), then publishes what a batching map still holds. Returns the writes done.
#[inline(never)]
fn measured_writes<S: Session>(s: &mut S, keys: &[u64], n: u64) -> u64 {
    write_loop(s, keys, n);
    n
}

fn write_loop<S: Session>(s: &mut S, keys: &[u64], n: u64) {
    for i in 0..n as usize {
        let key = keys[i % keys.len()];
        if i % 2 == 0 {
            s.insert(key, key);
        } else {
            s.remove(key);
        }
    }
    s.finish();
}

/// What a `count-gets` run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Gets of present keys.
    Hit,
    /// Gets of absent keys.
    Miss,
    /// Inserts and removes by turns.
    Write,
}

struct CountGets<'a> {
    fill: &'a [u64],
    probe: &'a [u64],
    n: u64,
    op: Op,
}

impl MapVisitor for CountGets<'_> {
    type Output = u64;
    fn visit<M: BenchMap>(self) -> u64 {
        let map = M::empty();
        let mut s = map.session();
        for &k in self.fill {
            s.insert(k, k);
        }
        s.finish();
        map.loaded();
        match self.op {
            Op::Write => {
                warm_up_writes(&mut s, self.probe);
                measured_writes(&mut s, self.probe, self.n)
            }
            Op::Hit | Op::Miss => measured_gets(&mut s, self.probe, self.n),
        }
    }
}

fn papaya_held_guard_gets(fill: &[u64], probe: &[u64], n: u64) -> u64 {
    let map: papaya::HashMap<u64, u64, crate::maps::Hasher> = prefilled(fill);
    let guard = map.guard();
    measured_gets_held(
        |k| map.get(k, &guard).map(|v| black_box(*v)).is_some(),
        probe,
        n,
    )
}

fn read_mostly_pinned_gets(fill: &[u64], probe: &[u64], n: u64) -> u64 {
    let map: mapguard::ReadMostlyMap<u64, u64, crate::maps::Hasher> = prefilled(fill);
    let pinned = map.pin();
    measured_gets_held(|k| pinned.get(k).map(|v| black_box(*v)).is_some(), probe, n)
}

/// [`measured_gets`] for a map read through one guard or pin held for the whole loop.
#[inline(never)]
fn measured_gets_held(get: impl Fn(&u64) -> bool, probe: &[u64], n: u64) -> u64 {
    let mut hits = 0;
    for i in 0..n as usize {
        hits += get(&probe[i % probe.len()]) as u64;
    }
    hits
}

/// The functions callgrind collects in.
const TOGGLE: [&str; 2] = [
    "--toggle-collect=*measured_gets*",
    "--toggle-collect=*measured_writes*",
];

/// The `count-gets` mode: fill a map with `entries` keys, then do `n` gets (hits or misses)
/// or writes. Returns the hit count, which the caller checks (all or none), or for writes `n`.
pub fn count_gets(target: Target, entries: u64, n: u64, op: Op) -> anyhow::Result<u64> {
    let (fill, probe) = keys(entries, op);
    if op == Op::Write && !target.counts_writes() {
        bail!("count-gets: {} counts gets only", target.name());
    }
    Ok(match target {
        Target::Map(kind) => kind.visit(CountGets {
            fill: &fill,
            probe: &probe,
            n,
            op,
        }),
        Target::PapayaHeldGuard => papaya_held_guard_gets(&fill, &probe, n),
        Target::ReadMostlyPinned => read_mostly_pinned_gets(&fill, &probe, n),
        Target::ShardedNoTelemetry => {
            let map = mapguard::ShardedMap::builder()
                .hasher(crate::maps::hasher())
                .telemetry(false)
                .build();
            let mut s = crate::maps::Direct(&map);
            for &k in &fill {
                s.insert(k, k);
            }
            measured_gets(&mut s, &probe, n)
        }
    })
}

/// Total instructions of one `count-gets` run under callgrind.
fn callgrind_total(
    exe: &Path,
    target: Target,
    entries: u64,
    n: u64,
    op: Op,
) -> anyhow::Result<u64> {
    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .args(TOGGLE)
        .arg(exe)
        .args(["count-gets", "--map", target.name()])
        .args(["--entries", &entries.to_string(), "--gets", &n.to_string()]);
    match op {
        Op::Hit => {}
        Op::Miss => {
            cmd.arg("--miss");
        }
        Op::Write => {
            cmd.arg("--writes");
        }
    }
    let out = cmd
        .output()
        .context("cannot run valgrind (Debian package `valgrind`)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("callgrind run of {} failed: {stderr}", target.name());
    }
    stderr
        .lines()
        .find_map(|l| {
            l.split_once("Collected :")
                .and_then(|(_, n)| n.trim().parse().ok())
        })
        .with_context(|| format!("callgrind printed no total for {}: {stderr}", target.name()))
}

/// Instructions per get hit and miss of one target.
pub struct InstructionResult {
    /// What was measured.
    pub target: Target,
    /// Instructions per get that finds its key.
    pub hit: f64,
    /// Instructions per get that does not.
    pub miss: f64,
    /// Instructions per write (maps only).
    pub write: Option<f64>,
}

/// Measures every target: a callgrind run for `gets` hits, one for `gets`
/// misses, and one for `writes` writes.
///
/// Why more writes than gets: a map's shards migrate every few thousand writes
/// (growing, or shedding removed entries), and a short count caught a share of
/// that work that depended on where its window fell (ReadMostlyMap, one build:
/// 414 instructions a write over 20,000 writes, 493 over 200,000).
pub fn run(
    targets: &[Target],
    entries: u64,
    gets: u64,
    writes: u64,
) -> anyhow::Result<Vec<InstructionResult>> {
    let exe = std::env::current_exe()?;
    targets
        .iter()
        .map(|&target| {
            let per_op = |op, n| -> anyhow::Result<f64> {
                Ok(callgrind_total(&exe, target, entries, n, op)? as f64 / n as f64)
            };
            let r = InstructionResult {
                target,
                hit: per_op(Op::Hit, gets)?,
                miss: per_op(Op::Miss, gets)?,
                write: if target.counts_writes() {
                    Some(per_op(Op::Write, writes)?)
                } else {
                    None
                },
            };
            eprintln!(
                "instructions {}: hit {:.1}, miss {:.1}, write {:.1}",
                target.name(),
                r.hit,
                r.miss,
                r.write.unwrap_or(f64::NAN)
            );
            Ok(r)
        })
        .collect()
}

/// The instructions table, with ratios to the cheapest peer.
pub fn section(results: &[InstructionResult], entries: u64, n: u64, writes: u64) -> Section {
    let best = |f: fn(&InstructionResult) -> Option<f64>| {
        results
            .iter()
            .filter(|r| match r.target {
                Target::Map(m) => !m.is_mapguard(),
                Target::PapayaHeldGuard => true,
                Target::ShardedNoTelemetry | Target::ReadMostlyPinned => false,
            })
            .filter_map(f)
            .fold(f64::INFINITY, f64::min)
    };
    let best_hit = best(|r| Some(r.hit));
    let best_miss = best(|r| Some(r.miss));
    let best_write = best(|r| r.write);
    let mut table = Table::new([
        "map",
        "instr/get hit",
        "vs best peer",
        "instr/get miss",
        "vs best peer",
        "instr/write",
        "vs best peer",
    ]);
    let mut csv = vec![[
        "map",
        "instructions_per_hit",
        "instructions_per_miss",
        "instructions_per_write",
    ]
    .map(String::from)
    .to_vec()];
    for r in results {
        let (write, write_ratio) = match r.write {
            Some(w) => (format!("{w:.1}"), format!("{:.2}x", w / best_write)),
            None => ("-".into(), "-".into()),
        };
        table.push(vec![
            r.target.name().into(),
            format!("{:.1}", r.hit),
            format!("{:.2}x", r.hit / best_hit),
            format!("{:.1}", r.miss),
            format!("{:.2}x", r.miss / best_miss),
            write,
            write_ratio,
        ]);
        csv.push(vec![
            r.target.name().into(),
            format!("{:.2}", r.hit),
            format!("{:.2}", r.miss),
            r.write.map(|w| format!("{w:.2}")).unwrap_or_default(),
        ]);
    }
    Section {
        title: "Instructions per get and per write (callgrind)".into(),
        intro: format!(
            "{entries} entries, {n} gets of present (hit) or absent (miss) keys in shuffled \
             order; callgrind collects only inside the measured loop \
             (`--toggle-collect=*measured_gets*`), so start-up and fill are not counted. \
             Includes the benchmark loop's own ~12 instructions per get (index wrap, key load, count). Lower is better; ratios are to the \
             cheapest peer (>1 costs more). `papaya-held-guard` takes one guard for all gets, \
             `mapguard-readmostly-pinned` one `ReadMostlyMap::pin`; \
             `mapguard-sharded-no-telemetry` is ShardedMap with `telemetry(false)`. Writes: \
             {writes} inserts and removes by turns over the present keys and as many absent ones \
             in random order (`--toggle-collect=*measured_writes*`), so the map stays about \
             half full and writes add, replace, remove or miss: allocation, reclamation and \
             resizing included, as in steady use; the variants are read paths and count no \
             writes."
        ),
        table,
        csv_name: "instructions.csv",
        csv,
        plots: Vec::new(),
    }
}

//! The throughput matrix: every workload at every thread count on every map, rounds
//! interleaved across maps (each round in a rotated order) so that the VM's drifts hit all
//! maps alike.

use std::time::Duration;

use crate::maps::MapKind;
use crate::stats::Summary;
use crate::workload::{Plan, Throughput, Workload};

/// What to run.
#[derive(Clone, Debug)]
pub struct MatrixConfig {
    /// Workloads.
    pub workloads: Vec<Workload>,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Maps.
    pub maps: Vec<MapKind>,
    /// Repeats of every cell.
    pub rounds: usize,
    /// Operations per run (all threads together).
    pub ops: usize,
    /// Key space of the prefilled workloads (half of it present at the start).
    pub key_space: u64,
}

/// One map's result in one cell.
#[derive(Clone, Debug)]
pub struct CellResult {
    /// Workload name.
    pub workload: &'static str,
    /// Threads.
    pub threads: usize,
    /// The map.
    pub map: MapKind,
    /// Million operations per second, one per round.
    pub mops: Vec<f64>,
}

impl CellResult {
    /// Median, min and max over the rounds.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.mops)
    }
}

/// Runs the matrix, printing a line per cell and round to stderr as it goes.
pub fn run(cfg: &MatrixConfig) -> Vec<CellResult> {
    let mut results = Vec::new();
    for w in &cfg.workloads {
        for &threads in &cfg.threads {
            let plan = Plan::new(w, threads, cfg.ops, cfg.key_space, 0x5eed);
            let mut cells: Vec<CellResult> = cfg
                .maps
                .iter()
                .map(|&map| CellResult {
                    workload: w.name,
                    threads,
                    map,
                    mops: Vec::new(),
                })
                .collect();
            for round in 0..cfg.rounds {
                let mut line =
                    format!("{} t={threads} round {}/{}:", w.name, round + 1, cfg.rounds);
                for i in 0..cells.len() {
                    let cell = &mut cells[(i + round) % cfg.maps.len()];
                    let elapsed = cell.map.visit(Throughput(&plan));
                    let mops = plan.ops() as f64
                        / elapsed.max(Duration::from_nanos(1)).as_secs_f64()
                        / 1e6;
                    cell.mops.push(mops);
                    line += &format!(" {}={mops:.1}", cell.map.name());
                }
                eprintln!("{line}");
            }
            results.extend(cells);
        }
    }
    results
}

/// The best peer (not a mapguard engine) of a cell's results: its median Mops/s.
pub fn best_peer(cell: &[&CellResult]) -> Option<(MapKind, f64)> {
    cell.iter()
        .filter(|c| !c.map.is_mapguard())
        .map(|c| (c.map, c.summary().median))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

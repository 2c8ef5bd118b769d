//! Per-operation latency: every read and insert timed on its own into hdrhistograms, rounds
//! interleaved across maps and merged; p50, p99, p99.9 and max per map.

use hdrhistogram::Histogram;

use crate::maps::MapKind;
use crate::report::Section;
use crate::table::Table;
use crate::workload::{histogram, Latency, Plan, Workload};

/// One map's merged histograms for one workload.
pub struct LatencyResult {
    /// Workload name.
    pub workload: &'static str,
    /// Threads.
    pub threads: usize,
    /// The map.
    pub map: MapKind,
    /// Read latencies, ns.
    pub reads: Histogram<u64>,
    /// Insert latencies, ns.
    pub inserts: Histogram<u64>,
}

/// Runs every workload on every map `rounds` times, interleaved.
pub fn run(
    workloads: &[Workload],
    threads: usize,
    maps: &[MapKind],
    rounds: usize,
    ops: usize,
    key_space: u64,
) -> Vec<LatencyResult> {
    let mut results = Vec::new();
    for w in workloads {
        let plan = Plan::new(w, threads, ops, key_space, 0x1a7e);
        let mut merged: Vec<LatencyResult> = maps
            .iter()
            .map(|&map| LatencyResult {
                workload: w.name,
                threads,
                map,
                reads: histogram(),
                inserts: histogram(),
            })
            .collect();
        for round in 0..rounds {
            for i in 0..merged.len() {
                let r = &mut merged[(i + round) % maps.len()];
                let lat = r.map.visit(Latency(&plan));
                r.reads.add(&lat.reads).expect("histograms auto-resize");
                r.inserts.add(&lat.inserts).expect("histograms auto-resize");
            }
            eprintln!(
                "latency {} t={threads} round {}/{rounds} done",
                w.name,
                round + 1
            );
        }
        results.extend(merged);
    }
    results
}

fn quantiles(h: &Histogram<u64>) -> [u64; 4] {
    [
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    ]
}

/// The latency table: ns at each quantile, and insert p99.9 against papaya's.
pub fn section(results: &[LatencyResult]) -> Section {
    let mut table = Table::new([
        "workload / map",
        "read p50",
        "p99",
        "p99.9",
        "max",
        "insert p50",
        "p99",
        "p99.9",
        "max",
        "insert p99.9 / papaya",
    ]);
    let mut csv = vec![[
        "workload", "threads", "map", "op", "samples", "p50_ns", "p99_ns", "p999_ns", "max_ns",
    ]
    .map(String::from)
    .to_vec()];
    for r in results {
        let papaya = results
            .iter()
            .find(|p| p.workload == r.workload && p.map == MapKind::Papaya)
            .map(|p| p.inserts.value_at_quantile(0.999));
        let mut row = vec![format!("{} / {}", r.workload, r.map.name())];
        for (op, h) in [("read", &r.reads), ("insert", &r.inserts)] {
            let q = quantiles(h);
            row.extend(q.iter().map(|v| {
                if h.is_empty() {
                    "-".into()
                } else {
                    v.to_string()
                }
            }));
            csv.push(vec![
                r.workload.to_string(),
                r.threads.to_string(),
                r.map.name().to_string(),
                op.to_string(),
                h.len().to_string(),
                q[0].to_string(),
                q[1].to_string(),
                q[2].to_string(),
                q[3].to_string(),
            ]);
        }
        row.push(match papaya {
            Some(p) if p > 0 && !r.inserts.is_empty() => {
                format!(
                    "{:.2}x",
                    r.inserts.value_at_quantile(0.999) as f64 / p as f64
                )
            }
            _ => "-".into(),
        });
        table.push(row);
    }
    let threads = results.first().map_or(0, |r| r.threads);
    Section {
        title: format!("Latency per operation (ns, {threads} threads)"),
        intro: "Every read and insert timed on its own (a clock read on each side: this VM's \
                ~20-40 ns clock cost is inside every sample), recorded in hdrhistograms, rounds \
                merged. rapid_grow's inserts include the maps' resizes."
            .into(),
        table,
        csv_name: "latency.csv",
        csv,
        plots: Vec::new(),
    }
}

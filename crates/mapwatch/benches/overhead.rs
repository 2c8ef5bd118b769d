//! mapwatch-overhead: the cost per probed map operation, measured in one run, interleaved:
//! no probe, a naive entry probe (bpftrace's placement: the first instruction, which the
//! kernel single-steps), and mapwatch's placement (after the stack check, on an emulated
//! `push rbp`) with full events. The Go program times its own loop, so process start-up and
//! attach time don't count. Needs root.
//!
//! cargo bench -p mapwatch --bench mapwatch-overhead [-- ROUNDS]

use std::process::Command;

use mapwatch::capture::capture;
use mapwatch::probe::SitePolicy;

/// Ops per run; the entry probe costs ~16 µs per op here, so it gets fewer.
const OPS: u64 = 2_000_000;
const ENTRY_OPS: u64 = 200_000;

fn ns_per_op(stdout: &str) -> f64 {
    stdout
        .split_whitespace()
        .last()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("mapbench printed no timing: {stdout:?}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(3);
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("mapwatch-overhead: needs root (it loads eBPF programs)");
        std::process::exit(1);
    }
    let bin = gobuild::Build::new("1.25.5", "mapbench")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut plain, mut entry, mut planned) = (Vec::new(), Vec::new(), Vec::new());
    let mut events = 0u64;
    let mut drops = 0u64;
    for round in 1..=rounds {
        let out = Command::new(&bin)
            .args(["read", &OPS.to_string()])
            .output()
            .unwrap();
        plain.push(ns_per_op(&String::from_utf8_lossy(&out.stdout)));

        let mut cmd = Command::new(&bin);
        cmd.args(["read", &ENTRY_OPS.to_string()]);
        let run = capture(cmd, SitePolicy::FunctionEntry).unwrap();
        entry.push(ns_per_op(&run.stdout));

        let mut cmd = Command::new(&bin);
        cmd.args(["read", &OPS.to_string()]);
        let run = capture(cmd, SitePolicy::Planned).unwrap();
        planned.push(ns_per_op(&run.stdout));
        events += run.records.len() as u64;
        drops += run.counters.drops;
        eprintln!(
            "round {round}/{rounds}: plain {:.1} ns/op, entry probe {:.1} ns/op, mapwatch {:.1} ns/op",
            plain[round - 1],
            entry[round - 1],
            planned[round - 1]
        );
    }
    let (plain, entry, planned) = (median(plain), median(entry), median(planned));
    let entry_cost = entry - plain;
    let planned_cost = planned - plain;
    println!(
        "mapwatch-overhead: map[int]int reads, Go 1.25.5, median of {rounds} interleaved rounds"
    );
    println!(
        "{:<44} {:>12} {:>16}",
        "placement", "ns/op", "probe cost/op"
    );
    println!("{:<44} {:>12.1} {:>16}", "no probe", plain, "-");
    println!(
        "{:<44} {:>12.1} {:>13.2} µs",
        "entry probe (bpftrace-style, single-stepped)",
        entry,
        entry_cost / 1000.0
    );
    println!(
        "{:<44} {:>12.1} {:>13.2} µs",
        "mapwatch (after stack check, with events)",
        planned,
        planned_cost / 1000.0
    );
    println!("events read: {events}, dropped: {drops}");
    println!(
        "mapwatch costs {:.2} µs per probed op, {:.1}x cheaper than the entry probe",
        planned_cost / 1000.0,
        entry_cost / planned_cost
    );
}

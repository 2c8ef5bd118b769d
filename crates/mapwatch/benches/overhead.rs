//! mapwatch-overhead: the cost per probed map operation, measured in one run, interleaved:
//! no probe; a naive entry probe (bpftrace's placement: the first instruction, which the
//! kernel single-steps); a program that does nothing at mapwatch's placement (the kernel's own
//! cost there: the floor under any program); and mapwatch with full events, in the map
//! functions (`--all-maps`) and on the program's calls to them (the default). The Go
//! program times its own loop, so process start-up and attach time don't count. Then the
//! programs' own run time per hit from the kernel's statistics (separate runs, as the
//! statistics cost every hit two clock reads): mapwatch's work over the empty program's, as a
//! share of the kernel's floor. Needs root.
//!
//! cargo bench -p mapwatch --bench mapwatch-overhead [-- ROUNDS]

use std::process::Command;

use mapwatch::SitePolicy;
use mapwatch::{capture, capture_measured};

/// Ops per run; the entry probe is several times dearer per op, so it gets fewer.
const OPS: u64 = 1_000_000;
const ENTRY_OPS: u64 = 200_000;

/// How a run is probed.
#[derive(Clone, Copy)]
enum Probe {
    None,
    Sites(SitePolicy),
}

const PROBES: [(&str, Probe); 5] = [
    ("no probe", Probe::None),
    (
        "entry probe (bpftrace-style, single-stepped)",
        Probe::Sites(SitePolicy::FunctionEntry),
    ),
    (
        "empty program after the stack check (floor)",
        Probe::Sites(SitePolicy::PlannedEmpty),
    ),
    (
        "mapwatch --all-maps (after the stack check)",
        Probe::Sites(SitePolicy::Planned),
    ),
    (
        "mapwatch (on the program's calls)",
        Probe::Sites(SitePolicy::Calls),
    ),
];

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

/// One timed run of `mapbench OP`; returns ns/op and the events and drops mapwatch counted.
fn run(bin: &std::path::Path, op: &str, probe: Probe) -> (f64, u64, u64) {
    let ops = match probe {
        Probe::Sites(SitePolicy::FunctionEntry) => ENTRY_OPS,
        _ => OPS,
    };
    let mut cmd = Command::new(bin);
    cmd.args([op, &ops.to_string()]);
    match probe {
        Probe::None => {
            let out = cmd.output().unwrap();
            (ns_per_op(&String::from_utf8_lossy(&out.stdout)), 0, 0)
        }
        Probe::Sites(policy) => {
            let run = capture(cmd, policy).unwrap();
            let events = if matches!(policy, SitePolicy::Planned | SitePolicy::Calls) {
                run.records.len() as u64
            } else {
                0
            };
            (ns_per_op(&run.stdout), events, run.counters.drops)
        }
    }
}

/// The programs' mean run time per hit over one run of `mapbench OP` (kernel statistics).
fn program_ns_per_hit(bin: &std::path::Path, op: &str, policy: SitePolicy) -> f64 {
    let mut cmd = Command::new(bin);
    cmd.args([op, &OPS.to_string()]);
    capture_measured(cmd, policy).unwrap().runs.ns_per_hit()
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
    println!(
        "mapwatch-overhead: map[int]int ops, Go 1.25.5, median of {rounds} interleaved rounds"
    );
    let mut last_line = String::new();
    for op in ["read", "write"] {
        let mut samples = vec![Vec::new(); PROBES.len()];
        let (mut empty_program, mut mapwatch_program) = (Vec::new(), Vec::new());
        let (mut events, mut drops) = (0, 0);
        for round in 1..=rounds {
            let mut line = format!("{op} round {round}/{rounds}:");
            for (i, &(_, probe)) in PROBES.iter().enumerate() {
                let (ns, e, d) = run(&bin, op, probe);
                samples[i].push(ns);
                events += e;
                drops += d;
                line += &format!(" {ns:.1}");
            }
            empty_program.push(program_ns_per_hit(&bin, op, SitePolicy::PlannedEmpty));
            mapwatch_program.push(program_ns_per_hit(&bin, op, SitePolicy::Calls));
            eprintln!("{line} ns/op");
        }
        let ns: Vec<f64> = samples.into_iter().map(median).collect();
        let plain = ns[0];
        println!("\n{op}s:");
        println!(
            "  {:<48} {:>10} {:>14}",
            "placement", "ns/op", "probe cost/op"
        );
        for (&(name, _), &v) in PROBES.iter().zip(&ns) {
            let cost = if v == plain {
                "-".to_string()
            } else {
                format!("{:.2} µs", (v - plain) / 1000.0)
            };
            println!("  {name:<48} {v:>10.1} {cost:>14}");
        }
        println!("  events read by mapwatch: {events}, dropped: {drops}");
        let [entry, floor, in_functions, on_calls] = [1, 2, 3, 4].map(|i| ns[i] - plain);
        println!(
            "  mapwatch's program adds {:.2} µs to the kernel's {:.2} µs per probe (same sites)",
            (in_functions - floor) / 1000.0,
            floor / 1000.0
        );
        let (empty, work) = (median(empty_program), median(mapwatch_program));
        println!(
            "  run time per hit (kernel statistics): mapwatch on the calls {work:.0} ns, the empty \
             program {empty:.0} ns: mapwatch's work {:.0} ns, {:.0} % of the floor",
            work - empty,
            100.0 * (work - empty) / floor
        );
        last_line += &format!(
            "{op}: mapwatch {:.2} µs/op on the program's calls, {:.1}x cheaper than the entry probe; ",
            on_calls / 1000.0,
            entry / on_calls
        );
    }
    println!("\n{}", last_line.trim_end_matches("; "));
}

//! bench: measures mapguard's maps and mapwatch against their peers, side by side, in one run.
//!
//! `bench --quick` (a few minutes) or `bench --full` runs every part and prints tables of
//! ratios against the best peer; CSV and SVG files go to `--out` (default `target/bench`), and
//! `--publish` writes the generated tables into BENCHMARKS.md. See BENCHMARKS.md.

mod http;
mod instructions;
mod latency;
mod maps;
mod matrix;
mod ops;
mod overhead;
mod plot;
mod report;
mod stats;
mod table;
mod watched_service;
mod workload;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::maps::MapKind;
use crate::workload::WORKLOADS;

#[derive(Parser)]
#[command(
    version,
    about = "Measure mapguard and mapwatch against their peers, in one run"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Mode {
    /// Fill a map, then do only N gets (what the callgrind part runs).
    CountGets {
        /// Map name (see --maps), or a read-path variant: papaya-held-guard,
        /// mapguard-readmostly-pinned, mapguard-sharded-no-telemetry.
        #[arg(long)]
        map: String,
        /// Entries to fill in first.
        #[arg(long, default_value_t = 10_000)]
        entries: u64,
        /// Gets to do.
        #[arg(long)]
        gets: u64,
        /// Look up absent keys instead of present ones.
        #[arg(long, conflicts_with = "writes")]
        miss: bool,
        /// Do N writes instead (inserts and removes by turns, over the present keys and as
        /// many absent ones).
        #[arg(long)]
        writes: bool,
    },
    /// Run the order-status HTTP service (what the HTTP part drives with wrk).
    Serve {
        /// Store: mapguard-sharded, mapguard-snapshot, dashmap or std-rwlock.
        #[arg(long)]
        store: String,
        /// Address to listen on (port 0: any; the chosen one is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Orders to create at start (ids 0..N, status "placed").
        #[arg(long, default_value_t = 10_000)]
        orders: u64,
        /// Tokio worker threads.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
}

/// How much to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Size {
    /// A tiny run that checks the harness (the test suite's smoke test).
    Smoke,
    /// A few minutes.
    Quick,
    /// The full matrix.
    Full,
}

/// The parts of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Throughput matrix.
    Maps,
    /// Per-operation latency.
    Latency,
    /// Cost per kind of operation, one thread.
    Ops,
    /// Instructions per get under callgrind.
    Instructions,
    /// The HTTP service under wrk.
    Http,
    /// mapwatch's overhead on a Go program (root for the eBPF rows).
    Overhead,
    /// mapwatch on a Go HTTP service under wrk (root for the eBPF rows).
    Service,
}

#[derive(Args)]
struct RunArgs {
    /// The quick variant (the default).
    #[arg(long, conflicts_with_all = ["full", "size"])]
    quick: bool,
    /// The full matrix (more operations, rounds and keys).
    #[arg(long, conflicts_with = "size")]
    full: bool,
    /// Size by name (smoke is what the test suite runs).
    #[arg(long, value_enum)]
    size: Option<Size>,
    /// Parts to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Maps to include (default: all), comma-separated.
    #[arg(long, value_delimiter = ',')]
    maps: Vec<String>,
    /// Rounds per cell (default: by size).
    #[arg(long)]
    rounds: Option<usize>,
    /// The mapwatch binary the overhead part runs (default: target/release/mapwatch).
    #[arg(long)]
    mapwatch: Option<PathBuf>,
    /// Folder for CSV, SVG and results.md.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Also write the generated tables into this Markdown file (between its markers) and the
    /// plots and CSV files into docs/bench/ beside it.
    #[arg(long, value_name = "BENCHMARKS.md")]
    publish: Option<PathBuf>,
}

/// Operation counts and repeats of one size.
struct Profile {
    rounds: usize,
    threads: Vec<usize>,
    ops: usize,
    key_space: u64,
    latency_ops: usize,
    /// Operations of each kind in the ops part.
    kind_ops: usize,
    callgrind_gets: u64,
    /// Writes measured per map: enough to span several migrations of its
    /// shards (see `instructions::run`).
    callgrind_writes: u64,
    callgrind_entries: u64,
    http_write_percents: Vec<u8>,
    http_rounds: usize,
    http_seconds: u32,
    overhead: overhead::Ops,
    /// Seconds of load per run of the watched Go service.
    service_seconds: u32,
}

impl Profile {
    fn of(size: Size) -> Profile {
        match size {
            Size::Smoke => Profile {
                rounds: 1,
                threads: vec![1, 2],
                ops: 4_000,
                key_space: 1 << 10,
                latency_ops: 4_000,
                kind_ops: 2_000,
                callgrind_gets: 1_000,
                callgrind_writes: 1_000,
                callgrind_entries: 1_000,
                http_write_percents: vec![10],
                http_rounds: 1,
                http_seconds: 1,
                overhead: overhead::Ops {
                    long: 100_000,
                    duty_cycled: 100_000,
                    mapwatch: 10_000,
                    entry_probe: 2_000,
                },
                service_seconds: 1,
            },
            Size::Quick => Profile {
                rounds: 3,
                threads: vec![1, 2, 4],
                ops: 400_000,
                key_space: 1 << 16,
                latency_ops: 400_000,
                kind_ops: 200_000,
                callgrind_gets: 20_000,
                callgrind_writes: 200_000,
                callgrind_entries: 10_000,
                http_write_percents: vec![1, 10, 50],
                http_rounds: 2,
                http_seconds: 3,
                overhead: overhead::Ops {
                    long: 20_000_000,
                    duty_cycled: 300_000_000,
                    mapwatch: 1_000_000,
                    entry_probe: 100_000,
                },
                service_seconds: 5,
            },
            Size::Full => Profile {
                rounds: 5,
                threads: vec![1, 2, 4],
                ops: 1_000_000,
                key_space: 1 << 18,
                latency_ops: 1_000_000,
                kind_ops: 1_000_000,
                callgrind_gets: 100_000,
                callgrind_writes: 1_000_000,
                callgrind_entries: 100_000,
                http_write_percents: vec![1, 10, 50],
                http_rounds: 3,
                http_seconds: 5,
                overhead: overhead::Ops {
                    long: 50_000_000,
                    duty_cycled: 600_000_000,
                    mapwatch: 2_000_000,
                    entry_probe: 300_000,
                },
                service_seconds: 10,
            },
        }
    }
}

/// The mapwatch binary the eBPF parts run.
fn mapwatch_binary(args: &RunArgs) -> PathBuf {
    args.mapwatch
        .clone()
        .unwrap_or_else(|| gobuild::repo_root().join("target/release/mapwatch"))
}

fn selected_maps(names: &[String]) -> anyhow::Result<Vec<MapKind>> {
    if names.is_empty() {
        return Ok(MapKind::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            MapKind::from_name(n).with_context(|| {
                let all: Vec<_> = MapKind::ALL.iter().map(|m| m.name()).collect();
                format!("unknown map {n:?}; known: {}", all.join(", "))
            })
        })
        .collect()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs ({cpu}), Linux {}", kernel.trim())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let size = match (args.size, args.full) {
        (Some(s), _) => s,
        (None, true) => Size::Full,
        (None, false) => Size::Quick,
    };
    let mut profile = Profile::of(size);
    if let Some(r) = args.rounds {
        if r == 0 {
            bail!("--rounds must be at least 1");
        }
        profile.rounds = r;
    }
    let maps = selected_maps(&args.maps)?;
    if !maps.iter().any(|m| !m.is_mapguard()) {
        bail!("--maps needs at least one peer (ratios are to the best peer)");
    }
    let parts = if args.only.is_empty() {
        vec![
            Part::Maps,
            Part::Latency,
            Part::Ops,
            Part::Instructions,
            Part::Http,
            Part::Overhead,
            Part::Service,
        ]
    } else {
        args.only.clone()
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let machine = machine();
    println!("bench ({size:?}): {machine}; hasher: foldhash fast (fixed seed) for every map");

    // Each part's table is printed and its CSV written as soon as it is done, so a later
    // part that fails (no root, no Go toolchain) does not lose the earlier ones.
    let mut sections = Vec::new();
    let mut finish = |section: report::Section| -> anyhow::Result<()> {
        report::emit(&section, &args.out)?;
        sections.push(section);
        Ok(())
    };
    if parts.contains(&Part::Maps) {
        let results = matrix::run(&matrix::MatrixConfig {
            workloads: WORKLOADS.to_vec(),
            threads: profile.threads.clone(),
            maps: maps.clone(),
            rounds: profile.rounds,
            ops: profile.ops,
            key_space: profile.key_space,
        });
        let plots = plot::throughput(&results, &args.out)?;
        finish(report::throughput(&results, plots))?;
    }
    if parts.contains(&Part::Latency) {
        let workloads =
            ["read_heavy", "rapid_grow"].map(|w| workload::workload(w).expect("known workload"));
        let results = latency::run(
            &workloads,
            2,
            &maps,
            profile.rounds,
            profile.latency_ops,
            profile.key_space,
        );
        finish(latency::section(&results))?;
    }
    if parts.contains(&Part::Ops) {
        let results = ops::run(&maps, profile.rounds, profile.kind_ops, profile.key_space);
        finish(ops::section(&results, profile.kind_ops, profile.key_space))?;
    }
    if parts.contains(&Part::Instructions) {
        let targets = instructions::Target::all(&maps);
        let results = instructions::run(
            &targets,
            profile.callgrind_entries,
            profile.callgrind_gets,
            profile.callgrind_writes,
        )?;
        finish(instructions::section(
            &results,
            profile.callgrind_entries,
            profile.callgrind_gets,
            profile.callgrind_writes,
        ))?;
    }
    if parts.contains(&Part::Http) {
        let cfg = http::HttpConfig {
            stores: http::store::StoreKind::ALL.to_vec(),
            write_percents: profile.http_write_percents.clone(),
            rounds: args.rounds.unwrap_or(profile.http_rounds),
            seconds: profile.http_seconds,
            orders: 10_000,
            connections: 32,
        };
        let results = http::run(&cfg, &args.out)?;
        finish(http::section(&results, &cfg))?;
    }
    if parts.contains(&Part::Overhead) {
        let cfg = overhead::OverheadConfig {
            mapwatch: mapwatch_binary(&args),
            rounds: profile.rounds,
            ops: profile.overhead,
        };
        let results = overhead::run(&cfg)?;
        finish(overhead::section(&results, &cfg))?;
    }
    if parts.contains(&Part::Service) {
        let cfg = watched_service::ServiceConfig {
            mapwatch: mapwatch_binary(&args),
            rounds: profile.rounds,
            seconds: profile.service_seconds,
            out: args.out.clone(),
        };
        let results = watched_service::run(&cfg)?;
        finish(watched_service::section(&results, &cfg))?;
    }

    let header = format!(
        "Generated by `bench --size {}` on {machine}, {} rounds.",
        format!("{size:?}").to_lowercase(),
        profile.rounds
    );
    let files: Vec<String> = sections
        .iter()
        .flat_map(|s| s.plots.iter().cloned().chain([s.csv_name.to_string()]))
        .collect();
    std::fs::write(
        args.out.join("results.md"),
        report::markdown(&header, &sections, ""),
    )?;
    if let Some(doc) = &args.publish {
        report::publish(
            doc,
            &report::markdown(&header, &sections, "docs/bench/"),
            &args.out,
            &files,
        )?;
    }
    println!("\nCSV, SVG and results.md in {}", args.out.display());
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.mode {
        Some(Mode::CountGets {
            map,
            entries,
            gets,
            miss,
            writes,
        }) => match instructions::Target::from_name(&map) {
            Some(target) => {
                use instructions::Op;
                let op = match (miss, writes) {
                    (_, true) => Op::Write,
                    (true, false) => Op::Miss,
                    (false, false) => Op::Hit,
                };
                let expected = if op == Op::Miss { 0 } else { gets };
                instructions::count_gets(target, entries, gets, op).and_then(|done| {
                    if done == expected {
                        Ok(())
                    } else {
                        Err(anyhow::anyhow!(
                            "count-gets: {done} hits/writes of {gets}, expected {expected}"
                        ))
                    }
                })
            }
            None => Err(anyhow::anyhow!("count-gets: unknown map {map:?}")),
        },
        Some(Mode::Serve { store, addr, orders, workers }) => match http::store::StoreKind::from_name(&store) {
            Some(kind) => http::service::serve(kind.build(orders), &addr, workers),
            None => Err(anyhow::anyhow!(
                "serve: unknown store {store:?}; known: mapguard-sharded, mapguard-snapshot, dashmap, std-rwlock"
            )),
        },
        None => run(cli.run),
    };
    if let Err(e) = result {
        eprintln!("bench: {e:#}");
        std::process::exit(1);
    }
}

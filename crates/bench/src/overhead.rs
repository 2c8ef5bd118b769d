//! mapwatch overhead: one map-heavy Go program (`testdata/go/mapbench`, which times its own
//! loop of `map[int]int` reads or writes and prints ns/op, so start-up and attach don't count)
//! run plain, under a bpftrace entry-probe recipe, under `mapwatch run`, under
//! `mapwatch run --duty-cycle 10` (when mapwatch has that flag), and rebuilt with `go build
//! -race`; rounds interleaved; slowdown ratios to plain.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::report::Section;
use crate::stats::Summary;
use crate::table::Table;

/// The Go toolchain the program is built with.
const GO_VERSION: &str = "1.25.5";

/// How the program is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// No probes, no instrumentation.
    Plain,
    /// bpftrace `count()` on uprobes at the map functions' entries.
    Bpftrace,
    /// `mapwatch run`.
    Mapwatch,
    /// `mapwatch run --duty-cycle 10` (with `--duty-period 1` where mapwatch has it, so a run
    /// spans several periods).
    MapwatchDutyCycle,
    /// Built with `-race`.
    Race,
}

impl Variant {
    const ALL: [Variant; 5] = [
        Variant::Plain,
        Variant::Bpftrace,
        Variant::Mapwatch,
        Variant::MapwatchDutyCycle,
        Variant::Race,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Bpftrace => "bpftrace entry probes, count()",
            Variant::Mapwatch => "mapwatch run",
            Variant::MapwatchDutyCycle => "mapwatch run --duty-cycle 10",
            Variant::Race => "go build -race",
        }
    }

    fn needs_root(self) -> bool {
        matches!(
            self,
            Variant::Bpftrace | Variant::Mapwatch | Variant::MapwatchDutyCycle
        )
    }
}

/// Operation counts: probes that trap into the kernel on every op get fewer (the program
/// reports ns/op, so counts needn't match).
#[derive(Clone, Copy, Debug)]
pub struct Ops {
    /// Plain and race runs.
    pub long: u64,
    /// The duty-cycled run: enough for several duty periods at plain speed.
    pub duty_cycled: u64,
    /// mapwatch's full run.
    pub mapwatch: u64,
    /// bpftrace's entry probes (single-stepped: ~5-17 µs each on this VM).
    pub entry_probe: u64,
}

/// What to run.
pub struct OverheadConfig {
    /// The mapwatch binary.
    pub mapwatch: PathBuf,
    /// Repeats.
    pub rounds: usize,
    /// Operation counts.
    pub ops: Ops,
}

/// One variant's samples per op class, or why it could not run.
pub struct OverheadResult {
    /// The variant.
    pub variant: Variant,
    /// ns/op for reads and writes, per round; `Err` says why it was not measured.
    pub samples: Result<[Vec<f64>; 2], String>,
}

const OPS: [&str; 2] = ["read", "write"];

fn ns_per_op(op: &str, stdout: &str) -> anyhow::Result<f64> {
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix(op)?
                .trim()
                .strip_prefix("ns/op")?
                .trim()
                .parse()
                .ok()
        })
        .with_context(|| format!("mapbench printed no `{op} ns/op` line: {stdout:?}"))
}

fn output(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The bpftrace recipe: count every call of the map entry points.
fn bpftrace_program(bin: &Path) -> String {
    let b = bin.display();
    format!(
        "uprobe:{b}:runtime.mapaccess*,uprobe:{b}:runtime.mapassign*,uprobe:{b}:runtime.mapdelete* \
         {{ @ops = count(); }}"
    )
}

fn run_once(
    variant: Variant,
    cfg: &OverheadConfig,
    plain: &Path,
    race: &Path,
    op: &str,
) -> anyhow::Result<f64> {
    let ops = match variant {
        Variant::Bpftrace => cfg.ops.entry_probe,
        Variant::Mapwatch => cfg.ops.mapwatch,
        Variant::MapwatchDutyCycle => cfg.ops.duty_cycled,
        Variant::Plain | Variant::Race => cfg.ops.long,
    };
    let ops_arg = ops.to_string();
    let stdout = match variant {
        Variant::Plain => output(Command::new(plain).args([op, &ops_arg]), "mapbench")?,
        Variant::Race => output(Command::new(race).args([op, &ops_arg]), "mapbench -race")?,
        Variant::Bpftrace => {
            let out = output(
                Command::new("bpftrace")
                    .arg("-e")
                    .arg(bpftrace_program(plain))
                    .arg("-c")
                    .arg(format!("{} {op} {ops}", plain.display())),
                "bpftrace (Debian package `bpftrace`)",
            )?;
            // The recipe must really have probed every operation.
            let counted: u64 = out
                .lines()
                .find_map(|l| l.strip_prefix("@ops:")?.trim().parse().ok())
                .with_context(|| format!("bpftrace printed no count: {out:?}"))?;
            if counted < ops {
                bail!("bpftrace counted {counted} map calls, expected at least {ops}");
            }
            out
        }
        Variant::Mapwatch | Variant::MapwatchDutyCycle => {
            let mut cmd = Command::new(&cfg.mapwatch);
            cmd.args(["run", "--quiet"]);
            if variant == Variant::MapwatchDutyCycle {
                cmd.args(["--duty-cycle", "10"]);
                if mapwatch_run_help(&cfg.mapwatch).contains("--duty-period") {
                    cmd.args(["--duty-period", DUTY_PERIOD_S]);
                }
            }
            cmd.arg("--").arg(plain).args([op, &ops_arg]);
            output(&mut cmd, "mapwatch run")?
        }
    };
    ns_per_op(op, &stdout)
}

/// The duty period asked for: short, so that one run spans several periods and the slowdown
/// is an average over on and off phases rather than a matter of phase.
const DUTY_PERIOD_S: &str = "1";

fn mapwatch_run_help(mapwatch: &Path) -> String {
    Command::new(mapwatch)
        .args(["run", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Why a variant can't run here, if it can't.
fn unavailable(variant: Variant, cfg: &OverheadConfig) -> Option<String> {
    if variant.needs_root() && unsafe { libc::geteuid() } != 0 {
        return Some("n/a: needs root (eBPF)".into());
    }
    if matches!(variant, Variant::Mapwatch | Variant::MapwatchDutyCycle) && !cfg.mapwatch.is_file()
    {
        return Some(format!(
            "n/a: no mapwatch at {} (cargo build --release -p mapwatch)",
            cfg.mapwatch.display()
        ));
    }
    if variant == Variant::MapwatchDutyCycle {
        let help = Command::new(&cfg.mapwatch)
            .args(["run", "--help"])
            .output()
            .ok()?;
        if !String::from_utf8_lossy(&help.stdout).contains("--duty-cycle") {
            return Some("n/a: mapwatch lacks --duty-cycle".into());
        }
    }
    None
}

/// Builds the program (plain and -race) and runs every variant, interleaved.
pub fn run(cfg: &OverheadConfig) -> anyhow::Result<Vec<OverheadResult>> {
    let plain = gobuild::Build::new(GO_VERSION, "mapbench").build()?;
    let race = gobuild::Build::new(GO_VERSION, "mapbench")
        .race(true)
        .build()?;
    let mut results: Vec<OverheadResult> = Variant::ALL
        .iter()
        .map(|&variant| OverheadResult {
            variant,
            samples: match unavailable(variant, cfg) {
                Some(why) => Err(why),
                None => Ok([Vec::new(), Vec::new()]),
            },
        })
        .collect();
    for round in 0..cfg.rounds {
        for (i, op) in OPS.iter().enumerate() {
            let mut line = format!("overhead {op} round {}/{}:", round + 1, cfg.rounds);
            for r in results.iter_mut() {
                if let Ok(samples) = &mut r.samples {
                    let ns = run_once(r.variant, cfg, &plain, &race, op)?;
                    samples[i].push(ns);
                    line += &format!(" {}={ns:.1}", r.variant.name());
                }
            }
            eprintln!("{line} ns/op");
        }
    }
    Ok(results)
}

/// Time added per op: ns below a microsecond, µs above.
fn added(ns: f64) -> String {
    if ns.abs() < 1000.0 {
        format!("{ns:.1} ns")
    } else {
        format!("{:.2} µs", ns / 1000.0)
    }
}

/// The overhead table: ns/op, slowdown to plain, and time added per probed op.
pub fn section(results: &[OverheadResult], cfg: &OverheadConfig) -> Section {
    let plain: Vec<f64> = match &results[0].samples {
        Ok(s) => s.iter().map(|v| Summary::of(v).median).collect(),
        Err(_) => vec![f64::NAN; 2],
    };
    let mut table = Table::new([
        "variant",
        "read ns/op",
        "slowdown",
        "added/op",
        "write ns/op",
        "slowdown",
        "added/op",
        "note",
    ]);
    let mut csv = vec![[
        "variant",
        "op",
        "median_ns_per_op",
        "min",
        "max",
        "slowdown",
        "rounds",
        "note",
    ]
    .map(String::from)
    .to_vec()];
    for r in results {
        let mut row = vec![r.variant.name().to_string()];
        match &r.samples {
            Ok(samples) => {
                for (i, op) in OPS.iter().enumerate() {
                    let s = Summary::of(&samples[i]);
                    let slowdown = s.median / plain[i];
                    let added = if r.variant == Variant::Plain {
                        "-".to_string()
                    } else {
                        added(s.median - plain[i])
                    };
                    row.extend([format!("{:.1}", s.median), format!("{slowdown:.2}x"), added]);
                    csv.push(vec![
                        r.variant.name().into(),
                        op.to_string(),
                        format!("{:.2}", s.median),
                        format!("{:.2}", s.min),
                        format!("{:.2}", s.max),
                        format!("{slowdown:.3}"),
                        samples[i].len().to_string(),
                        String::new(),
                    ]);
                }
                row.push(String::new());
            }
            Err(why) => {
                row.extend(std::iter::repeat_n("-".to_string(), 6));
                row.push(why.clone());
                for op in OPS {
                    csv.push(vec![
                        r.variant.name().into(),
                        op.into(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        "0".into(),
                        why.clone(),
                    ]);
                }
            }
        }
        table.push(row);
    }
    Section {
        title: format!(
            "mapwatch overhead on a map-heavy Go program (Go {GO_VERSION}, slowdown to plain)"
        ),
        intro: format!(
            "`testdata/go/mapbench` times its own loop of `map[int]int` reads or writes (ns/op), \
             so start-up and attach are not counted; median of {} interleaved rounds. Ops per \
             run: {} plain and -race; {} duty-cycled (10 % of each {DUTY_PERIOD_S} s period \
             watched, so a run spans several periods); {} under mapwatch; {} under bpftrace \
             (its entry probes are single-stepped). bpftrace's own count must reach the op \
             count. `added/op` is ns/op minus plain's.",
            cfg.rounds, cfg.ops.long, cfg.ops.duty_cycled, cfg.ops.mapwatch, cfg.ops.entry_probe
        ),
        table,
        csv_name: "overhead.csv",
        csv,
        plots: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mapbench_timing_among_other_output() {
        let out = "Attaching 12 probes...\nread ns/op 6667.5\n\n@ops: 101169\n";
        assert_eq!(ns_per_op("read", out).unwrap(), 6667.5);
        assert!(ns_per_op("write", out).is_err());
    }
}

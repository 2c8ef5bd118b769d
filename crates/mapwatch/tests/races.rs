//! The race corpus (`testdata/go/racecorpus`) against its ground truth. `go build -race` must
//! report exactly the racy cases, naming their marked lines; mapwatch, watching the plain build,
//! must report a race naming both marked lines for every racy case and nothing for the clean ones.
//! Every Go version mapwatch supports, 1.21 to 1.27; the cases of one version run two at a time
//! (each case is a process of its own, and its racing accesses are separated by a pause).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::gorace::{race_reports, RaceReport};
use common::racecorpus::{self, Case};
use mapwatch::{jsonl, Finding, FindingKind};

/// The issue asks for at least this many cases of each verdict.
const MIN_CASES_PER_VERDICT: usize = 17;

/// The plain and the `-race` build of the corpus.
struct Binaries {
    plain: PathBuf,
    race: PathBuf,
}

/// Builds the corpus both ways with Go `version` (once per test: cases run from one binary).
fn build_corpus(version: &str) -> Binaries {
    Binaries {
        plain: common::build(gobuild::Build::new(version, "racecorpus")),
        race: common::build(gobuild::Build::new(version, "racecorpus").race(true)),
    }
}

/// Cases of one binary run at once: the machine has two cores, and the tests' conflict cases
/// need neither (no racy case overlaps its accesses in time).
const WORKERS: usize = 2;

/// `f` over every item, on [`WORKERS`] threads; results in the items' order.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().unwrap()[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// Runs one case of a corpus binary.
fn run_case(binary: &Path, case: &Case) -> Output {
    Command::new(binary)
        .arg(&case.name)
        // A -race binary sleeps a second before exiting, for goroutines still running to report;
        // every case has joined or finished its goroutines by then.
        .env("GORACE", "atexit_sleep_ms=0")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
}

/// What is wrong with one case's `-race` run, if anything: a racy case needs a report whose two
/// accesses name its marked lines, and no report away from them (a race we did not mean); a clean
/// case needs no report at all.
fn race_build_verdict(case: &Case, out: &Output) -> Result<(), String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !String::from_utf8_lossy(&out.stdout).contains(&format!("{} done", case.name)) {
        return Err(format!("did not run to its end:\n{stderr}"));
    }
    let reports = race_reports(&stderr);
    if !case.racy {
        return match reports.len() {
            0 if out.status.success() => Ok(()),
            0 => Err(format!("exited with {}:\n{stderr}", out.status)),
            n => Err(format!("clean, but -race reported {n} race(s):\n{stderr}")),
        };
    }
    let names_marked = |r: &RaceReport| case.named_by(&r.current, &r.previous);
    let names_none = |r: &RaceReport| {
        !case
            .lines
            .iter()
            .any(|l| l.in_stack(&r.current) || l.in_stack(&r.previous))
    };
    if reports.is_empty() {
        Err(format!("racy, but -race reported nothing:\n{stderr}"))
    } else if !reports.iter().any(names_marked) {
        Err(format!(
            "no -race report has its two accesses at {}:\n{stderr}",
            lines(case)
        ))
    } else if let Some(stray) = reports.iter().find(|r| names_none(r)) {
        Err(format!(
            "a race away from the marked lines:\n{}",
            stray.text
        ))
    } else {
        Ok(())
    }
}

/// A case's marked lines, for messages.
fn lines(case: &Case) -> String {
    case.lines
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" and ")
}

#[test]
fn ground_truth_from_go_race() {
    let mut wrong = Vec::new();
    for version in gobuild::ALL_VERSIONS {
        let bins = build_corpus(version);
        let cases = racecorpus::cases(&bins.plain);
        let racy = cases.iter().filter(|c| c.racy).count();
        let clean = cases.len() - racy;
        assert!(
            racy >= MIN_CASES_PER_VERDICT && clean >= MIN_CASES_PER_VERDICT,
            "the corpus has {racy} racy and {clean} clean cases; at least {MIN_CASES_PER_VERDICT} of each"
        );
        let verdicts = in_parallel(&cases, |case| {
            let mut why = Vec::new();
            let plain = run_case(&bins.plain, case);
            if !plain.status.success() {
                why.push(format!(
                    "Go {version} {}: the plain build exited with {}:\n{}",
                    case.name,
                    plain.status,
                    String::from_utf8_lossy(&plain.stderr)
                ));
            }
            if let Err(e) = race_build_verdict(case, &run_case(&bins.race, case)) {
                why.push(format!("Go {version} {} (-race): {e}", case.name));
            }
            why
        });
        wrong.extend(verdicts.into_iter().flatten());
        eprintln!("Go {version}: checked {racy} racy and {clean} clean cases with -race");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// Cases mapwatch got right and wrong, for precision and recall.
#[derive(Default)]
struct Score {
    /// Racy cases with a race finding naming both marked lines.
    found: usize,
    /// Cases with a race finding that is not the expected one (clean cases, or wrong lines).
    false_alarms: usize,
    /// Racy cases.
    racy: usize,
}

impl Score {
    /// Found / (found + false alarms): "n/a" when nothing was reported at all.
    fn precision(&self) -> String {
        ratio(self.found, self.found + self.false_alarms)
    }

    /// Found / racy cases.
    fn recall(&self) -> String {
        ratio(self.found, self.racy)
    }

    fn add(&mut self, other: &Score) {
        self.found += other.found;
        self.false_alarms += other.false_alarms;
        self.racy += other.racy;
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "precision {}, recall {} ({} of {} racy cases found, {} false alarms)",
            self.precision(),
            self.recall(),
            self.found,
            self.racy,
            self.false_alarms
        )
    }
}

/// `part / whole` with two decimals, "n/a" when there is nothing to measure.
fn ratio(part: usize, whole: usize) -> String {
    if whole == 0 {
        "n/a".to_string()
    } else {
        format!("{:.2}", part as f64 / whole as f64)
    }
}

/// Runs one case under `mapwatch run --report` with `flags`; returns its race findings.
fn races_under_mapwatch(
    binary: &Path,
    case: &Case,
    flags: &[&str],
    report: &Path,
) -> Result<Vec<Finding>, String> {
    let out = common::mapwatch()
        .arg("run")
        .arg("--quiet")
        .arg("--report")
        .arg(report)
        .args(flags)
        .arg("--")
        .arg(binary)
        .arg(&case.name)
        .output()
        .expect("mapwatch runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "mapwatch run exited with {}:\n{stderr}",
            out.status
        ));
    }
    let findings = jsonl::read(report).map_err(|e| format!("{e:#}\n{stderr}"))?;
    Ok(findings
        .into_iter()
        .filter(|f| f.kind == FindingKind::Race)
        .collect())
}

/// mapwatch's race findings, one line each, for messages.
fn describe(races: &[Finding]) -> String {
    if races.is_empty() {
        return "  (none)".to_string();
    }
    races
        .iter()
        .map(|f| {
            format!(
                "  {} {:?} / {} {:?}",
                f.first.op, f.first.stack, f.second.op, f.second.stack
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Racy cases mapwatch is known to miss, with why. Each is a gap in the model, kept visible:
/// the test fails if one is found after all (then it leaves this list), and the README lists
/// them. Missing a race is the side the detector leans to; a false alarm is never allowed.
const KNOWN_MISSES: &[(&str, &str)] = &[];

#[test]
fn corpus_under_mapwatch() {
    let dir = common::scratch("races");
    let mut wrong = Vec::new();
    let mut total = Score::default();
    for version in gobuild::ALL_VERSIONS {
        let binary = common::go_binary(version, "racecorpus");
        let mut score = Score::default();
        let cases = racecorpus::cases(&binary);
        let outcomes = in_parallel(&cases, |case| {
            let report = dir.join(format!("{version}-{}.jsonl", case.name));
            races_under_mapwatch(&binary, case, &[], &report)
        });
        for (case, outcome) in cases.into_iter().zip(outcomes) {
            score.racy += usize::from(case.racy);
            let races = match outcome {
                Ok(races) => races,
                Err(why) => {
                    wrong.push(format!("Go {version} {}: {why}", case.name));
                    continue;
                }
            };
            let expected = case.racy
                && races
                    .iter()
                    .any(|f| case.named_by(&f.first.stack, &f.second.stack));
            if expected {
                score.found += 1;
            } else if !races.is_empty() {
                score.false_alarms += 1;
            }
            let known_miss = KNOWN_MISSES.iter().any(|(name, _)| *name == case.name);
            if known_miss && expected {
                wrong.push(format!(
                    "Go {version} {}: listed in KNOWN_MISSES but found now: take it off the list",
                    case.name
                ));
            } else if known_miss {
                println!("Go {version} {}: known miss", case.name);
            } else if case.racy && !expected {
                wrong.push(format!(
                    "Go {version} {}: no race naming {}; races found:\n{}",
                    case.name,
                    lines(&case),
                    describe(&races)
                ));
            } else if !case.racy && !races.is_empty() {
                wrong.push(format!(
                    "Go {version} {}: clean, but mapwatch found:\n{}",
                    case.name,
                    describe(&races)
                ));
            }
        }
        println!("Go {version}: {score}");
        total.add(&score);
    }
    println!("all versions: {total}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// The corpus on one Go version in the other modes. With `--all-maps` (every map function
/// probed in the runtime) every racy case is found and no clean one raises a race. Sampled
/// by a duty cycle that switches the probes as fast as they go, or by an overhead budget, no
/// clean case raises a race either: each pause is a barrier (recall is printed; a race across
/// a pause is missed by design).
#[test]
fn corpus_in_the_other_modes() {
    let dir = common::scratch("races-modes");
    let version = gobuild::TEST_VERSIONS[1];
    let binary = common::go_binary(version, "racecorpus");
    let cases = racecorpus::cases(&binary);
    let mut wrong = Vec::new();
    for (flags, all_found) in [
        (&["--all-maps"][..], true),
        (&["--duty-cycle", "50", "--duty-period", "0.05"][..], false),
        (&["--overhead-budget", "2"][..], false),
    ] {
        let outcomes = in_parallel(&cases, |case| {
            let report = dir.join(format!("{}-{}.jsonl", flags[0], case.name));
            races_under_mapwatch(&binary, case, flags, &report)
        });
        let mut score = Score::default();
        for (case, outcome) in cases.iter().zip(outcomes) {
            score.racy += usize::from(case.racy);
            let races = match outcome {
                Ok(races) => races,
                Err(why) => {
                    wrong.push(format!("{flags:?} {}: {why}", case.name));
                    continue;
                }
            };
            let found = case.racy
                && races
                    .iter()
                    .any(|f| case.named_by(&f.first.stack, &f.second.stack));
            if found {
                score.found += 1;
            } else if !races.is_empty() {
                score.false_alarms += 1;
                wrong.push(format!(
                    "{flags:?} {}: a race no -race run reports:\n{}",
                    case.name,
                    describe(&races)
                ));
            } else if case.racy && all_found {
                wrong.push(format!("{flags:?} {}: missed", case.name));
            }
        }
        println!("Go {version} {flags:?}: {score}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// mapwatch's race findings on one corpus case, run with extra `flags`.
fn races_with(binary: &Path, case: &str, flags: &[&str], report: &Path) -> Vec<Finding> {
    let out = common::mapwatch()
        .args(["run", "--quiet", "--report"])
        .arg(report)
        .args(flags)
        .arg("--")
        .arg(binary)
        .arg(case)
        .output()
        .expect("mapwatch runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    jsonl::read(report)
        .unwrap()
        .into_iter()
        .filter(|f| f.kind == FindingKind::Race)
        .collect()
}

#[test]
fn map_site_restricts_race_watching_and_the_report_says_so() {
    let dir = common::scratch("map-site");
    let binary = common::go_binary(gobuild::TEST_VERSIONS[1], "racecorpus");
    let report = dir.join("report.jsonl");
    let case = "spawn_child_writes";
    let all = races_with(&binary, case, &[], &report);
    let site = all
        .first()
        .and_then(|f| f.map_site.clone())
        .unwrap_or_else(|| panic!("{case}: no race with a map site: {all:?}"));
    // "main.spawnChildWrites /.../channels.go:22" -> "channels.go:22"
    let file_line = site.rsplit('/').next().unwrap().to_string();

    let chosen = races_with(&binary, case, &["--map-site", &file_line], &report);
    assert!(!chosen.is_empty(), "--map-site {file_line} hid the race");
    assert!(
        chosen[0]
            .notes
            .iter()
            .any(|n| n.contains("sampled") && n.contains(&file_line)),
        "the finding does not say what was sampled: {:?}",
        chosen[0].notes
    );
    let elsewhere = races_with(&binary, case, &["--map-site", "elsewhere.go:1"], &report);
    assert!(
        elsewhere.is_empty(),
        "a map made elsewhere was watched: {elsewhere:?}"
    );

    let bad = common::run_mapwatch(&["run", "--map-site", "nocolon", "--", "/bin/true"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected FILE:LINE"));
}

/// A race's sides show the whole stack above the accessing line (sent by the BPF side the
/// first time a call site is seen): the main goroutine's side of `mutex_unguarded_reader` goes
/// up through the case's function and `main.main` to `runtime.main`, on every version.
#[test]
fn race_stacks_reach_main() {
    let dir = common::scratch("race-stacks");
    for version in gobuild::ALL_VERSIONS {
        let binary = common::go_binary(version, "racecorpus");
        let report = dir.join(format!("{version}.jsonl"));
        let races = races_with(&binary, "mutex_unguarded_reader", &[], &report);
        let functions = |stack: &[String]| -> Vec<String> {
            stack
                .iter()
                .map(|f| f.split(' ').next().unwrap_or_default().to_string())
                .collect()
        };
        let reaches_main = races.iter().any(|f| {
            [&f.first, &f.second].iter().any(|side| {
                let names = functions(&side.stack);
                names
                    .first()
                    .is_some_and(|n| n == "main.mutexUnguardedReader")
                    && names.iter().any(|n| n == "main.main")
                    && names.iter().any(|n| n == "runtime.main")
            })
        });
        assert!(
            reaches_main,
            "Go {version}: no side up to runtime.main:\n{}",
            describe(&races)
        );
    }
}

#[test]
fn duty_cycle_watches_map_accesses_part_of_the_time() {
    let binary = common::go_binary(gobuild::TEST_VERSIONS[1], "longrun");
    let ops = |flags: &[&str]| {
        let mut args = vec!["run", "--quiet"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", binary.to_str().unwrap(), "30", "100"]);
        let out = common::run_mapwatch(&args);
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (common::ops_in_summary(&stderr), stderr)
    };
    let (full, _) = ops(&[]);
    let (sampled, stderr) = ops(&["--duty-cycle", "20", "--duty-period", "1"]);
    assert!(
        sampled > 0 && (sampled as f64) < 0.6 * full as f64,
        "duty cycle 20%: {sampled} map ops, {full} unsampled"
    );
    assert!(stderr.contains("(--duty-cycle 20)"), "{stderr}");
}

/// The probes attach to `/proc/PID/exe`, which goes with the process: a target that exits
/// while a duty cycle switches its map-access probes back on must end the watch as any exit
/// does (summary, the target's status), not as an attach error that loses the watch's results.
/// `exitonprobe` exits the moment it sees the first of them back in its code, while mapwatch
/// is still attaching the others.
#[test]
fn a_target_exiting_while_duty_cycled_probes_attach_ends_the_watch_cleanly() {
    let binary = common::go_binary(gobuild::TEST_VERSIONS[1], "exitonprobe");
    let out = common::run_mapwatch(&[
        "run",
        "--quiet",
        "--duty-cycle",
        "50",
        "--duty-period",
        "0.2",
        "--",
        binary.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("probes coming back: exiting"), "{stdout}");
    assert!(common::ops_in_summary(&stderr) > 0, "{stderr}");
    assert!(stderr.contains("target exited with status 0"), "{stderr}");
}

//! The HTML report as a person sees it: a real report of a real conflict (the racy Go program
//! under `mapwatch run`), rendered by headless Debian chromium to a DOM and a screenshot.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{findings, go_binary, run_mapwatch, scratch};
use gobuild::TEST_VERSIONS;
use mapwatch::Finding;

/// How long chromium gets to load and render a local page.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(90);

/// Runs the racy program under mapwatch until a run crashes on a conflict; returns the
/// JSON-lines report and the `--html` page of that run.
fn watched_conflict(dir: &Path) -> (PathBuf, PathBuf, Vec<Finding>) {
    let bin = go_binary(TEST_VERSIONS[1], "conflict");
    let (report, page) = (dir.join("findings.jsonl"), dir.join("run.html"));
    for attempt in 1..=3 {
        let out = run_mapwatch(&[
            "run",
            "--quiet",
            "--report",
            report.to_str().unwrap(),
            "--html",
            page.to_str().unwrap(),
            "--",
            bin.to_str().unwrap(),
            "read-write",
        ]);
        let found = findings(&report);
        if !found.is_empty() {
            assert!(String::from_utf8_lossy(&out.stderr).contains("HTML report in"));
            return (report, page, found);
        }
        eprintln!("attempt {attempt}: no conflict this time");
    }
    panic!("the racy program produced no finding in 3 runs");
}

/// What headless chromium made of a page: its DOM after load, and a screenshot.
struct Rendered {
    dom: String,
    png: PathBuf,
}

fn chromium(page: &Path, dir: &Path) -> Rendered {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let run = |name: &str, extra: &[String]| {
        let profile = tempdir(dir, &format!("profile-{name}"));
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1200",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&url)
        .stdin(Stdio::null());
        let out = output_within(cmd, CHROMIUM_LIMIT);
        let _ = std::fs::remove_dir_all(&profile);
        out
    };
    let png = dir.join(format!(
        "{}.png",
        page.file_stem().unwrap().to_string_lossy()
    ));
    let dom = run("dom", &["--dump-dom".to_string()]);
    run("shot", &[format!("--screenshot={}", png.to_str().unwrap())]);
    Rendered { dom, png }
}

/// A fresh, empty directory.
fn tempdir(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `cmd`, killing it past `limit`; returns its stdout, panicking with stderr on failure.
fn output_within(mut cmd: Command, limit: Duration) -> String {
    let stdout = tempfile_path("stdout");
    let stderr = tempfile_path("stderr");
    cmd.stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut child = cmd
        .spawn()
        .expect("chromium runs (scripts/setup.sh --tests installs it)");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium took over {limit:?}:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(&stdout).unwrap();
    assert!(
        status.success(),
        "chromium failed ({status}):\n{}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    out
}

fn tempfile_path(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "mapwatch-chromium-{}-{what}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ))
}

/// Text as it appears in serialized HTML.
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The DOM holds every frame of both stacks of every finding, and both heatmaps with cells.
fn assert_findings_and_heatmaps(dom: &str, found: &[Finding]) {
    for f in found {
        for side in [&f.first, &f.second] {
            assert!(!side.stack.is_empty());
            for frame in &side.stack {
                assert!(
                    dom.contains(&escaped(frame)),
                    "frame {frame:?} missing from the page"
                );
            }
            // The user's own line of code is shown, not only its location.
            assert!(dom.contains("class=\"src\""));
        }
        assert!(dom.contains(&f.map));
    }
    assert_eq!(
        dom.matches("class=\"finding kind-").count(),
        found.len(),
        "one section per finding"
    );
    for id in ["heatmap-site-goroutine", "heatmap-depth-frequency"] {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id} in the DOM"));
        let svg = &dom[at..at + dom[at..].find("</svg>").expect("the svg closes")];
        let hot = svg.matches("data-count=\"").count() - svg.matches("data-count=\"0\"").count();
        assert!(hot > 0, "{id} has no non-empty cell:\n{svg}");
    }
    // Both goroutines of the first finding label a heatmap column.
    let (a, b) = (found[0].first.goid, found[0].second.goid);
    assert!(dom.contains(&format!(">{a}</text>")) && dom.contains(&format!(">{b}</text>")));
}

/// A real image: the expected size, and not one flat colour.
fn assert_real_screenshot(png_path: &Path) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).expect("a screenshot was written"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    assert_eq!((info.width, info.height), (1280, 1200));
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let background = pixels[0];
    let drawn = pixels.iter().filter(|p| **p != background).count();
    let distinct: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    assert!(
        drawn * 100 > pixels.len(),
        "only {drawn} of {} pixels differ from the background",
        pixels.len()
    );
    assert!(
        distinct.len() > 16,
        "{} colours: text and heatmap missing",
        distinct.len()
    );
}

/// Nothing on the page can reach the network or run code.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for forbidden in [
        "<script", "<link", "<img", "<iframe", "http://", "https://", "src=",
    ] {
        assert!(!lower.contains(forbidden), "the page has {forbidden}");
    }
    assert!(lower.contains("content-security-policy"));
}

#[test]
fn html_report_of_a_real_conflict_renders_in_chromium() {
    let dir = scratch("html");
    let (report, run_page, found) = watched_conflict(&dir);

    // --html: written at the end of the watch, with the ops-per-second series.
    let html = std::fs::read_to_string(&run_page).unwrap();
    assert_self_contained(&html);
    let rendered = chromium(&run_page, &dir);
    assert_findings_and_heatmaps(&rendered.dom, &found);
    assert!(rendered.dom.contains("id=\"ops-over-time\""));
    assert!(rendered.dom.contains("<polyline"));
    assert_real_screenshot(&rendered.png);

    // `mapwatch report`: the same findings from the JSON lines; no ops without an audit log.
    let page = dir.join("report.html");
    let out = run_mapwatch(&[
        "report",
        report.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let html = std::fs::read_to_string(&page).unwrap();
    assert_self_contained(&html);
    let rendered = chromium(&page, &dir);
    assert_findings_and_heatmaps(&rendered.dom, &found);
    assert!(rendered.dom.contains("id=\"ops-unavailable\""));
    assert_real_screenshot(&rendered.png);
}

#[test]
fn report_refuses_bad_input_clearly() {
    let dir = scratch("html-bad");
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"kind\":\"conflict\"}\n").unwrap();
    let out = run_mapwatch(&[
        "report",
        bad.to_str().unwrap(),
        "-o",
        dir.join("x.html").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.jsonl:1: not a finding"), "{stderr}");
    let out = run_mapwatch(&["report", "/nonexistent.jsonl", "-o", "/tmp/x.html"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the report"));
}

/// Ops over time are binned by the events' own times: longrun works in one burst a second,
/// so the page shows a burst in each of its first seconds, and every operation once.
#[test]
fn ops_per_second_follow_the_targets_rhythm() {
    let dir = scratch("html-ops");
    let bin = go_binary(TEST_VERSIONS[1], "longrun");
    let page = dir.join("ops.html");
    let out = run_mapwatch(&[
        "run",
        "--quiet",
        "--html",
        page.to_str().unwrap(),
        "--",
        bin.to_str().unwrap(),
        "4",
        "1000",
    ]);
    assert!(out.status.success());
    let counted = common::ops_in_summary(&String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    // Each marker's tooltip: "SITE: N ops in second S".
    let mut per_second = std::collections::BTreeMap::<u64, u64>::new();
    for (at, _) in html.match_indices(" ops in second ") {
        let n: u64 = html[..at].rsplit(' ').next().unwrap().parse().unwrap();
        let s: u64 = html[at + " ops in second ".len()..]
            .split('<')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        *per_second.entry(s).or_default() += n;
    }
    assert_eq!(per_second.values().sum::<u64>(), counted, "{per_second:?}");
    // A round is ~47k map operations; 4 rounds 1.1 s apart.
    let bursts: Vec<u64> = per_second
        .iter()
        .filter(|(_, &n)| n > 40_000)
        .map(|(&s, _)| s)
        .collect();
    assert!(bursts.len() >= 3, "{per_second:?}");
    assert_eq!(
        bursts[0], 0,
        "the first round is in the first second: {per_second:?}"
    );
    assert!(*per_second.keys().last().unwrap() <= 5, "{per_second:?}");
}

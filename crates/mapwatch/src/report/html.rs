//! The HTML report (`mapwatch report`, `--html`): one self-contained page, inline CSS and SVG,
//! no scripts and no fetches (its Content-Security-Policy forbids both), holding every finding
//! with both stacks and their source lines, the two heatmaps, and map operations over time.
//!
//! Everything taken from a report is a user string (function names, paths, map types): the page
//! is built with maud, which escapes every interpolated value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::heatmap::{self, Heatmap};
use super::{Finding, FindingKind};
use crate::opcount::OpSeries;

/// Where the "ops per map over time" section comes from.
pub enum OpsOverTime<'a> {
    /// Per-second counts by map site.
    Series(&'a OpSeries),
    /// Not available, and why (shown on the page).
    Unavailable(&'a str),
}

/// What one page shows.
pub struct Page<'a> {
    /// The heading, e.g. what was watched.
    pub title: &'a str,
    /// The findings, in the order found.
    pub findings: &'a [Finding],
    /// Map operations over time.
    pub ops: OpsOverTime<'a>,
}

/// The page forbids every fetch and every script; inline styles are all it uses.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const CSS: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.summary { color: #444; }
.figure { display: inline-block; vertical-align: top; margin: 0 24px 16px 0; }
.figure h3 { font-size: 14px; margin: 0 0 6px; }
svg text { font: 11px ui-monospace, monospace; fill: #333; }
svg .cell-count { fill: #000; font-size: 10px; }
svg .cell-count.dark { fill: #fff; }
.finding { border: 1px solid #ddd; border-radius: 6px; margin: 12px 0; padding: 10px 14px; }
.finding h3 { font-size: 15px; margin: 0 0 6px; }
.kind-conflict h3 .kind { color: #b3261e; }
.kind-race h3 .kind { color: #8a4b00; }
.meta { color: #555; margin-bottom: 8px; }
.sides { display: flex; gap: 16px; flex-wrap: wrap; }
.access { flex: 1 1 460px; min-width: 0; }
.access h4 { margin: 4px 0; font-size: 13px; }
ol.stack { margin: 0; padding-left: 28px; font: 12px/1.5 ui-monospace, monospace; }
ol.stack li { overflow-wrap: anywhere; }
ol.stack li.runtime { color: #888; }
.src { display: block; color: #0b5394; white-space: pre-wrap; }
.axes { color: #555; font-size: 12px; margin: 2px 0 0; max-width: 520px; }
.legend span.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: middle; }
.legend td { padding: 1px 6px; }
.legend td.num { text-align: right; color: #555; }
.unavailable { color: #777; font-style: italic; }
ul.notes { color: #6b4e00; margin: 0 0 8px; padding-left: 20px; font-size: 13px; }
"#;

/// Renders the page.
pub fn render(page: &Page) -> String {
    let mut sources = SourceLines::default();
    let conflicts = page
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Conflict)
        .count();
    let races = page.findings.len() - conflicts;
    let occurrences: u64 = page.findings.iter().map(|f| f.count).sum();
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(CSP);
                title { "mapwatch: " (page.title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "mapwatch report" }
                p.summary {
                    (page.title) br;
                    (page.findings.len()) " distinct findings (" (conflicts) " conflicts, "
                    (races) " races), " (occurrences) " occurrences"
                }
                h2 { "Heatmaps" }
                @if page.findings.is_empty() {
                    p.unavailable { "No findings: nothing to map." }
                } @else {
                    (heatmap_figure("heatmap-site-goroutine", "Occurrences by call site and goroutine",
                        &heatmap::by_site_and_goroutine(page.findings)))
                    (heatmap_figure("heatmap-depth-frequency", "Finding sides by call-chain depth and frequency",
                        &heatmap::by_depth_and_frequency(page.findings)))
                }
                h2 { "Map operations per second, by the map's allocation site" }
                @match &page.ops {
                    OpsOverTime::Series(series) if !series.is_empty() => { (ops_chart(series)) }
                    OpsOverTime::Series(_) => { p.unavailable { "No map operations were counted." } }
                    OpsOverTime::Unavailable(why) => { p.unavailable id="ops-unavailable" { (why) } }
                }
                h2 { "Findings" }
                @for (i, f) in page.findings.iter().enumerate() {
                    (finding_section(i + 1, f, &mut sources))
                }
            }
        }
    };
    markup.into_string()
}

/// Renders the page into `path` (replaced atomically).
pub fn write(path: &Path, page: &Page) -> Result<()> {
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, render(page))
        .with_context(|| format!("cannot write the HTML report {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot write the HTML report {}", path.display()))
}

/// `mapwatch report`: the page for a JSON-lines report, with operations over time from an
/// audit log (those of the report's processes, when the log has any).
pub fn write_from_report(findings: &Path, audit: Option<&Path>, output: &Path) -> Result<()> {
    let list = super::jsonl::read(findings)?;
    let title = format!("report {}", findings.display());
    let series = match audit {
        Some(dir) => {
            let records = crate::export::audit::read_all(dir)?;
            let mut pids: Vec<u32> = list.iter().map(|f| f.pid).collect();
            if !records
                .iter()
                .any(|r| r.op.is_some() && pids.contains(&r.pid))
            {
                pids.clear();
            }
            Some(crate::export::audit::op_series(&records, &pids))
        }
        None => None,
    };
    let ops = match &series {
        Some(s) if s.is_empty() => OpsOverTime::Unavailable(
            "The audit log holds no map operations: record it with --audit-ops.",
        ),
        Some(s) => OpsOverTime::Series(s),
        None => OpsOverTime::Unavailable(
            "Map operations over time are not in a findings report: pass --audit DIR (an audit log recorded with --audit-ops), or use --html on run/attach.",
        ),
    };
    write(
        output,
        &Page {
            title: &title,
            findings: &list,
            ops,
        },
    )
}

fn finding_section(number: usize, f: &Finding, sources: &mut SourceLines) -> Markup {
    let kind = f.kind.as_str();
    html! {
        section class={ "finding kind-" (kind) } id={ "finding-" (number) } {
            h3 {
                (number) ". " span.kind { (kind.to_ascii_uppercase()) } " on map " code { (f.map) }
                " (" (f.map_type.as_deref().unwrap_or("map of unknown type")) ")"
            }
            div.meta {
                @if let Some(site) = &f.map_site { "made at " code { (site) } " · " }
                "seen " (f.count) (if f.count == 1 { " time" } else { " times" })
                " · detected by " (f.detected_by) " · pid " (f.pid) " · " (f.go_version)
            }
            @if !f.notes.is_empty() {
                ul.notes {
                    @for note in &f.notes { li { (note) } }
                }
            }
            div.sides {
                @for (label, side) in [("first", &f.first), ("second", &f.second)] {
                    div class={ "access " (label) } {
                        h4 {
                            (label) ": goroutine " (side.goid) " " (side.op)
                            @if label == "first" && f.kind == FindingKind::Conflict { " (in progress)" }
                        }
                        ol.stack {
                            @for frame in &side.stack {
                                li class=[is_runtime(frame).then_some("runtime")] {
                                    (frame)
                                    @if let Some(text) = sources.line_of(frame) {
                                        span.src { (text) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn is_runtime(frame: &str) -> bool {
    frame.starts_with("runtime.") || frame.starts_with("internal/runtime/")
}

/// Layout of a heatmap, in SVG user units.
const CELL: f64 = 30.0;
const CHAR_WIDTH: f64 = 6.8;
const LABEL_CHARS: usize = 56;

fn heatmap_figure(id: &str, caption: &str, map: &Heatmap) -> Markup {
    let row_labels: Vec<String> = map
        .rows
        .iter()
        .map(|r| shorten(&short_frame(r), LABEL_CHARS))
        .collect();
    let column_chars = map.columns.iter().map(|c| c.len()).max().unwrap_or(1);
    let left = row_labels.iter().map(|r| r.len()).max().unwrap_or(1) as f64 * CHAR_WIDTH + 12.0;
    let top = 8.0;
    let grid_w = map.columns.len() as f64 * CELL;
    let grid_h = map.rows.len() as f64 * CELL;
    // Column labels run down at 60 degrees below the grid.
    let below = column_chars as f64 * CHAR_WIDTH * 0.87 + 16.0;
    let width = left + grid_w + 20.0;
    let height = top + grid_h + below;
    let max = map.max();
    html! {
        div.figure {
            h3 { (caption) }
            svg.heatmap id=(id) width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) }
                role="img" aria-label=(caption) {
                @for (r, label) in row_labels.iter().enumerate() {
                    text x=(left - 6.0) y=(top + (r as f64 + 0.5) * CELL + 4.0) text-anchor="end" {
                        title { (map.rows[r]) }
                        (label)
                    }
                }
                @for (r, row) in map.cells.iter().enumerate() {
                    @for (c, &n) in row.iter().enumerate() {
                        @let x = left + c as f64 * CELL;
                        @let y = top + r as f64 * CELL;
                        rect.cell x=(x) y=(y) width=(CELL - 1.0) height=(CELL - 1.0)
                            fill=(heat_colour(n, max)) data-count=(n) {
                            title {
                                (map.row_axis) " " (map.rows[r]) ", " (map.column_axis) " "
                                (map.columns[c]) ": " (n) " " (map.unit)
                            }
                        }
                        @if n > 0 {
                            text.cell-count.dark[is_dark(n, max)]
                                x=(x + CELL / 2.0 - 0.5) y=(y + CELL / 2.0 + 3.5) text-anchor="middle" {
                                (compact(n))
                            }
                        }
                    }
                }
                @for (c, label) in map.columns.iter().enumerate() {
                    @let x = left + (c as f64 + 0.5) * CELL;
                    @let y = top + grid_h + 8.0;
                    text x=(x) y=(y) text-anchor="start"
                        transform={ "rotate(60 " (x) " " (y) ")" } { (label) }
                }
            }
            p.axes {
                "rows: " (map.row_axis) "; columns: " (map.column_axis) "; cells: " (map.unit)
                " (darkest: " (max) ")"
            }
        }
    }
}

/// Light to dark red on a log scale: a hot spot stands out without flattening the rest.
fn heat_colour(n: u64, max: u64) -> String {
    if n == 0 || max == 0 {
        return "#f2f2f2".to_string();
    }
    let t = ((n as f64).ln_1p() / (max as f64).ln_1p()).clamp(0.0, 1.0);
    let (from, to) = ([254.0, 224.0, 210.0], [127.0, 0.0, 0.0]);
    let c: Vec<u8> = from
        .iter()
        .zip(to)
        .map(|(a, b)| (a + (b - a) * t).round() as u8)
        .collect();
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

fn is_dark(n: u64, max: u64) -> bool {
    max > 0 && (n as f64).ln_1p() / (max as f64).ln_1p() > 0.55
}

/// A count that fits in a cell: 999, 1.2k, 34k, 5.6M.
fn compact(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=9_999 => format!("{:.1}k", n as f64 / 1e3),
        10_000..=999_999 => format!("{}k", n / 1_000),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Keeps the end of a long label (the file and line matter most), marking the cut.
fn shorten(s: &str, max_chars: usize) -> String {
    let chars = s.chars().count();
    if chars <= max_chars {
        return s.to_string();
    }
    let tail: String = s.chars().skip(chars - (max_chars - 1)).collect();
    format!("…{tail}")
}

const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Up to this many seconds on the chart, each point is marked.
const MARKED_SECONDS: u64 = 120;
/// Map sites drawn on the ops chart; the rest are summed into one line.
const MAX_LINES: usize = 8;

fn ops_chart(all: &OpSeries) -> Markup {
    let series = all.top(MAX_LINES);
    let (width, height) = (900.0, 300.0);
    let (left, right, top, bottom) = (70.0, 16.0, 12.0, 36.0);
    let first = series
        .sites()
        .filter_map(|(_, p)| p.keys().next().copied())
        .min()
        .unwrap_or(0);
    let last = series.last_second().max(first + 1);
    let peak = series
        .sites()
        .flat_map(|(_, p)| p.values().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    let x_of = |s: u64| left + (s - first) as f64 / (last - first) as f64 * (width - left - right);
    let y_of = |n: u64| top + (1.0 - n as f64 / peak as f64) * (height - top - bottom);
    let mut y_ticks: Vec<u64> = (0..=4).map(|i| peak * i / 4).collect();
    y_ticks.dedup();
    let mut x_ticks: Vec<u64> = (0..=6).map(|i| first + (last - first) * i / 6).collect();
    x_ticks.dedup();
    let lines: Vec<Line> = series
        .sites()
        .enumerate()
        .map(|(i, (site, points))| Line {
            site,
            colour: PALETTE[i % PALETTE.len()],
            // Seconds without a point had no operations.
            points: (first..=last)
                .map(|s| {
                    let n = points.get(&s).copied().unwrap_or(0);
                    format!("{:.1},{:.1}", x_of(s), y_of(n))
                })
                .collect::<Vec<_>>()
                .join(" "),
            markers: points
                .iter()
                .map(|(&s, &n)| (x_of(s), y_of(n), s, n))
                .collect(),
            total: points.values().sum(),
        })
        .collect();
    html! {
        div.figure {
            svg id="ops-over-time" width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) }
                role="img" aria-label="map operations per second by allocation site" {
                @for &t in &y_ticks {
                    line x1=(left) x2=(width - right) y1=(y_of(t)) y2=(y_of(t)) stroke="#e5e5e5" {}
                    text x=(left - 6.0) y=(y_of(t) + 4.0) text-anchor="end" { (compact(t)) }
                }
                @for &s in &x_ticks {
                    text x=(x_of(s)) y=(height - bottom + 16.0) text-anchor="middle" { (s) "s" }
                }
                line x1=(left) x2=(left) y1=(top) y2=(height - bottom) stroke="#999" {}
                line x1=(left) x2=(width - right) y1=(height - bottom) y2=(height - bottom) stroke="#999" {}
                @for l in &lines {
                    polyline.series points=(l.points) fill="none" stroke=(l.colour) stroke-width="1.5" {
                        title { (l.site) }
                    }
                    // Short watches have few points: mark them, so a line between two seconds
                    // is not read as a trend.
                    @if last - first <= MARKED_SECONDS {
                        @for &(x, y, s, n) in &l.markers {
                            circle cx=(x) cy=(y) r="3" fill=(l.colour) {
                                title { (l.site) ": " (n) " ops in second " (s) }
                            }
                        }
                    }
                }
                text x=(left + (width - left - right) / 2.0) y=(height - 4.0) text-anchor="middle" {
                    "seconds since the watch began (ops/s on the left)"
                }
            }
            table.legend {
                @for l in &lines {
                    tr {
                        td { span.swatch style={ "background:" (l.colour) } {} }
                        td title=(l.site) { code { (short_frame(l.site)) } }
                        td.num { (l.total) " ops" }
                    }
                }
            }
        }
    }
}

/// One map site's line on the ops chart.
struct Line<'a> {
    site: &'a str,
    colour: &'a str,
    /// SVG polyline points.
    points: String,
    /// (x, y, second, ops) of each second with operations.
    markers: Vec<(f64, f64, u64, u64)>,
    total: u64,
}

/// `function dir/file.go:LINE` as `function file.go:LINE`: the directory is in the tooltip.
fn short_frame(frame: &str) -> String {
    match frame.rsplit_once(' ') {
        Some((function, location)) => {
            let file = location.rsplit('/').next().unwrap_or(location);
            format!("{function} {file}")
        }
        None => frame.to_string(),
    }
}

/// Source text of `function file:line` frames, read once per file; only `.go` files are
/// read, so a report naming other files cannot pull them into the page.
#[derive(Default)]
struct SourceLines {
    files: HashMap<PathBuf, Option<Vec<String>>>,
}

impl SourceLines {
    fn line_of(&mut self, frame: &str) -> Option<String> {
        let (_, location) = frame.rsplit_once(' ')?;
        let (file, line) = location.rsplit_once(':')?;
        let line: usize = line.parse().ok()?;
        if !file.ends_with(".go") || line == 0 {
            return None;
        }
        let lines = self
            .files
            .entry(PathBuf::from(file))
            .or_insert_with(|| {
                std::fs::read_to_string(file)
                    .ok()
                    .map(|t| t.lines().map(str::to_string).collect())
            })
            .as_ref()?;
        let text = lines.get(line - 1)?.trim();
        (!text.is_empty()).then(|| format!("{line:>5} | {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Access;

    fn finding(frame: &str) -> Finding {
        let access = |goid| Access {
            op: "write".into(),
            goid,
            stack: vec![
                "runtime.mapassign_fast64 map.go:1".into(),
                frame.to_string(),
            ],
            tid: 1,
            ts_ns: 0,
        };
        Finding {
            kind: FindingKind::Conflict,
            map: "0xc000010000".into(),
            map_type: Some("map[string]<script>".into()),
            map_site: Some("main.init main.go:3".into()),
            first: access(1),
            second: access(2),
            detected_by: "mapwatch".into(),
            count: 2,
            pid: 1,
            go_version: "go1.25.5".into(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn user_strings_are_escaped() {
        let findings = [finding("main.<img src=x onerror=alert(1)> \"q\".go:3")];
        let page = render(&Page {
            title: "pid 1 <b>",
            findings: &findings,
            ops: OpsOverTime::Unavailable("no <audit>"),
        });
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<b>"));
        assert!(page.contains("map[string]&lt;script&gt;"));
        assert!(page.contains("no &lt;audit&gt;"));
    }

    #[test]
    fn source_lines_come_from_go_files_only() {
        let dir = std::env::temp_dir().join(format!("mapwatch-html-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let go = dir.join("main.go");
        std::fs::write(&go, "package main\n\n\tshared[k] = v\n").unwrap();
        let other = dir.join("secret.txt");
        std::fs::write(&other, "password\n").unwrap();
        let mut s = SourceLines::default();
        assert_eq!(
            s.line_of(&format!("main.f {}:3", go.display())).as_deref(),
            Some("    3 | shared[k] = v")
        );
        assert_eq!(s.line_of(&format!("main.f {}:9", go.display())), None);
        assert_eq!(s.line_of(&format!("main.f {}:1", other.display())), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ops_chart_draws_one_line_per_site() {
        let mut series = OpSeries::default();
        series.add(0, "main.a a.go:1", 10);
        series.add(2, "main.a a.go:1", 30);
        series.add(1, "main.b b.go:2", 5);
        let page = render(&Page {
            title: "t",
            findings: &[],
            ops: OpsOverTime::Series(&series),
        });
        assert_eq!(page.matches("<polyline").count(), 2);
        assert!(page.contains("id=\"ops-over-time\""));
        // A service's dozens of library map sites: the largest get a line, the rest one more.
        for i in 0..20 {
            series.add(0, &format!("pkg.init{i} /go/src/pkg/x.go:{i}"), 1);
        }
        let page = render(&Page {
            title: "t",
            findings: &[],
            ops: OpsOverTime::Series(&series),
        });
        assert_eq!(page.matches("<polyline").count(), MAX_LINES + 1);
        assert!(page.contains("other (14 sites)"));
        assert!(page.contains("main.a a.go:1"));
    }

    #[test]
    fn heat_colours_run_light_to_dark() {
        assert_eq!(heat_colour(0, 10), "#f2f2f2");
        assert_eq!(heat_colour(10, 10), "#7f0000");
        assert_ne!(heat_colour(1, 10), heat_colour(5, 10));
        assert_eq!(compact(12_345), "12k");
        assert_eq!(shorten("abcdef", 4), "…def");
        assert_eq!(
            short_frame("main.(*Store).Set /src/orders/main.go:39"),
            "main.(*Store).Set main.go:39"
        );
        assert_eq!(short_frame("unknown"), "unknown");
    }
}

//! The HTML report (`mapwatch report`, `--html`): one self-contained page, inline CSS and SVG,
//! no scripts and no fetches (its Content-Security-Policy forbids both), holding every finding
//! with both stacks and their source lines, the two heatmaps, and map operations over time.
//!
//! Everything taken from a report is a user string (function names, paths, map types): the page
//! is built with maud, which escapes every interpolated value.

mod source;
mod svg;

use std::path::Path;

use anyhow::{Context, Result};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::heatmap;
use super::{Finding, FindingKind};
use crate::opcount::OpSeries;
use source::SourceLines;
use svg::{heatmap_figure, ops_chart};

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
        assert_eq!(page.matches("<polyline").count(), svg::MAX_LINES + 1);
        assert!(page.contains("other (14 sites)"));
        assert!(page.contains("main.a a.go:1"));
    }
}

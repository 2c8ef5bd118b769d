//! The page's pictures, drawn as inline SVG: heatmaps and the ops-per-second chart.

use maud::{html, Markup};

use crate::opcount::OpSeries;
use crate::report::heatmap::Heatmap;

/// Layout of a heatmap, in SVG user units.
const CELL: f64 = 30.0;
const CHAR_WIDTH: f64 = 6.8;
const LABEL_CHARS: usize = 56;

/// A heatmap with its caption and axes legend.
pub(super) fn heatmap_figure(id: &str, caption: &str, map: &Heatmap) -> Markup {
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
pub(super) const MAX_LINES: usize = 8;

/// Map operations per second by map site: the busiest sites' lines and a legend.
pub(super) fn ops_chart(all: &OpSeries) -> Markup {
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

#[cfg(test)]
mod tests {
    use super::*;

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

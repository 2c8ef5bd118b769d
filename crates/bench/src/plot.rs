//! SVG plots (plotters): throughput against threads, one line per map, one plot per workload.

use std::path::Path;

use plotters::prelude::*;

use crate::maps::MapKind;
use crate::matrix::CellResult;

/// One colour per map of [`MapKind::ALL`] (the tab10 palette), so no two lines share one.
const PALETTE: [RGBColor; MapKind::ALL.len()] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
];

fn color(map: MapKind) -> RGBColor {
    let i = MapKind::ALL.iter().position(|&m| m == map).unwrap_or(0);
    PALETTE[i]
}

/// Writes `throughput-WORKLOAD.svg` for every workload in `results`; returns the file names.
pub fn throughput(results: &[CellResult], out: &Path) -> anyhow::Result<Vec<String>> {
    let mut workloads: Vec<&str> = results.iter().map(|r| r.workload).collect();
    workloads.dedup();
    let mut files = Vec::new();
    for w in workloads {
        let cells: Vec<&CellResult> = results.iter().filter(|r| r.workload == w).collect();
        let name = format!("throughput-{w}.svg");
        draw(w, &cells, &out.join(&name))
            .map_err(|e| anyhow::anyhow!("cannot plot {name}: {e}"))?;
        files.push(name);
    }
    Ok(files)
}

fn draw(
    workload: &str,
    cells: &[&CellResult],
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let max_threads = cells.iter().map(|c| c.threads).max().unwrap_or(1) as f64;
    let max_mops = cells
        .iter()
        .map(|c| c.summary().max)
        .fold(0.0, f64::max)
        .max(0.001);
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{workload}: throughput (median, min-max bars)"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.8..max_threads + 0.2, 0.0..max_mops * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("threads")
        .y_desc("Mops/s")
        .x_labels(max_threads as usize + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    let mut maps: Vec<MapKind> = cells.iter().map(|c| c.map).collect();
    maps.sort();
    maps.dedup();
    for map in maps {
        let mut points: Vec<&&CellResult> = cells.iter().filter(|c| c.map == map).collect();
        points.sort_by_key(|c| c.threads);
        let col = color(map);
        let style = if map.is_mapguard() {
            col.stroke_width(3)
        } else {
            col.stroke_width(1)
        };
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .map(|c| (c.threads as f64, c.summary().median)),
                style,
            ))?
            .label(map.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart.draw_series(points.iter().map(|c| {
            let s = c.summary();
            PathElement::new(
                vec![(c.threads as f64, s.min), (c.threads as f64, s.max)],
                col.stroke_width(1),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

//! Where a watch's output goes, in one place: each finding occurrence is fanned out to the
//! JSON-lines report and the terminal (new findings only), the audit log and the metrics
//! (every occurrence); operation counts go to the metrics and the HTML report's series.

use std::path::PathBuf;

use anyhow::Result;
use gotarget::GoBinary;

use crate::detect::race::DetectorSize;
use crate::event::MapEvent;
use crate::export::audit::TargetAudit;
use crate::export::metrics::MetricsFeed;
use crate::opcount::{OpSeries, SiteOps};
use crate::probe::{CounterReader, Counters, Probes};
use crate::report::html;
use crate::report::jsonl::JsonlReport;
use crate::report::terminal::{print_finding, StatusLine};
use crate::report::Finding;
use crate::watch::WatchOptions;

/// A watched process's gauges: what the metrics show besides counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    /// Goroutines seen.
    pub goroutines: usize,
    /// Maps seen.
    pub maps: usize,
    /// The race detector's memory, when races are looked for.
    pub detector: Option<DetectorSize>,
    /// The share of map accesses judged so far (sampling and drops lower it).
    pub coverage: f64,
}

/// The metrics of one watch, with what brings their event counters up to date.
struct MetricsSink {
    feed: MetricsFeed,
    counters: CounterReader,
}

impl MetricsSink {
    fn update(&mut self, counters: &Counters, gauges: Gauges) {
        self.feed.update(counters, gauges.goroutines, gauges.maps);
        self.feed.update_coverage(gauges.coverage);
        if let Some(size) = gauges.detector {
            self.feed.update_detector(size);
        }
    }
}

/// Every destination of one watch's output.
pub struct Sinks {
    report: Option<JsonlReport>,
    /// No findings on the terminal.
    quiet: bool,
    status: StatusLine,
    audit: Option<TargetAudit>,
    metrics: Option<MetricsSink>,
    /// Operations per second per map site, kept for the HTML report.
    series: Option<OpSeries>,
    html: Option<PathBuf>,
}

impl Sinks {
    /// Opens what `opts` asks for, for a watch of `binary` through `probes`.
    pub fn open(
        pid: i32,
        opts: &WatchOptions,
        binary: &GoBinary,
        probes: &Probes,
    ) -> Result<Sinks> {
        let report = opts
            .report
            .as_deref()
            .map(JsonlReport::create)
            .transpose()?;
        let metrics = match &opts.metrics {
            Some(m) => Some(MetricsSink {
                feed: m.feed(pid, probes.attached_count().0),
                counters: probes.counter_reader()?,
            }),
            None => None,
        };
        let audit = opts
            .audit
            .as_ref()
            .map(|log| log.for_target(&binary.go_version().raw))
            .transpose()?;
        Ok(Sinks {
            report,
            quiet: opts.quiet,
            status: StatusLine::new(opts.quiet || opts.no_status_line),
            audit,
            metrics,
            series: opts.html.as_ref().map(|_| OpSeries::default()),
            html: opts.html.clone(),
        })
    }

    /// Offers a map operation to the audit log (which keeps one in N).
    pub fn op(&mut self, ev: &MapEvent, map_site: impl FnOnce() -> Option<String>) -> Result<()> {
        match &mut self.audit {
            Some(audit) => audit.op(ev, map_site),
            None => Ok(()),
        }
    }

    /// One occurrence (at `ts_ns`) of `finding`, `new` when it is the first. A new finding
    /// also brings the metrics' event counters up to it (`gauges` gives the rest), so a
    /// scrape that counts the finding counts the operations that made it, even when the
    /// target dies before the next tick.
    pub fn finding(
        &mut self,
        finding: &Finding,
        new: bool,
        ts_ns: u64,
        gauges: impl FnOnce() -> Gauges,
    ) -> Result<()> {
        if let Some(m) = &mut self.metrics {
            m.feed.metrics().count_finding(finding);
            if new {
                let counters = m.counters.read()?;
                m.update(&counters, gauges());
            }
        }
        if let Some(audit) = &mut self.audit {
            audit.finding(finding, new, ts_ns)?;
        }
        if !new {
            return Ok(());
        }
        if let Some(report) = &mut self.report {
            report.append(finding)?;
        }
        if !self.quiet {
            self.status.clear();
            print_finding(&mut std::io::stderr(), finding);
        }
        Ok(())
    }

    /// Operations counted since the last call, the BPF counters, and (asked only when the
    /// metrics are on: the detector's size walks its clocks) the gauges now.
    pub fn ops(&mut self, ops: &[SiteOps], counters: &Counters, gauges: impl FnOnce() -> Gauges) {
        if let Some(series) = &mut self.series {
            series.add_all(ops);
        }
        if let Some(m) = &mut self.metrics {
            m.feed.metrics().add_ops(ops);
            m.update(counters, gauges());
        }
    }

    /// Redraws the live status line.
    pub fn status(&mut self, text: &str) {
        self.status.draw(text);
    }

    /// Clears the status line so other output starts on a clean line.
    pub fn clear_status(&mut self) {
        self.status.clear();
    }

    /// The process is no longer watched: its share of the metrics' gauges goes.
    pub fn stop_metrics(&mut self) {
        self.metrics = None;
    }

    /// Rewrites the report with the final counts and writes the HTML report, if asked for.
    pub fn finish(&mut self, findings: &[Finding], title: impl FnOnce() -> String) -> Result<()> {
        if let Some(report) = &mut self.report {
            report.finish(findings)?;
        }
        let (Some(path), Some(series)) = (&self.html, &self.series) else {
            return Ok(());
        };
        html::write(
            path,
            &html::Page {
                title: &title(),
                findings,
                ops: html::OpsOverTime::Series(series),
            },
        )?;
        eprintln!("mapwatch: HTML report in {}", path.display());
        Ok(())
    }
}

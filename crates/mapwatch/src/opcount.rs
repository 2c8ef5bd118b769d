//! Map operations counted by operation, the map's allocation site and the second of the watch
//! they happened in: one tally per watch, bumped per event, drained once a second into
//! whatever wants the counts (the Prometheus counters, the per-second series of the HTML
//! report).

use std::collections::{BTreeMap, HashMap};

use gotarget::MapOp;
use serde::{Deserialize, Serialize};

/// The site name of maps whose making was not seen (made before the watch began, or by
/// compiler-generated code without a runtime call).
pub const UNKNOWN_SITE: &str = "unknown";

/// Operations counted since the last drain, by (op, allocation site return address; 0 when
/// unknown, second since the start). Per-event work is one hash-map increment; names are
/// resolved at the drain.
pub struct OpTally {
    /// When the watch began, on the clock of event timestamps (ns).
    start_ns: u64,
    counts: HashMap<(MapOp, u64, u64), u64>,
}

/// Operations of one kind on maps made at one site, since the last drain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteOps {
    /// The operation.
    pub op: MapOp,
    /// Where the maps were made, `function file:line`, or [`UNKNOWN_SITE`].
    pub site: String,
    /// The second of the watch they happened in (by their own timestamps).
    pub second: u64,
    /// How many.
    pub count: u64,
}

impl OpTally {
    /// An empty tally for a watch that began at `start_ns` (monotonic clock, as events are).
    pub fn starting_at(start_ns: u64) -> OpTally {
        OpTally {
            start_ns,
            counts: HashMap::new(),
        }
    }

    /// Counts one operation at `ts_ns` (its event's time) on a map made at `made_at` (a
    /// return address into its maker).
    pub fn count(&mut self, op: MapOp, made_at: Option<u64>, ts_ns: u64) {
        let second = ts_ns.saturating_sub(self.start_ns) / 1_000_000_000;
        *self
            .counts
            .entry((op, made_at.unwrap_or(0), second))
            .or_default() += 1;
    }

    /// Takes the counts so far, naming each site with `site_name` (a return address into the
    /// map's maker to `function file:line`).
    pub fn drain(&mut self, mut site_name: impl FnMut(u64) -> Option<String>) -> Vec<SiteOps> {
        self.counts
            .drain()
            .map(|((op, made_at, second), count)| SiteOps {
                op,
                second,
                site: (made_at != 0)
                    .then(|| site_name(made_at))
                    .flatten()
                    .unwrap_or_else(|| UNKNOWN_SITE.to_string()),
                count,
            })
            .collect()
    }
}

/// Operations per second per map site (all operations together), for "ops per map over time".
/// Only the last [`OpSeries::MAX_SECONDS`] seconds of each site are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpSeries {
    /// Site -> second since the start -> operations in that second.
    sites: BTreeMap<String, BTreeMap<u64, u64>>,
}

impl OpSeries {
    /// Seconds kept per site: an hour of per-second points stays a small page.
    pub const MAX_SECONDS: usize = 3600;

    /// Adds `count` operations on maps made at `site` during `second` (since the start).
    pub fn add(&mut self, second: u64, site: &str, count: u64) {
        let points = self.sites.entry(site.to_string()).or_default();
        *points.entry(second).or_default() += count;
        while points.len() > Self::MAX_SECONDS {
            points.pop_first();
        }
    }

    /// Adds a drained tally.
    pub fn add_all(&mut self, ops: &[SiteOps]) {
        for o in ops {
            self.add(o.second, &o.site, o.count);
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// Each site with its (second, operations) points in time order.
    pub fn sites(&self) -> impl Iterator<Item = (&str, &BTreeMap<u64, u64>)> {
        self.sites.iter().map(|(s, p)| (s.as_str(), p))
    }

    /// The `n` sites with the most operations, the rest summed into one `other (K sites)`
    /// series: a service has dozens of map sites in its libraries, a chart shows a handful.
    pub fn top(&self, n: usize) -> OpSeries {
        let mut by_total: Vec<(&String, &BTreeMap<u64, u64>)> = self.sites.iter().collect();
        by_total
            .sort_by_key(|(site, points)| (std::cmp::Reverse(points.values().sum::<u64>()), *site));
        let mut out = OpSeries::default();
        let rest = by_total.len().saturating_sub(n);
        for (i, (site, points)) in by_total.into_iter().enumerate() {
            let name = if i < n {
                site.clone()
            } else {
                format!("other ({rest} sites)")
            };
            let merged = out.sites.entry(name).or_default();
            for (&second, &count) in points {
                *merged.entry(second).or_default() += count;
            }
        }
        out
    }

    /// The last second with a point.
    pub fn last_second(&self) -> u64 {
        self.sites
            .values()
            .filter_map(|p| p.last_key_value().map(|(&s, _)| s))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_names_sites_at_the_drain_and_starts_over() {
        const START: u64 = 50_000_000_000;
        let mut t = OpTally::starting_at(START);
        t.count(MapOp::Read, None, START + 10);
        t.count(MapOp::Write, Some(0x401000), START + 20);
        t.count(MapOp::Write, Some(0x401000), START + 999_999_999);
        t.count(MapOp::Write, Some(0x401000), START + 1_000_000_000);
        t.count(MapOp::Read, Some(0x999), START + 30);
        let mut ops = t.drain(|ret| (ret == 0x401000).then(|| "main.f f.go:3".to_string()));
        ops.sort_by_key(|o| (o.site.clone(), o.second, o.count));
        let site_ops = |op, site: &str, second, count| SiteOps {
            op,
            site: site.into(),
            second,
            count,
        };
        assert_eq!(
            ops,
            vec![
                site_ops(MapOp::Write, "main.f f.go:3", 0, 2),
                site_ops(MapOp::Write, "main.f f.go:3", 1, 1),
                site_ops(MapOp::Read, UNKNOWN_SITE, 0, 1),
                site_ops(MapOp::Read, UNKNOWN_SITE, 0, 1),
            ]
        );
        assert!(t.drain(|_| None).is_empty());
    }

    #[test]
    fn series_sums_per_second_and_keeps_the_latest_hour() {
        let mut s = OpSeries::default();
        s.add(0, "a", 2);
        s.add(0, "a", 3);
        s.add(1, "b", 1);
        let sites: Vec<_> = s.sites().map(|(n, p)| (n.to_string(), p.clone())).collect();
        assert_eq!(sites[0].0, "a");
        assert_eq!(sites[0].1[&0], 5);
        assert_eq!(s.last_second(), 1);
        for sec in 0..(OpSeries::MAX_SECONDS as u64 + 10) {
            s.add(sec, "c", 1);
        }
        let top = s.top(1);
        let names: Vec<&str> = top.sites().map(|(n, _)| n).collect();
        assert_eq!(names, ["c", "other (2 sites)"]);
        assert_eq!(top.sites().nth(1).unwrap().1[&0], 5);
        assert_eq!(top.sites().nth(1).unwrap().1[&1], 1);
        let (_, c) = s.sites().find(|(n, _)| *n == "c").unwrap();
        assert_eq!(c.len(), OpSeries::MAX_SECONDS);
        assert_eq!(*c.first_key_value().unwrap().0, 10);
    }
}

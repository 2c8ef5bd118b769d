//! The two heatmaps of the HTML report, as plain matrices (drawing is `html`'s job):
//! finding occurrences by call site x goroutine, and finding sides by call-chain depth x
//! how often the finding occurred.

use std::collections::{BTreeMap, HashMap};

use super::Finding;
use crate::stacks::user_frame;

/// Rows and columns past these are folded into one "other" row or column, so a report with
/// thousands of goroutines stays a readable picture.
pub const MAX_ROWS: usize = 30;
/// See [`MAX_ROWS`].
pub const MAX_COLUMNS: usize = 40;
/// The label of the row or column that holds what did not fit.
pub const OTHER: &str = "other";

/// A matrix of counts with labelled rows and columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heatmap {
    /// What the rows are.
    pub row_axis: &'static str,
    /// What the columns are.
    pub column_axis: &'static str,
    /// What a cell counts.
    pub unit: &'static str,
    /// Row labels, top to bottom.
    pub rows: Vec<String>,
    /// Column labels, left to right.
    pub columns: Vec<String>,
    /// `cells[row][column]`.
    pub cells: Vec<Vec<u64>>,
}

impl Heatmap {
    /// The largest cell (0 when empty).
    pub fn max(&self) -> u64 {
        self.cells.iter().flatten().copied().max().unwrap_or(0)
    }
}

/// Occurrences by the user call site of each side (its first frame outside the runtime) and
/// that side's goroutine: where in the code, and on which goroutines, the map was fought over.
pub fn by_site_and_goroutine(findings: &[Finding]) -> Heatmap {
    let mut cells: HashMap<(String, u64), u64> = HashMap::new();
    for f in findings {
        for side in [&f.first, &f.second] {
            let site = user_frame(&side.stack).unwrap_or("?").to_string();
            *cells.entry((site, side.goid)).or_default() += f.count;
        }
    }
    let mut map = fold(cells.into_iter(), Ord::cmp, Ord::cmp);
    map.row_axis = "call site";
    map.column_axis = "goroutine";
    map.unit = "occurrences";
    map
}

/// Finding sides by the depth of their call chain (frames in the stack) and the bucket of how
/// often their finding occurred (1, 2-3, 4-7, ...): deep rare chains vs shallow hot ones.
pub fn by_depth_and_frequency(findings: &[Finding]) -> Heatmap {
    let mut cells: HashMap<(u32, usize), u64> = HashMap::new();
    for f in findings {
        for side in [&f.first, &f.second] {
            *cells
                .entry((frequency_bucket(f.count), side.stack.len()))
                .or_default() += 1;
        }
    }
    // The most frequent at the top, depths in increasing order.
    let mut map = fold(cells.into_iter(), |a, b| b.cmp(a), Ord::cmp);
    map.rows = map
        .rows
        .iter()
        .map(|r| r.parse().map(bucket_label).unwrap_or_else(|_| r.clone()))
        .collect();
    map.row_axis = "occurrences of the finding";
    map.column_axis = "call-chain depth (frames)";
    map.unit = "finding sides";
    map
}

/// The power-of-two bucket of a count: 0 for 1, 1 for 2-3, 2 for 4-7, ...
fn frequency_bucket(count: u64) -> u32 {
    count.max(1).ilog2()
}

fn bucket_label(bucket: u32) -> String {
    let low = 1u64 << bucket;
    let high = low.saturating_mul(2) - 1;
    if low == high {
        low.to_string()
    } else {
        format!("{low}-{high}")
    }
}

/// Builds the matrix from sparse cells; rows and columns beyond the limits (the ones with the
/// smallest totals) fold into [`OTHER`]; rows and columns are ordered by `row_order` and
/// `column_order`.
fn fold<R, C>(
    cells: impl Iterator<Item = ((R, C), u64)>,
    row_order: impl Fn(&R, &R) -> std::cmp::Ordering,
    column_order: impl Fn(&C, &C) -> std::cmp::Ordering,
) -> Heatmap
where
    R: Ord + Clone + ToString,
    C: Ord + Clone + ToString,
{
    let cells: Vec<((R, C), u64)> = cells.collect();
    let mut row_totals: BTreeMap<R, u64> = BTreeMap::new();
    let mut column_totals: BTreeMap<C, u64> = BTreeMap::new();
    for ((r, c), n) in &cells {
        *row_totals.entry(r.clone()).or_default() += n;
        *column_totals.entry(c.clone()).or_default() += n;
    }
    let rows = keep_largest(row_totals, MAX_ROWS, &row_order);
    let columns = keep_largest(column_totals, MAX_COLUMNS, &column_order);
    let other_row = cells.iter().any(|((r, _), _)| !rows.contains(r));
    let other_column = cells.iter().any(|((_, c), _)| !columns.contains(c));
    let height = rows.len() + usize::from(other_row);
    let width = columns.len() + usize::from(other_column);
    let mut matrix = vec![vec![0u64; width]; height];
    for ((r, c), n) in &cells {
        let row = rows.iter().position(|x| x == r).unwrap_or(height - 1);
        let column = columns.iter().position(|x| x == c).unwrap_or(width - 1);
        matrix[row][column] += n;
    }
    let label = |other: bool| other.then(|| OTHER.to_string());
    Heatmap {
        row_axis: "",
        column_axis: "",
        unit: "",
        rows: rows
            .iter()
            .map(ToString::to_string)
            .chain(label(other_row))
            .collect(),
        columns: columns
            .iter()
            .map(ToString::to_string)
            .chain(label(other_column))
            .collect(),
        cells: matrix,
    }
}

/// The `limit` keys with the largest totals, in `order`.
fn keep_largest<K: Ord + Clone>(
    totals: BTreeMap<K, u64>,
    limit: usize,
    order: impl Fn(&K, &K) -> std::cmp::Ordering,
) -> Vec<K> {
    let mut by_total: Vec<(K, u64)> = totals.into_iter().collect();
    by_total.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    by_total.truncate(limit);
    let mut keys: Vec<K> = by_total.into_iter().map(|(k, _)| k).collect();
    keys.sort_by(order);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Access, FindingKind};

    fn finding(count: u64, sides: [(u64, &str, usize); 2]) -> Finding {
        let access = |(goid, line, depth): (u64, &str, usize)| Access {
            op: "write".into(),
            goid,
            stack: std::iter::once("runtime.mapassign_fast64 map.go:1".to_string())
                .chain(std::iter::once(line.to_string()))
                .chain((2..depth).map(|i| format!("main.caller{i} main.go:{i}")))
                .collect(),
            tid: 1,
            ts_ns: 0,
        };
        Finding {
            kind: FindingKind::Race,
            map: "0x1".into(),
            map_type: None,
            map_site: None,
            first: access(sides[0]),
            second: access(sides[1]),
            detected_by: "mapwatch".into(),
            count,
            pid: 1,
            go_version: "go1.25.5".into(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn site_by_goroutine_counts_occurrences_of_each_side() {
        let findings = [
            finding(3, [(7, "main.a a.go:1", 4), (8, "main.b b.go:2", 4)]),
            finding(2, [(7, "main.a a.go:1", 4), (9, "main.a a.go:1", 4)]),
        ];
        let h = by_site_and_goroutine(&findings);
        assert_eq!(h.rows, ["main.a a.go:1", "main.b b.go:2"]);
        assert_eq!(h.columns, ["7", "8", "9"]);
        assert_eq!(h.cells, [[5, 0, 2], [0, 3, 0]]);
        assert_eq!(h.max(), 5);
    }

    #[test]
    fn depth_by_frequency_buckets_counts_in_powers_of_two() {
        let findings = [
            finding(1, [(1, "main.a a.go:1", 3), (2, "main.b b.go:1", 5)]),
            finding(5, [(1, "main.a a.go:1", 3), (2, "main.b b.go:1", 3)]),
        ];
        let h = by_depth_and_frequency(&findings);
        assert_eq!(h.rows, ["4-7", "1"]);
        assert_eq!(h.columns, ["3", "5"]);
        assert_eq!(h.cells, [[2, 0], [1, 1]]);
    }

    #[test]
    fn too_many_goroutines_fold_into_other() {
        let findings: Vec<Finding> = (0..MAX_COLUMNS as u64 + 5)
            .map(|g| finding(1, [(g, "main.a a.go:1", 2), (1000, "main.b b.go:1", 2)]))
            .collect();
        let h = by_site_and_goroutine(&findings);
        assert_eq!(h.columns.len(), MAX_COLUMNS + 1);
        assert_eq!(h.columns.last().unwrap(), OTHER);
        let total: u64 = h.cells.iter().flatten().sum();
        assert_eq!(total, 2 * findings.len() as u64, "nothing lost in the fold");
    }
}

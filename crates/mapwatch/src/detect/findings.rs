//! The deduplicated log of findings: one per (kind, map site, pair of source lines), counted.

use std::collections::HashMap;

use crate::report::{Finding, FindingKind};
use crate::stacks::user_frame;

type Key = (FindingKind, String, String, String);

/// Findings so far, first occurrence kept, repeats counted.
#[derive(Default)]
pub struct FindingLog {
    index: HashMap<Key, usize>,
    findings: Vec<Finding>,
}

impl FindingLog {
    /// Adds a finding; returns its index in [`findings`](Self::findings) and whether it is
    /// new. The index lets a caller that recognises a repeat cheaply [`repeat`](Self::repeat)
    /// it without building the finding again.
    pub fn add(&mut self, finding: Finding) -> (usize, bool) {
        let site = finding
            .map_site
            .clone()
            .or_else(|| finding.map_type.clone())
            .unwrap_or_else(|| finding.map.clone());
        let line = |stack: &[String]| user_frame(stack).unwrap_or("?").to_string();
        let key = (
            finding.kind,
            site,
            line(&finding.first.stack),
            line(&finding.second.stack),
        );
        match self.index.get(&key) {
            Some(&i) => {
                self.findings[i].count += 1;
                (i, false)
            }
            None => {
                let i = self.findings.len();
                self.index.insert(key, i);
                self.findings.push(finding);
                (i, true)
            }
        }
    }

    /// Counts one more occurrence of finding `index`; returns it.
    pub fn repeat(&mut self, index: usize) -> Option<&Finding> {
        let f = self.findings.get_mut(index)?;
        f.count += 1;
        Some(f)
    }

    /// All distinct findings, in the order found.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Occurrences of all findings together.
    pub fn occurrences(&self) -> u64 {
        self.findings.iter().map(|f| f.count).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Access;

    fn finding(map: &str, first_line: &str, second_line: &str) -> Finding {
        let access = |line: &str| Access {
            op: "write".into(),
            goid: 1,
            stack: vec![
                "runtime.mapassign_fast64 map_fast64.go:1".into(),
                line.into(),
            ],
            tid: 1,
            ts_ns: 0,
        };
        Finding {
            kind: FindingKind::Conflict,
            map: map.into(),
            map_type: None,
            map_site: Some("main.main main.go:10".into()),
            first: access(first_line),
            second: access(second_line),
            detected_by: "mapwatch".into(),
            count: 1,
            pid: 1,
            go_version: "go1.25.5".into(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn one_finding_per_site_and_line_pair() {
        let mut log = FindingLog::default();
        assert_eq!(
            log.add(finding("0x1", "main.a main.go:20", "main.b main.go:30")),
            (0, true)
        );
        // Same site and lines on another map instance from the same site: a repeat.
        assert_eq!(
            log.add(finding("0x2", "main.a main.go:20", "main.b main.go:30")),
            (0, false)
        );
        assert_eq!(
            log.add(finding("0x1", "main.a main.go:21", "main.b main.go:30")),
            (1, true)
        );
        assert_eq!(log.findings().len(), 2);
        assert_eq!(log.findings()[0].count, 2);
        assert_eq!(log.occurrences(), 3);
    }
}

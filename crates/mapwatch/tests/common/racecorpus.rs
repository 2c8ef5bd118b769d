//! The race corpus (`testdata/go/racecorpus`): its cases, their verdicts, and the source lines
//! each racy case marks with `// race:NAME` as the lines a race report must name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::process::Command;

/// The comment that marks a racing line, followed by the case's name.
const MARKER: &str = "// race:";

/// One source line of the corpus.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceLine {
    /// The file's name inside `testdata/go/racecorpus`.
    pub file: String,
    /// 1-based line number.
    pub line: u32,
}

impl SourceLine {
    /// Whether a location `PATH:LINE` (as Go's race reports and mapwatch's stacks write them) is
    /// this line.
    pub fn is(&self, location: &str) -> bool {
        location.ends_with(&format!("/racecorpus/{}:{}", self.file, self.line))
    }

    /// Whether any frame of a mapwatch stack (`"function PATH:LINE"`) is this line.
    pub fn in_stack(&self, stack: &[String]) -> bool {
        stack.iter().any(|frame| {
            frame
                .rsplit_once(' ')
                .is_some_and(|(_, location)| self.is(location))
        })
    }
}

impl fmt::Display for SourceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One case of the corpus.
#[derive(Clone, Debug)]
pub struct Case {
    /// The argument that runs it.
    pub name: String,
    /// Its ground truth: `racy` or `clean`, as the program lists it.
    pub racy: bool,
    /// The racing lines of a racy case: two, or one that races with itself. Empty when clean.
    pub lines: Vec<SourceLine>,
}

impl Case {
    /// Whether two accesses' stacks name this case's racing lines, one line each (in either
    /// order; both name the line when it races with itself).
    pub fn named_by(&self, first: &[String], second: &[String]) -> bool {
        let (a, b) = match self.lines.as_slice() {
            [a] => (a, a),
            [a, b] => (a, b),
            _ => return false,
        };
        (a.in_stack(first) && b.in_stack(second)) || (b.in_stack(first) && a.in_stack(second))
    }
}

/// The corpus's cases as `binary -list` prints them, each with the lines its markers name.
///
/// Panics when the listing and the markers disagree: a marker naming no racy case, a racy case
/// without one or two marked lines.
pub fn cases(binary: &Path) -> Vec<Case> {
    let out = Command::new(binary)
        .arg("-list")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    assert!(out.status.success(), "{} -list failed", binary.display());
    let (mut markers, conditional) = markers();
    let cases: Vec<Case> = String::from_utf8(out.stdout)
        .expect("-list prints UTF-8")
        .lines()
        .map(|line| {
            let (name, verdict) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("-list line {line:?} is not `NAME racy|clean`"));
            let racy = match verdict {
                "racy" => true,
                "clean" => false,
                other => panic!("case {name}: verdict {other:?} is neither racy nor clean"),
            };
            let lines = markers.remove(name).unwrap_or_default();
            match (racy, lines.len()) {
                (true, 1 | 2) | (false, 0) => {}
                (true, n) => panic!("racy case {name} marks {n} lines, expected 1 or 2"),
                (false, _) => panic!("clean case {name} marks racing lines: {lines:?}"),
            }
            Case {
                name: name.to_string(),
                racy,
                lines,
            }
        })
        .collect();
    // Cases of files with a build constraint (`//go:build go1.23`) exist only where it holds.
    let missing: Vec<&String> = markers
        .keys()
        .filter(|name| !conditional.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "markers name cases -list does not have: {missing:?}"
    );
    cases
}

/// Every `// race:NAME` marker in the corpus's sources, by case name, and the names marked
/// in files with a build constraint.
fn markers() -> (BTreeMap<String, Vec<SourceLine>>, BTreeSet<String>) {
    let dir = gobuild::repo_root().join("testdata/go/racecorpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "go"))
        .collect();
    files.sort();
    let mut markers: BTreeMap<String, Vec<SourceLine>> = BTreeMap::new();
    let mut conditional = BTreeSet::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        let constrained = source.starts_with("//go:build ");
        for (index, text) in source.lines().enumerate() {
            if let Some(name) = marked_case(text) {
                if constrained {
                    conditional.insert(name.clone());
                }
                markers.entry(name).or_default().push(SourceLine {
                    file: file.clone(),
                    line: index as u32 + 1,
                });
            }
        }
    }
    (markers, conditional)
}

/// The case a source line is marked for: code ending in `// race:NAME`. Comment lines (the
/// corpus's own documentation of the marker) are not markers.
fn marked_case(text: &str) -> Option<String> {
    let (code, name) = text.rsplit_once(MARKER)?;
    let name = name.trim();
    let is_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let has_code = !code.trim().is_empty() && !code.trim_start().starts_with("//");
    (is_name && has_code).then(|| name.to_string())
}

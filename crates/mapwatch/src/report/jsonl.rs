//! The JSON-lines report: one finding per line, written and flushed as it is found, so a
//! target that the Go runtime kills right after still leaves both sides behind.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Finding;

/// Appends findings to a file, one JSON object per line.
pub struct JsonlReport {
    path: PathBuf,
    file: File,
}

impl JsonlReport {
    /// Creates (truncates) the report file.
    pub fn create(path: &Path) -> Result<JsonlReport> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("cannot write the report {}", path.display()))?;
        Ok(JsonlReport {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes one finding and flushes it to the file system before returning.
    pub fn append(&mut self, finding: &Finding) -> Result<()> {
        let mut line = serde_json::to_vec(finding).expect("findings serialize");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot write the report {}", self.path.display()))
    }

    /// Rewrites the whole report with final counts (atomically: a crash keeps the old one).
    pub fn finish(&mut self, findings: &[Finding]) -> Result<()> {
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut out = BufWriter::new(
            File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?,
        );
        for f in findings {
            serde_json::to_writer(&mut out, f)?;
            out.write_all(b"\n")?;
        }
        out.into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot replace the report {}", self.path.display()))?;
        Ok(())
    }
}

/// Reads a report back (for `mapwatch report` and tests).
pub fn read(path: &Path) -> Result<Vec<Finding>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the report {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// The findings of a report's text, one JSON object per non-blank line; `origin` names the
/// text in errors (`origin:line: not a finding`).
pub fn parse(text: &str, origin: &str) -> Result<Vec<Finding>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{origin}:{}: not a finding", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_skips_blank_lines_and_names_the_bad_one() {
        let seed = include_str!("../../../../fuzz/seeds/report/two-findings.jsonl");
        let findings = parse(seed, "seed").unwrap();
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[1].notes, ["sampled 1 in 10 operations"]);
        let e = parse(&format!("{seed}\n{{}}\n"), "r.jsonl").unwrap_err();
        assert_eq!(e.to_string(), "r.jsonl:3: not a finding");
    }
}

//! The source line behind each stack frame, shown under it on the page.

use std::collections::HashMap;
use std::path::PathBuf;

/// Source text of `function file:line` frames, read once per file; only `.go` files are
/// read, so a report naming other files cannot pull them into the page.
#[derive(Default)]
pub(super) struct SourceLines {
    files: HashMap<PathBuf, Option<Vec<String>>>,
}

impl SourceLines {
    /// `  LINE | text` of a frame's source line, when its `.go` file is readable.
    pub(super) fn line_of(&mut self, frame: &str) -> Option<String> {
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
}

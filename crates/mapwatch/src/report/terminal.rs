//! Human output on stderr: findings as they happen, a live status line, and the summary.

use std::io::{IsTerminal, Write};

use super::Finding;

/// Prints a finding for a person, both stacks included, in one write: the target shares the
/// terminal (and dies printing its own traceback right then), and a finding written piecemeal
/// comes out interleaved with it.
pub fn print_finding(out: &mut dyn Write, f: &Finding) {
    use std::fmt::Write as _;
    let kind = f.kind.as_str().to_ascii_uppercase();
    let ty = f.map_type.as_deref().unwrap_or("map of unknown type");
    let site = f
        .map_site
        .as_deref()
        .map(|s| format!(", made at {s}"))
        .unwrap_or_default();
    let mut text = format!("mapwatch: {kind} on map {} ({ty}{site})\n", f.map);
    for (label, a) in [("first", &f.first), ("second", &f.second)] {
        let during = if label == "first" && f.kind == super::FindingKind::Conflict {
            " (in progress)"
        } else {
            ""
        };
        let _ = writeln!(text, "  goroutine {} {}{during}:", a.goid, a.op);
        for frame in &a.stack {
            let _ = writeln!(text, "      {frame}");
        }
    }
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// A one-line live view, redrawn in place when stderr is a terminal.
pub struct StatusLine {
    enabled: bool,
    drawn: bool,
}

impl StatusLine {
    /// Live only on a terminal, and not when `quiet`.
    pub fn new(quiet: bool) -> StatusLine {
        StatusLine {
            enabled: !quiet && std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Redraws the line.
    pub fn draw(&mut self, text: &str) {
        if self.enabled {
            eprint!("\r\x1b[K{text}");
            self.drawn = true;
        }
    }

    /// Clears it so other output starts on a clean line.
    pub fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
    }
}

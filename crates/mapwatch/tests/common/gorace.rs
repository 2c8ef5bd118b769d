//! Reports of Go's race detector (a `go build -race` binary's stderr), parsed into the stack
//! format of mapwatch's findings so both can be checked against the same expected lines.

/// What a Go race report begins with.
pub const DATA_RACE: &str = "WARNING: DATA RACE";

/// One `WARNING: DATA RACE` report of a `-race` binary: the stacks of its two accesses, frames
/// written as mapwatch writes them (`function PATH:LINE`). Where the goroutines were created is
/// left out: only the accesses count.
pub struct RaceReport {
    /// The report as printed, for messages.
    pub text: String,
    /// The access that found the race ("Read at" / "Write at"), innermost frame first.
    pub current: Vec<String>,
    /// The earlier access it races with ("Previous read at" / "Previous write at").
    pub previous: Vec<String>,
}

/// The race reports in a `-race` binary's stderr.
pub fn race_reports(stderr: &str) -> Vec<RaceReport> {
    stderr
        .split(DATA_RACE)
        .skip(1)
        .map(|rest| {
            let text = rest.split("==================").next().unwrap_or(rest);
            let mut report = RaceReport {
                text: text.to_string(),
                current: Vec::new(),
                previous: Vec::new(),
            };
            // Paragraphs: "Write at 0x... by goroutine N:", "Previous read at ...:", each
            // followed by frames, two lines each: "pkg.function()" and "PATH:LINE +0xOFF".
            for paragraph in text.split("\n\n") {
                let mut lines = paragraph.lines().map(str::trim).filter(|l| !l.is_empty());
                let stack = match lines.next() {
                    Some(h) if h.starts_with("Read at") || h.starts_with("Write at") => {
                        &mut report.current
                    }
                    Some(h) if h.starts_with("Previous ") => &mut report.previous,
                    _ => continue,
                };
                let frames: Vec<&str> = lines.collect();
                for pair in frames.chunks(2) {
                    if let [function, location] = pair {
                        let location = location.split_whitespace().next().unwrap_or_default();
                        stack.push(format!("{} {location}", function.trim_end_matches("()")));
                    }
                }
            }
            report
        })
        .collect()
}

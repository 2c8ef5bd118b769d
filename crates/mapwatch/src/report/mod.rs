//! Where findings go: the JSON-lines report, the terminal, and the HTML report.

mod finding;
pub mod heatmap;
pub mod html;
pub mod jsonl;
pub mod terminal;

pub use finding::{op_name, Access, Finding, FindingKind};

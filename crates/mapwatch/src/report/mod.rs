//! Where findings go: the JSON-lines report and the terminal.

mod finding;
pub mod jsonl;
pub mod terminal;

pub use finding::{op_name, Access, Finding, FindingKind};

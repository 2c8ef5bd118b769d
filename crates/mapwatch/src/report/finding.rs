//! Findings as the JSON-lines report contract describes them (see docs/ARCHITECTURE.md):
//! `{"kind", "map", "first": ACCESS, "second": ACCESS, ...}` with
//! `ACCESS = {"op", "goid", "stack": ["func file:line", ...]}`.

use serde::{Deserialize, Serialize};

/// What kind of finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    /// Two accesses overlapped in time, one of them a write.
    Conflict,
    /// Two accesses that no synchronisation orders, one of them a write.
    Race,
}

impl FindingKind {
    /// The name in the report's `kind` field.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Conflict => "conflict",
            FindingKind::Race => "race",
        }
    }
}

/// One side of a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// "read", "write", "delete", "iterate" or "clear".
    pub op: String,
    /// Goroutine id.
    pub goid: u64,
    /// Symbolized stack, innermost first, `function file:line`, the direct caller included.
    pub stack: Vec<String>,
    /// Thread id.
    pub tid: u32,
    /// Kernel monotonic time of the access, ns.
    pub ts_ns: u64,
}

impl Access {
    /// Goroutine `goid`'s `op` on thread `tid` at `ts_ns`, with its symbolized stack.
    pub fn new(op: gotarget::MapOp, goid: u64, stack: Vec<String>, tid: u32, ts_ns: u64) -> Access {
        Access {
            op: op_name(op).to_string(),
            goid,
            stack,
            tid,
            ts_ns,
        }
    }
}

/// A conflict or race on one map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Conflict or race.
    pub kind: FindingKind,
    /// The map header's address, `0x...`.
    pub map: String,
    /// The map's Go type, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_type: Option<String>,
    /// Where the map was made (the caller of makemap), when seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_site: Option<String>,
    /// The earlier access (for a conflict: the write in progress).
    pub first: Access,
    /// The later access.
    pub second: Access,
    /// Who saw it: "mapwatch" (an access began during another goroutine's write) or
    /// "go-runtime" (the runtime's own check fired; it kills the process right after).
    pub detected_by: String,
    /// How many times this (map site, pair of source lines) was seen.
    pub count: u64,
    /// The target process.
    pub pid: u32,
    /// The target's Go version.
    pub go_version: String,
    /// What limited the watch that found it (sampling, synchronisation mapwatch could not
    /// observe), so a reader knows what a silence is worth.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The op names of the report contract.
pub fn op_name(op: gotarget::MapOp) -> &'static str {
    use gotarget::MapOp::*;
    match op {
        Read => "read",
        Write => "write",
        Delete => "delete",
        IterStart | IterNext => "iterate",
        Clear => "clear",
        Make => "make",
    }
}

//! From events to findings: map identities, conflicts (overlapping accesses), and the
//! deduplicated log of findings.

pub mod conflict;
pub mod findings;
pub mod maps;

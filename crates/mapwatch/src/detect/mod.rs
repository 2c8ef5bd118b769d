//! From events to findings: map identities, conflicts (overlapping accesses), races
//! (accesses no synchronisation orders), and the deduplicated log of findings.

pub mod analysis;
pub mod chan;
pub mod clock;
pub mod conflict;
pub mod findings;
pub mod maps;
pub mod objects;
pub mod race;
pub mod racewatch;

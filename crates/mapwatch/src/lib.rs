//! mapwatch: watch a running Go process's maps with eBPF uprobes, without rebuilding or
//! restarting it, and report conflicting accesses with both goroutines' stacks.
//!
//! Data flows one way: target binary ([`gotarget`]) -> probe plan and BPF events (`probe`,
//! `event`) -> analysis (`detect`) -> findings -> sinks (`sink`: `report`, `export`). One
//! watch (`watch`) runs that pipeline for one process; `cli` and `daemon` start watches.
//! docs/ARCHITECTURE.md is the map. The modules are private: what is public below is what
//! the binary, the integration tests and the benchmarks use.

mod capture;
mod cli;
mod clock;
mod daemon;
mod detect;
mod event;
mod export;
mod inspect;
mod opcount;
mod probe;
mod process;
mod report;
mod sampling;
mod signals;
mod sink;
mod stacks;
mod watch;

pub use capture::{capture, capture_measured};
pub use cli::main;
pub use detect::race::RaceDetector;
pub use event::{decode as decode_record, ChanState, DecodeError, MapEvent, Record, SyncEvent};
pub use export::audit::{read_all as read_audit_log, AuditRecord};
pub use export::metrics::Metrics;
pub use opcount::{SiteOps, UNKNOWN_SITE};
pub use probe::{Counters, ProgramRuns, SitePolicy};
pub use report::{jsonl, Access, Finding, FindingKind};

//! mapwatch: watch a running Go process's maps with eBPF uprobes, without rebuilding or
//! restarting it, and report conflicting accesses with both goroutines' stacks.
//!
//! Data flows one way: target binary ([`gotarget`]) -> probe plan -> BPF events ([`probe`],
//! [`event`]) -> detector ([`detect`]) -> findings -> sinks ([`report`]).

pub mod capture;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod detect;
pub mod event;
pub mod export;
pub mod inspect;
pub mod opcount;
pub mod probe;
pub mod process;
pub mod report;
pub mod session;
pub mod stacks;

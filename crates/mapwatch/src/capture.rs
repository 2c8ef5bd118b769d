//! Runs a program with probes attached from its first instruction and keeps every record:
//! the raw material for tests and benchmarks that check events against the program's own view.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use gotarget::GoBinary;

use crate::event::Record;
use crate::probe::{Counters, Probes, ProgramRuns, SitePolicy};
use crate::process::{exe_of, StoppedChild};

/// What a captured run produced.
pub struct Capture {
    /// Every record read from the ring buffer, in order.
    pub records: Vec<Record>,
    /// The program's standard output.
    pub stdout: String,
    /// How it ended.
    pub status: ExitStatus,
    /// BPF counters at the end.
    pub counters: Counters,
    /// The programs' hits and run time (the kernel's statistics): zero unless measured.
    pub runs: ProgramRuns,
}

/// Runs `cmd` (its stdout is captured) with map probes placed by `policy`.
pub fn capture(cmd: Command, policy: SitePolicy) -> Result<Capture> {
    capture_with(cmd, policy, false)
}

/// [`capture`], with the kernel's statistics of the programs' run time on (they cost each hit
/// two clock reads).
pub fn capture_measured(cmd: Command, policy: SitePolicy) -> Result<Capture> {
    capture_with(cmd, policy, true)
}

fn capture_with(mut cmd: Command, policy: SitePolicy, measured: bool) -> Result<Capture> {
    cmd.stdout(Stdio::piped());
    let stopped = StoppedChild::spawn_command(cmd)?;
    let pid = stopped.pid();
    let exe = exe_of(pid)?;
    let binary = GoBinary::open(&exe)?;
    let mut probes = Probes::load(&binary, true)?;
    if measured {
        probes.enable_run_stats()?;
    }
    probes.attach(&binary, &exe, pid, policy)?;
    let mut reader = probes.reader()?;
    let mut child = stopped.resume()?;
    let mut pipe = child.stdout.take().context("stdout is piped")?;
    // Read stdout on the side so a chatty program never blocks on a full pipe.
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let mut records = Vec::new();
    let status = loop {
        reader.drain(Duration::from_millis(50), &mut records)?;
        if let Some(status) = child.try_wait()? {
            break status;
        }
    };
    reader.drain_all(&mut records)?;
    let counters = probes.counters()?;
    let runs = probes.all_runs()?;
    let stdout = stdout.join().unwrap_or_default();
    Ok(Capture {
        records,
        stdout,
        status,
        counters,
        runs,
    })
}

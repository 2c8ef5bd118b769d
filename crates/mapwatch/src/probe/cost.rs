//! What the probes cost the target, measured on this host: the kernel's cost of one uprobe hit
//! on an instruction it emulates and on one it single-steps (calibrated at start on functions
//! of mapwatch's own), and the BPF programs' hits and run time (the kernel's per-program
//! statistics).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use libbpf_rs::libbpf_sys;
use libbpf_rs::{UprobeMultiOpts, UprobeOpts};

use super::{BpfProgram, Probes};

// Two functions for calibration to probe in mapwatch's own process: the first starts with a
// `push rbp`, which the kernel emulates (as the `call`s and `push`es mapwatch mostly probes),
// the second with a `mov`, which it single-steps. Written in assembly so that no compiler
// setting changes their first instructions.
std::arch::global_asm!(
    ".globl mapwatch_calibration_emulated",
    ".type mapwatch_calibration_emulated, @function",
    "mapwatch_calibration_emulated:",
    "push rbp",
    "pop rbp",
    "ret",
    ".size mapwatch_calibration_emulated, . - mapwatch_calibration_emulated",
    ".globl mapwatch_calibration_stepped",
    ".type mapwatch_calibration_stepped, @function",
    "mapwatch_calibration_stepped:",
    "mov rax, rdi",
    "ret",
    ".size mapwatch_calibration_stepped, . - mapwatch_calibration_stepped",
);

extern "C" {
    fn mapwatch_calibration_emulated();
    fn mapwatch_calibration_stepped();
}

/// Calls per timing: enough to average out, ~15 ms probed on an emulated instruction, ~60 ms
/// on a single-stepped one.
const CALLS: u32 = 5_000;

/// Nanoseconds per call of `f`, best of three.
fn ns_per_call(f: unsafe extern "C" fn()) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                // SAFETY: both calibration functions only move registers they may clobber.
                unsafe { f() };
            }
            start.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .fold(f64::INFINITY, f64::min)
}

/// The file offset in mapwatch's executable of function `f`, from the mapping that holds it
/// (`/proc/self/maps`: works whether or not the binary has symbols).
fn file_offset_of(f: unsafe extern "C" fn()) -> Result<u64> {
    let addr = f as *const () as u64;
    let maps = std::fs::read_to_string("/proc/self/maps").context("reading /proc/self/maps")?;
    maps.lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            let (lo, hi) = fields.next()?.split_once('-')?;
            let (lo, hi) = (
                u64::from_str_radix(lo, 16).ok()?,
                u64::from_str_radix(hi, 16).ok()?,
            );
            let offset = u64::from_str_radix(fields.nth(1)?, 16).ok()?;
            (lo..hi).contains(&addr).then(|| addr - lo + offset)
        })
        .ok_or_else(|| anyhow!("the calibration function is in no mapping of mapwatch"))
}

/// The kernel's per-program statistics, kept on while this lives.
pub(super) struct RunStats(#[allow(dead_code)] OwnedFd);

impl RunStats {
    pub(super) fn enable() -> Result<RunStats> {
        // SAFETY: plain syscall wrapper; a non-negative result is an fd we now own.
        let fd = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
        if fd < 0 {
            return Err(anyhow!(
                "cannot enable BPF run-time statistics: {}",
                std::io::Error::from_raw_os_error(-fd)
            ));
        }
        // SAFETY: `fd` was just returned to us and is owned by nobody else.
        Ok(RunStats(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

/// Hits and run time of BPF programs, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramRuns {
    /// Hits on instructions the kernel emulates.
    pub emulated: u64,
    /// Hits on instructions it single-steps.
    pub stepped: u64,
    /// Time spent in the programs, ns.
    pub run_ns: u64,
}

impl ProgramRuns {
    /// Mean time in the programs per hit, ns (0 without hits).
    pub fn ns_per_hit(&self) -> f64 {
        let hits = self.emulated + self.stepped;
        if hits == 0 {
            0.0
        } else {
            self.run_ns as f64 / hits as f64
        }
    }
}

/// The kernel's cost of one probe hit, by how it handles the probed instruction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HitCost {
    /// On an instruction it emulates.
    pub emulated: Duration,
    /// On one it single-steps.
    pub stepped: Duration,
}

impl Probes {
    /// The kernel's own cost of one uprobe hit, measured now: a program that does nothing,
    /// probed on functions of mapwatch's that are called in a loop.
    pub fn calibrate_hit_cost(&self) -> Result<HitCost> {
        Ok(HitCost {
            emulated: self.hit_cost_on(mapwatch_calibration_emulated)?,
            stepped: self.hit_cost_on(mapwatch_calibration_stepped)?,
        })
    }

    fn hit_cost_on(&self, f: unsafe extern "C" fn()) -> Result<Duration> {
        let exe = std::path::Path::new("/proc/self/exe");
        let offset = file_offset_of(f)?;
        let plain = ns_per_call(f);
        let program = self.program(BpfProgram::Nothing);
        let pid = std::process::id() as i32;
        let _link = if self.multi_links {
            let opts = UprobeMultiOpts {
                offsets: vec![offset as usize],
                cookies: vec![0],
                ..Default::default()
            };
            program.attach_uprobe_multi_with_opts(pid, exe, "", opts)
        } else {
            program.attach_uprobe_with_opts(pid, exe, offset as usize, UprobeOpts::default())
        }
        .context("cannot attach the calibration probe")?;
        let probed = ns_per_call(f);
        Ok(Duration::from_nanos((probed - plain).max(0.0) as u64))
    }

    /// Turns on the kernel's run-time statistics for BPF programs, for [`Probes::sampled_runs`].
    pub fn enable_run_stats(&mut self) -> Result<()> {
        if self.run_stats.is_none() {
            self.run_stats = Some(RunStats::enable()?);
        }
        Ok(())
    }

    /// Runs and run time so far of the programs duty cycling switches (map accesses and
    /// synchronisation); zero until [`Probes::enable_run_stats`].
    pub fn sampled_runs(&self) -> Result<ProgramRuns> {
        self.runs_of(BpfProgram::is_sampled)
    }

    /// Runs and run time so far of every program; zero until [`Probes::enable_run_stats`].
    pub fn all_runs(&self) -> Result<ProgramRuns> {
        self.runs_of(|_| true)
    }

    fn runs_of(&self, which: impl Fn(BpfProgram) -> bool) -> Result<ProgramRuns> {
        let mut total = ProgramRuns::default();
        for program in BpfProgram::ALL.into_iter().filter(|&p| which(p)) {
            let fd = self.program(program).as_fd();
            let mut info = libbpf_sys::bpf_prog_info::default();
            let mut len = std::mem::size_of_val(&info) as u32;
            // SAFETY: `info` is a plain struct of `len` bytes the kernel fills in.
            let ret =
                unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
            if ret != 0 {
                return Err(anyhow!(
                    "cannot read BPF program statistics: {}",
                    std::io::Error::from_raw_os_error(-ret)
                ));
            }
            if program.single_stepped() {
                total.stepped += info.run_cnt;
            } else {
                total.emulated += info.run_cnt;
            }
            total.run_ns += info.run_time_ns;
        }
        Ok(total)
    }
}

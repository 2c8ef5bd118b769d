//! The target process: starting one stopped at its first instruction, finding one by pid,
//! and telling when it is gone.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};

use anyhow::{bail, Context, Result};

/// Loading eBPF needs root (or CAP_BPF + CAP_PERFMON); say so before anything else happens.
pub fn require_root() -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("mapwatch needs root (or CAP_BPF and CAP_PERFMON) to load eBPF programs; try sudo");
    }
    Ok(())
}

/// A child started under ptrace, stopped right after `exec` before its first instruction,
/// so probes can be attached before it makes its first map operation.
pub struct StoppedChild {
    child: Child,
}

impl StoppedChild {
    /// Starts `program args...` and waits until it stops at `exec`.
    pub fn spawn(program: &OsString, args: &[OsString]) -> Result<StoppedChild> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        Self::spawn_command(cmd)
    }

    /// Starts `cmd` (its stdio as configured) and waits until it stops at `exec`.
    pub fn spawn_command(mut cmd: Command) -> Result<StoppedChild> {
        let program = cmd.get_program().to_os_string();
        // SAFETY: the closure runs in the forked child before exec and only calls ptrace,
        // which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", program.to_string_lossy()))?;
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // A traced child stops with SIGTRAP once exec succeeds.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r != pid || !libc::WIFSTOPPED(status) {
            bail!(
                "{} did not stop at exec (status {status:#x})",
                program.to_string_lossy()
            );
        }
        Ok(StoppedChild { child })
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Lets it run, untraced.
    pub fn resume(self) -> Result<Child> {
        let r = unsafe { libc::ptrace(libc::PTRACE_DETACH, self.pid(), 0, 0) };
        if r < 0 {
            return Err(io::Error::last_os_error())
                .context("cannot release the target from ptrace");
        }
        Ok(self.child)
    }

    /// Kills it before it ever ran (when it cannot be watched).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The executable of a running process, as a path that stays valid even if the file on disk
/// was replaced since it started.
pub fn exe_of(pid: i32) -> Result<PathBuf> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if pid <= 0 || !proc_dir.exists() {
        bail!("no process with pid {pid}");
    }
    let exe = proc_dir.join("exe");
    std::fs::read_link(&exe).with_context(|| format!("cannot read the executable of pid {pid}"))?;
    Ok(exe)
}

/// Whether a process we did not start is still alive (zombies count as gone).
pub fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The exit code a shell would report: the status, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// A human description of how a target ended.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended".to_string(),
    }
}

/// CPU time process `pid` has used, all threads, user and system (`/proc/PID/stat`; 0 when it
/// is gone). Its resolution is the kernel's clock tick.
pub fn cpu_time_ns(pid: i32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces and parentheses): state is the
    // third field, utime the 14th and stime the 15th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

/// CPU time this process (mapwatch) has used, all threads, user and system.
pub fn own_cpu_time_ns() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: initialised by the successful call (and zeroed before).
    let usage = unsafe { usage.assume_init() };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

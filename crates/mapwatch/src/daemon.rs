//! `mapwatch daemon`: watches every process whose executable matches a pattern (and/or a list
//! of pids), each in its own [`Watch`](crate::watch::Watch) on its own thread, all feeding one metrics endpoint
//! and one audit log. It looks at /proc every poll interval: new matching processes are
//! attached to, ended ones are detached from (their watch ends by itself when the process
//! does), and SIGTERM or SIGINT detaches from all and ends the daemon.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use regex::Regex;

use crate::watch::{self, Target, WatchOptions};
use crate::{process, signals};

/// What the daemon watches and how.
pub struct DaemonOptions {
    /// Processes whose executable path matches this.
    pub matcher: Option<Regex>,
    /// And these processes. Without a matcher the daemon ends when all of them have.
    pub pids: Vec<i32>,
    /// How often /proc is looked at.
    pub poll: Duration,
    /// The options of each process's watch (metrics and audit log shared by all).
    pub watch: WatchOptions,
}

/// How a process's watch thread ended.
enum WatchEnd {
    /// The watch ran until the process ended (or the daemon stopped).
    Ended,
    /// It could not be watched (not a Go program, gone before the probes were attached, ...).
    Refused,
}

/// Runs the daemon until SIGTERM/SIGINT, or, with only a pid list, until those processes end.
pub fn run(opts: DaemonOptions) -> Result<()> {
    signals::install();
    let selector = Selector {
        matcher: opts.matcher,
        pids: opts.pids.iter().copied().collect(),
        own_pid: std::process::id() as i32,
    };
    eprintln!("mapwatch: daemon: watching {}", selector.describe());
    let mut watches: HashMap<i32, JoinHandle<WatchEnd>> = HashMap::new();
    // Processes that could not be watched: not tried again while they live.
    let mut refused: HashSet<i32> = HashSet::new();
    loop {
        // Ended watches first, so a pid the kernel has already reused is picked up again.
        let ended: Vec<i32> = watches
            .iter()
            .filter(|(_, t)| t.is_finished())
            .map(|(&pid, _)| pid)
            .collect();
        for pid in ended {
            match watches.remove(&pid).expect("listed").join() {
                Ok(WatchEnd::Ended) => {
                    eprintln!("mapwatch: daemon: pid {pid} is no longer watched")
                }
                Ok(WatchEnd::Refused) => {
                    refused.insert(pid);
                }
                Err(_) => eprintln!("mapwatch: daemon: the watch of pid {pid} panicked"),
            }
        }
        refused.retain(|&pid| process::is_alive(pid));
        if signals::stop_requested() {
            break;
        }
        for (pid, exe) in selector.scan() {
            if watches.contains_key(&pid) || refused.contains(&pid) {
                continue;
            }
            eprintln!("mapwatch: daemon: found pid {pid} ({})", exe.display());
            watches.insert(pid, start_watch(pid, opts.watch.clone())?);
        }
        if selector.matcher.is_none()
            && watches.is_empty()
            && !selector.pids.iter().any(|&p| process::is_alive(p))
        {
            eprintln!("mapwatch: daemon: none of the listed processes is left");
            break;
        }
        sleep_unless_stopped(opts.poll);
    }
    // Every watch sees the same stop request and detaches.
    for (pid, watch) in watches {
        if watch.join().is_err() {
            eprintln!("mapwatch: daemon: the watch of pid {pid} panicked");
        }
    }
    eprintln!("mapwatch: daemon: stopped");
    Ok(())
}

fn start_watch(pid: i32, opts: WatchOptions) -> Result<JoinHandle<WatchEnd>> {
    std::thread::Builder::new()
        .name(format!("watch-{pid}"))
        .spawn(move || {
            let outcome = match watch::prepare(pid, opts) {
                Ok(w) => w.run(Target::Pid(pid)),
                Err(e) => {
                    eprintln!("mapwatch: daemon: not watching pid {pid}: {e:#}");
                    return WatchEnd::Refused;
                }
            };
            if let Err(e) = outcome {
                eprintln!("mapwatch: daemon: the watch of pid {pid} failed: {e:#}");
            }
            WatchEnd::Ended
        })
        .context("cannot start a watch thread")
}

/// Sleeps for `d`, waking early when a stop is requested.
fn sleep_unless_stopped(d: Duration) {
    let end = Instant::now() + d;
    while !signals::stop_requested() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Which running processes the daemon is after.
struct Selector {
    matcher: Option<Regex>,
    pids: HashSet<i32>,
    /// The daemon never watches itself.
    own_pid: i32,
}

impl Selector {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = &self.matcher {
            parts.push(format!("executables matching {:?}", m.as_str()));
        }
        if !self.pids.is_empty() {
            let mut pids: Vec<i32> = self.pids.iter().copied().collect();
            pids.sort_unstable();
            let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
            parts.push(format!("pids {}", pids.join(",")));
        }
        parts.join(" and ")
    }

    fn wants(&self, pid: i32, exe: &Path) -> bool {
        pid != self.own_pid
            && (self.pids.contains(&pid)
                || self
                    .matcher
                    .as_ref()
                    .is_some_and(|m| m.is_match(&exe.to_string_lossy())))
    }

    /// The live processes wanted now, with their executables.
    fn scan(&self) -> Vec<(i32, PathBuf)> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| {
                // Kernel threads have no executable; a process may end while we look.
                let exe = executable(pid)?;
                (self.wants(pid, &exe) && process::is_alive(pid)).then_some((pid, exe))
            })
            .collect()
    }
}

/// A process's executable path, without the " (deleted)" the kernel appends when the file was
/// replaced since the process started.
fn executable(pid: i32) -> Option<PathBuf> {
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let text = link.to_string_lossy();
    Some(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(re: Option<&str>, pids: &[i32]) -> Selector {
        Selector {
            matcher: re.map(|r| Regex::new(r).unwrap()),
            pids: pids.iter().copied().collect(),
            own_pid: 1,
        }
    }

    #[test]
    fn wants_matching_executables_and_listed_pids_but_never_itself() {
        let s = selector(Some(r"/orders$"), &[7]);
        assert!(s.wants(5, Path::new("/srv/bin/orders")));
        assert!(!s.wants(5, Path::new("/srv/bin/orders-load")));
        assert!(s.wants(7, Path::new("/usr/bin/anything")));
        assert!(!s.wants(1, Path::new("/srv/bin/orders")));
        assert_eq!(s.describe(), "executables matching \"/orders$\" and pids 7");
    }

    #[test]
    fn scan_finds_this_test_process_by_its_executable() {
        let me = std::process::id() as i32;
        let exe = executable(me).unwrap();
        let s = Selector {
            matcher: Some(
                Regex::new(&format!("^{}$", regex::escape(&exe.to_string_lossy()))).unwrap(),
            ),
            pids: HashSet::new(),
            own_pid: 0,
        };
        assert!(s.scan().iter().any(|(pid, e)| *pid == me && *e == exe));
    }
}

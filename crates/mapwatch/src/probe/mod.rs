//! Loads the BPF programs, attaches them to a Go process's map entry points, and reads what
//! they record: events from the ring buffer, user stacks, per-op counters and drops.

mod ringbuf;

use std::mem::MaybeUninit;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use gotarget::{GoBinary, MapOp, Placement};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, UprobeOpts};

pub use ringbuf::{EventReader, BATCH};

use crate::event::{self, KeyMode, OP_SLOTS};

mod skel {
    include!(concat!(env!("OUT_DIR"), "/mapwatch.skel.rs"));
}
use skel::{MapwatchSkel, MapwatchSkelBuilder};

/// Pending ring buffer bytes that wake the reader early; below it the reader's poll timer
/// picks events up (waking on every event costs ~2 µs per op instead of ~0.65 µs here).
const WAKE_BYTES: u64 = 1 << 20;

/// The runtime functions that print "fatal error: concurrent map ..." and kill the process
/// (Swiss maps call the second, which calls the first).
const RUNTIME_FATAL: [&str; 2] = ["runtime.fatal", "internal/runtime/maps.fatal"];

/// What a probe reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// A map operation of this class.
    Map(MapOp),
    /// The runtime's own detection of a map conflict, just before it kills the process.
    RuntimeFatal,
}

/// One uprobe as attached.
#[derive(Clone, Debug)]
pub struct AttachedProbe {
    /// What it reports.
    pub kind: ProbeKind,
    /// The Go function it sits in.
    pub function: String,
    /// Its virtual address.
    pub addr: u64,
    /// Whether the kernel emulates the probed instruction (cheap) or single-steps it.
    pub emulated: bool,
}

/// Where on a map entry point the probe goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SitePolicy {
    /// The plan's site: after the stack check, on an instruction the kernel emulates.
    Planned,
    /// The function's first instruction, as bpftrace and most tools place it (single-stepped).
    FunctionEntry,
}

fn entry_site(binary: &GoBinary, f: &gotarget::Function) -> Result<gotarget::ProbeSite> {
    let file_offset = binary
        .file_offset(f.addr)
        .ok_or_else(|| anyhow!("{} at {:#x} is not in the file", f.name, f.addr))?;
    Ok(gotarget::ProbeSite {
        addr: f.addr,
        file_offset,
        placement: Placement::Entry {
            reason: "entry placement requested".into(),
        },
        instruction: String::new(),
    })
}

/// Counters kept in BPF, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Operations seen, by wire op.
    pub ops: [u64; OP_SLOTS],
    /// Records lost because the ring buffer was full.
    pub drops: u64,
}

impl Counters {
    /// All operations seen.
    pub fn total_ops(&self) -> u64 {
        self.ops.iter().sum()
    }
}

/// Loaded BPF programs and their uprobes on one process.
pub struct Probes {
    skel: MapwatchSkel<'static>,
    links: Vec<Link>,
    attached: Vec<AttachedProbe>,
}

impl Probes {
    /// Loads the programs configured with `binary`'s runtime offsets.
    pub fn load(binary: &GoBinary) -> Result<Probes> {
        let offsets = binary.runtime_offsets();
        // The skeleton borrows its object storage for its whole life; a Probes lives until the
        // watch ends, so the storage (a few pointers) is leaked rather than made self-referential.
        let storage: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = MapwatchSkelBuilder::default()
            .open(storage)
            .context("cannot open the BPF object")?;
        let cfg = &mut open
            .maps
            .rodata_data
            .as_deref_mut()
            .ok_or_else(|| anyhow!("BPF object has no read-only data section"))?
            .cfg;
        cfg.goid_offset = offsets.goid;
        cfg.write_flag_offset = offsets.write_flag.offset;
        cfg.write_flag_mask = offsets.write_flag.mask;
        cfg.iter_map_offset = offsets.iter_map_offset;
        cfg.wake_bytes = WAKE_BYTES;
        let skel = open.load().map_err(explain_load_error)?;
        Ok(Probes {
            skel,
            links: Vec::new(),
            attached: Vec::new(),
        })
    }

    /// Attaches a uprobe to every map entry point of `binary`, for process `pid` only.
    /// `exe` must name the same file (`/proc/PID/exe` works even if it was replaced on disk).
    pub fn attach(&mut self, binary: &GoBinary, exe: &Path, pid: i32) -> Result<()> {
        self.attach_with(binary, exe, pid, SitePolicy::Planned)
    }

    /// [`Probes::attach`] with a choice of probe placement (the benchmark compares them).
    pub fn attach_with(
        &mut self,
        binary: &GoBinary,
        exe: &Path,
        pid: i32,
        policy: SitePolicy,
    ) -> Result<()> {
        for mut probe in binary.map_probe_plan() {
            if policy == SitePolicy::FunctionEntry {
                probe.site = entry_site(binary, &probe.function)?;
            }
            if probe.skip.is_some() {
                continue;
            }
            let key_mode = KeyMode::for_variant(probe.op, probe.variant);
            let cookie = event::cookie(probe.op, key_mode);
            let sites = if probe.op == MapOp::Make {
                // The new map is known only when makemap returns: probe its RET instructions
                // (never a uretprobe: those crash Go).
                binary.return_sites(&probe.function)?
            } else {
                vec![probe.site]
            };
            for site in &sites {
                let kind = ProbeKind::Map(probe.op);
                self.attach_one(kind, &probe.function.name, site, exe, pid, cookie)?;
            }
        }
        if self.links.is_empty() {
            anyhow::bail!(
                "{} has no map operations to probe (no runtime map entry points were linked in)",
                binary.path().display()
            );
        }
        for f in RUNTIME_FATAL
            .iter()
            .filter_map(|name| binary.function(name))
        {
            let site = binary.probe_site(&f)?;
            self.attach_one(ProbeKind::RuntimeFatal, &f.name, &site, exe, pid, 0)?;
        }
        Ok(())
    }

    fn attach_one(
        &mut self,
        kind: ProbeKind,
        function: &str,
        site: &gotarget::ProbeSite,
        exe: &Path,
        pid: i32,
        cookie: u64,
    ) -> Result<()> {
        let progs = &self.skel.progs;
        let prog = match kind {
            ProbeKind::Map(MapOp::Read) => &progs.on_read,
            ProbeKind::Map(MapOp::Write | MapOp::Delete | MapOp::Clear) => &progs.on_write,
            ProbeKind::Map(MapOp::IterStart) => &progs.on_iter_start,
            ProbeKind::Map(MapOp::IterNext) => &progs.on_iter_next,
            ProbeKind::Map(MapOp::Make) => &progs.on_make_return,
            ProbeKind::RuntimeFatal => &progs.on_fatal,
        };
        let opts = UprobeOpts {
            cookie,
            ..Default::default()
        };
        let link = prog
            .attach_uprobe_with_opts(pid, exe, site.file_offset as usize, opts)
            .with_context(|| format!("cannot attach a uprobe to {function} at {:#x}", site.addr))?;
        self.links.push(link);
        self.attached.push(AttachedProbe {
            kind,
            function: function.to_string(),
            addr: site.addr,
            emulated: site.placement == Placement::AfterStackCheck
                || site.instruction == "push rbp",
        });
        Ok(())
    }

    /// Removes every uprobe; the target runs on as if never watched.
    pub fn detach(&mut self) {
        // Each removal waits out an RCU grace period (~0.1 s here); one after another, two
        // dozen probes take seconds, during which the ring buffer overflows. In parallel they
        // take one.
        std::thread::scope(|scope| {
            for link in self.links.drain(..) {
                scope.spawn(move || drop(link));
            }
        });
    }

    /// Whether uprobes are attached now.
    pub fn is_attached(&self) -> bool {
        !self.links.is_empty()
    }

    /// The probes attached (also after [`Probes::detach`], for the summary).
    pub fn attached(&self) -> &[AttachedProbe] {
        &self.attached
    }

    /// A reader of this object's event ring buffer.
    pub fn reader(&self) -> Result<EventReader> {
        EventReader::new(&self.skel.maps.events)
    }

    /// Per-op counts and drops so far.
    pub fn counters(&self) -> Result<Counters> {
        let mut counters = Counters::default();
        for (i, slot) in counters.ops.iter_mut().enumerate() {
            *slot = sum_percpu(&self.skel.maps.op_counts, i as u32)?;
        }
        counters.drops = sum_percpu(&self.skel.maps.drops, 0)?;
        Ok(counters)
    }

    /// The instruction pointers of user stack `id`, innermost first.
    pub fn stack(&self, id: u32) -> Vec<u64> {
        let Ok(Some(bytes)) = self
            .skel
            .maps
            .stacks
            .lookup(&id.to_ne_bytes(), MapFlags::ANY)
        else {
            return Vec::new();
        };
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
            .take_while(|&ip| ip != 0)
            .collect()
    }
}

fn sum_percpu(map: &dyn MapCore, index: u32) -> Result<u64> {
    let values = map
        .lookup_percpu(&index.to_ne_bytes(), MapFlags::ANY)
        .context("cannot read a BPF counter")?
        .unwrap_or_default();
    Ok(values
        .iter()
        .filter_map(|v| {
            v.get(..8)
                .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
        })
        .sum())
}

fn explain_load_error(e: libbpf_rs::Error) -> anyhow::Error {
    let hint = if unsafe { libc::geteuid() } != 0 {
        " (mapwatch needs root, or CAP_BPF and CAP_PERFMON, to load eBPF programs)"
    } else {
        ""
    };
    anyhow!("cannot load the BPF programs: {e}{hint}")
}

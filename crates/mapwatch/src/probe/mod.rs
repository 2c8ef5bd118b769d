//! Loads the BPF programs, attaches them to a Go process's map entry points, and reads what
//! they record: events from the ring buffer, user stacks, per-op counters and drops.

mod cost;
mod ringbuf;

pub use cost::{HitCost, ProgramRuns};
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{anyhow, Context, Result};
use gotarget::{GoBinary, MapOp, ObjectAddr, Placement, SyncObject, SyncPlan};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{
    Link, MapCore, MapFlags, MapHandle, ProgramAttachType, UprobeMultiOpts, UprobeOpts,
};

pub use ringbuf::{EventReader, BATCH};

use crate::event::{self, layout, KeyMode, OP_SLOTS};

mod skel {
    include!(concat!(env!("OUT_DIR"), "/mapwatch.skel.rs"));
}
use skel::{MapwatchSkel, MapwatchSkelBuilder};

/// Records per CPU between wake-ups of the reader (a power of two); between them the reader's
/// poll timer picks records up. Waking on every event would cost ~1.5 µs more per op here.
const WAKE_EVERY: u64 = 4096;

/// The runtime functions that print "fatal error: concurrent map ..." and kill the process
/// (Swiss maps call the second, which calls the first).
const RUNTIME_FATAL: [&str; 2] = ["runtime.fatal", "internal/runtime/maps.fatal"];

/// Where map operations are probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SitePolicy {
    /// On the calls to the map entry points from code that operates on its callers' maps
    /// (user code, `maps`, `reflect`): only the operations that are watched pay for a probe.
    /// Maps made elsewhere are told apart by their hash seeds.
    Calls,
    /// In every map entry point, after its stack check (on an instruction the kernel
    /// emulates): every map operation of the process, the standard library's included.
    Planned,
    /// The function's first instruction, as bpftrace and most tools place it (single-stepped).
    FunctionEntry,
    /// The plan's sites, running a program that does nothing: the kernel's own cost of a
    /// probe there, the floor under any program's (the benchmark measures it).
    PlannedEmpty,
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
        emulated: false,
    })
}

/// A uprobe to attach: what it reports, where, and the cookie its program reads.
#[derive(Clone)]
struct PlannedSite {
    program: BpfProgram,
    function: String,
    site: gotarget::ProbeSite,
    cookie: u64,
}

/// The BPF programs, one per operation class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum BpfProgram {
    Read,
    Write,
    IterStart,
    IterNext,
    MakeReturn,
    CloneReturn,
    Fatal,
    Sync,
    /// [`BpfProgram::Sync`] on single-stepped instructions.
    SyncStepped,
    /// Does nothing ([`SitePolicy::PlannedEmpty`]).
    Nothing,
}

impl BpfProgram {
    const ALL: [BpfProgram; 10] = [
        BpfProgram::Read,
        BpfProgram::Write,
        BpfProgram::IterStart,
        BpfProgram::IterNext,
        BpfProgram::MakeReturn,
        BpfProgram::CloneReturn,
        BpfProgram::Fatal,
        BpfProgram::Sync,
        BpfProgram::SyncStepped,
        BpfProgram::Nothing,
    ];

    /// Whether it sees map operations or synchronisation: what sampling switches on and off
    /// (the runtime's fatal error is always watched).
    fn is_sampled(self) -> bool {
        !matches!(self, BpfProgram::Fatal | BpfProgram::Nothing)
    }

    fn is_sync(self) -> bool {
        matches!(self, BpfProgram::Sync | BpfProgram::SyncStepped)
    }

    /// Whether its sites are instructions the kernel single-steps (~10x an emulated one):
    /// returns and the sync sites with no emulated instruction to stand on.
    fn single_stepped(self) -> bool {
        matches!(
            self,
            BpfProgram::MakeReturn | BpfProgram::CloneReturn | BpfProgram::SyncStepped
        )
    }
}

/// The program that reports a map operation of class `op` by entry point `variant`.
fn program_for(op: MapOp, variant: &str) -> BpfProgram {
    match op {
        MapOp::Make if variant == "clone" => BpfProgram::CloneReturn,
        MapOp::Read => BpfProgram::Read,
        MapOp::Write | MapOp::Delete | MapOp::Clear => BpfProgram::Write,
        MapOp::IterStart => BpfProgram::IterStart,
        MapOp::IterNext => BpfProgram::IterNext,
        MapOp::Make => BpfProgram::MakeReturn,
    }
}

/// `struct sync_site` of event.h, for one probe of the sync plan.
fn sync_site_bytes(p: &gotarget::SyncProbe) -> [u8; layout::SYNC_SITE_SIZE] {
    use layout::*;
    // (form, base, index, scale, disp, slot)
    let (form, base, index, scale, disp, slot): (u8, u8, u8, u8, i64, i64) = match p.object {
        SyncObject::At(ObjectAddr::Registers { base, index, disp })
        | SyncObject::LockedChannel(ObjectAddr::Registers { base, index, disp }) => {
            let (i, sc) = index.map_or((REG_NONE, 0), |(r, s)| (r as u8, s));
            (ADDR_REGS, base as u8, i, sc, disp, 0)
        }
        SyncObject::At(ObjectAddr::FromProbe { delta })
        | SyncObject::LockedChannel(ObjectAddr::FromProbe { delta }) => {
            (ADDR_FROM_PROBE, 0, REG_NONE, 0, delta, 0)
        }
        SyncObject::At(ObjectAddr::Loaded { base, slot, disp })
        | SyncObject::LockedChannel(ObjectAddr::Loaded { base, slot, disp }) => {
            (ADDR_LOADED, base as u8, REG_NONE, 0, disp, slot)
        }
        SyncObject::At(ObjectAddr::Unknown) | SyncObject::LockedChannel(ObjectAddr::Unknown) => {
            (ADDR_UNKNOWN, 0, REG_NONE, 0, 0, 0)
        }
        SyncObject::SelectCases => (ADDR_SELECT, 0, REG_NONE, 0, 0, 0),
        SyncObject::NewGoroutine(reg) => (ADDR_NEW_G, reg as u8, REG_NONE, 0, 0, 0),
        SyncObject::CoroutineSwitch { g, coroarg } => {
            (ADDR_CORO, g as u8, REG_NONE, 0, 0, i64::from(coroarg))
        }
        SyncObject::None => (ADDR_NONE, 0, REG_NONE, 0, 0, 0),
    };
    let at_call = matches!(
        p.site.placement,
        Placement::AfterStackCheck | Placement::Entry { .. }
    );
    let chan_state = matches!(p.object, SyncObject::LockedChannel(_));
    let mut b = [0u8; SYNC_SITE_SIZE];
    b[SYNC_SITE_KIND] = p.kind as u8;
    b[SYNC_SITE_FORM] = form;
    b[SYNC_SITE_BASE] = base;
    b[SYNC_SITE_INDEX] = index;
    b[SYNC_SITE_SCALE] = scale;
    b[SYNC_SITE_AT_CALL] = at_call as u8;
    b[SYNC_SITE_CHAN_STATE] = chan_state as u8;
    b[SYNC_SITE_DISP..SYNC_SITE_DISP + 8].copy_from_slice(&disp.to_le_bytes());
    b[SYNC_SITE_SLOT..SYNC_SITE_SLOT + 8].copy_from_slice(&slot.to_le_bytes());
    b
}

/// Whether the kernel has uprobe-multi links (Linux 6.6 and later).
fn kernel_has_uprobe_multi() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (6, 6)
}

/// Counters kept in BPF, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Operations seen, by wire op.
    pub ops: [u64; OP_SLOTS],
    /// Records lost because the ring buffer was full.
    pub drops: u64,
    /// Synchronisation operations seen.
    pub sync: u64,
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
    /// Whether the programs were loaded for uprobe-multi links (decided at load: the attach
    /// type is fixed then, and attaching must match it).
    multi_links: bool,
    /// Each link with the program it runs (map-access links come and go with the duty cycle).
    links: Vec<(BpfProgram, Link)>,
    sync_plan: SyncPlan,
    /// What was attached, to attach the map-access programs again after a pause.
    planned: Vec<PlannedSite>,
    target: Option<(std::path::PathBuf, i32)>,
    /// Keeps the kernel's BPF run-time statistics on (see [`Probes::enable_run_stats`]).
    run_stats: Option<cost::RunStats>,
    /// The sampled probes coming off (see [`Probes::set_sampled_probes`]).
    detaching: Option<std::thread::JoinHandle<()>>,
}

impl Probes {
    /// Loads the programs configured with `binary`'s runtime offsets; with `sync`, also the
    /// synchronisation probes the race detector needs.
    pub fn load(binary: &GoBinary, sync: bool) -> Result<Probes> {
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
        cfg.parent_goid_offset = offsets.parent_goid;
        // The programs read both from one copy of the header's first bytes.
        let head_fields = [
            (offsets.write_flag.offset, 1),
            (offsets.seed.offset, offsets.seed.size),
        ];
        if head_fields
            .iter()
            .any(|&(offset, size)| offset as usize > layout::MAP_HEAD - 8 || size > 8)
        {
            anyhow::bail!(
                "this Go's map header keeps its write flag at {} and its seed at {}: beyond the {} bytes mapwatch reads",
                offsets.write_flag.offset,
                offsets.seed.offset,
                layout::MAP_HEAD - 8
            );
        }
        cfg.write_flag_offset = offsets.write_flag.offset;
        cfg.write_flag_mask = offsets.write_flag.mask;
        cfg.seed_offset = offsets.seed.offset;
        cfg.seed_size = offsets.seed.size;
        cfg.iter_map_offset = offsets.iter_map_offset;
        cfg.wake_mask = WAKE_EVERY - 1;
        let chan = offsets.chan;
        cfg.chan.qcount = chan.qcount;
        cfg.chan.dataqsiz = chan.dataqsiz;
        cfg.chan.elemsize = chan.elemsize;
        cfg.chan.closed = chan.closed;
        cfg.chan.sendx = chan.sendx;
        cfg.chan.recvx = chan.recvx;
        cfg.chan.recvq_first = chan.recvq_first;
        cfg.chan.sendq_first = chan.sendq_first;
        let forwarders: Vec<_> = binary
            .map_probe_plan()
            .into_iter()
            .filter(|p| p.skip.is_some())
            .map(|p| (p.function.addr, p.function.addr + p.function.size))
            .collect();
        if forwarders.len() > cfg.forwarders.len() {
            anyhow::bail!(
                "{} map entry points forward to others; mapwatch handles {} (FORWARDERS in event.h)",
                forwarders.len(),
                cfg.forwarders.len()
            );
        }
        for (slot, (lo, hi)) in cfg.forwarders.iter_mut().zip(&forwarders) {
            slot.lo = *lo;
            slot.hi = *hi;
        }
        cfg.n_forwarders = forwarders.len() as u32;
        // Races show the stack above each accessing line: sent once per call site.
        cfg.site_stacks = u32::from(sync);
        let sync_plan = if sync {
            binary.sync_probe_plan()
        } else {
            SyncPlan::default()
        };
        // A goid may be cached per CPU only while every goroutine creation (the only moment a
        // g takes a new goid) reaches the programs.
        cfg.goid_cache = u32::from(
            sync_plan
                .probes
                .iter()
                .any(|p| matches!(p.object, SyncObject::NewGoroutine(_))),
        );
        open.maps
            .sync_sites
            .set_max_entries(sync_plan.probes.len().max(1) as u32)
            .context("cannot size the sync site table")?;
        let multi_links = kernel_has_uprobe_multi();
        if multi_links {
            let progs = &mut open.progs;
            for prog in [
                &mut progs.on_read,
                &mut progs.on_write,
                &mut progs.on_iter_start,
                &mut progs.on_iter_next,
                &mut progs.on_make_return,
                &mut progs.on_clone_return,
                &mut progs.on_fatal,
                &mut progs.on_sync,
                &mut progs.on_sync_stepped,
                &mut progs.on_nothing,
            ] {
                prog.set_attach_type(ProgramAttachType::TraceUprobeMulti);
            }
        }
        let skel = open.load().map_err(explain_load_error)?;
        for (i, p) in sync_plan.probes.iter().enumerate() {
            skel.maps
                .sync_sites
                .update(
                    &(i as u32).to_ne_bytes(),
                    &sync_site_bytes(p),
                    MapFlags::ANY,
                )
                .context("cannot fill the sync site table")?;
        }
        Ok(Probes {
            skel,
            multi_links,
            links: Vec::new(),
            sync_plan,
            planned: Vec::new(),
            target: None,
            run_stats: None,
            detaching: None,
        })
    }

    /// Whether the inlined synchronisation of the binary could be found (DWARF): without it,
    /// locked map accesses cannot be told from races.
    pub fn sync_plan_inlined_known(&self) -> bool {
        self.sync_plan.inlined_known
    }

    /// The synchronisation the probes cannot see in this binary (see [`SyncPlan`]).
    pub fn unobservable_sync(&self) -> &[String] {
        &self.sync_plan.unobservable
    }

    /// Attaches the uprobes for map operations (placed by `policy`), map creation, the
    /// runtime's fatal error and synchronisation to `binary`, for process `pid` only. `exe`
    /// must name the same file (`/proc/PID/exe` works even if it was replaced on disk).
    pub fn attach(
        &mut self,
        binary: &GoBinary,
        exe: &Path,
        pid: i32,
        policy: SitePolicy,
    ) -> Result<()> {
        let mut sites = Vec::new();
        let plan = binary.map_probe_plan();
        if plan.is_empty() {
            anyhow::bail!(
                "{} has no map operations to probe (no runtime map entry points were linked in)",
                binary.path().display()
            );
        }
        for mut probe in plan {
            if policy == SitePolicy::FunctionEntry {
                probe.site = entry_site(binary, &probe.function)?;
            }
            if probe.skip.is_some() || policy == SitePolicy::Calls {
                continue;
            }
            let key_mode = KeyMode::for_variant(probe.op, probe.variant);
            let cookie = event::cookie(probe.op, key_mode);
            let placed = if probe.op == MapOp::Make {
                // The new map is known only when makemap returns: probe its RET instructions
                // (never a uretprobe: those crash Go).
                binary.return_sites(&probe.function)?
            } else {
                vec![probe.site]
            };
            sites.extend(placed.into_iter().map(|site| PlannedSite {
                program: program_for(probe.op, probe.variant),
                function: probe.function.name.clone(),
                site,
                cookie,
            }));
        }
        if policy == SitePolicy::Calls {
            sites.extend(binary.map_call_sites().into_iter().map(|call| {
                let key_mode = KeyMode::for_variant(call.op, call.variant);
                let after_call = call.op == MapOp::Make;
                PlannedSite {
                    program: program_for(call.op, call.variant),
                    function: format!("{} in {}", call.callee.name, call.caller),
                    cookie: event::call_cookie(call.op, key_mode, call.rel32(), after_call),
                    site: call.site,
                }
            }));
        }
        for f in RUNTIME_FATAL
            .iter()
            .filter_map(|name| binary.function(name))
        {
            sites.push(PlannedSite {
                program: BpfProgram::Fatal,
                site: binary.probe_site(&f)?,
                function: f.name,
                cookie: 0,
            });
        }
        if policy == SitePolicy::PlannedEmpty {
            for site in &mut sites {
                site.program = BpfProgram::Nothing;
            }
        }
        if matches!(policy, SitePolicy::Calls | SitePolicy::Planned) {
            // Happens-before edges for the race detector; the cookie indexes sync_sites.
            for (i, p) in self.sync_plan.probes.iter().enumerate() {
                sites.push(PlannedSite {
                    program: if p.site.emulated {
                        BpfProgram::Sync
                    } else {
                        BpfProgram::SyncStepped
                    },
                    function: p.location(),
                    site: p.site.clone(),
                    cookie: i as u64,
                });
            }
        }
        // A probe off an instruction boundary would corrupt the target's code: nothing goes
        // in unless every site checks out against the code.
        binary
            .check_probe_sites(sites.iter().map(|s| &s.site))
            .context("nothing was attached")?;
        self.attach_sites(&sites, exe, pid)?;
        self.planned.extend(sites);
        self.target = Some((exe.to_path_buf(), pid));
        Ok(())
    }

    /// Attaches `sites`, the synchronisation ones first (see [`Probes::set_sampled_probes`]).
    fn attach_sites(&mut self, sites: &[PlannedSite], exe: &Path, pid: i32) -> Result<()> {
        let (sync, rest): (Vec<PlannedSite>, Vec<PlannedSite>) =
            sites.iter().cloned().partition(|s| s.program.is_sync());
        if !sync.is_empty() {
            self.attach_group(&sync, exe, pid)?;
            // Goroutines created before goroutine creation was probed went unseen: a goid
            // cached before now may be stale.
            self.new_goid_epoch();
        }
        self.attach_group(&rest, exe, pid)
    }

    fn attach_group(&mut self, sites: &[PlannedSite], exe: &Path, pid: i32) -> Result<()> {
        if self.multi_links {
            self.attach_multi(sites, exe, pid)
        } else {
            sites
                .iter()
                .try_for_each(|site| self.attach_single(site, exe, pid))
        }
    }

    /// Switches the map-operation and synchronisation probes off (`false`) or back on (maps
    /// made meanwhile are told apart by their seeds). Switching off goes on in the
    /// background, since removing probes waits out RCU grace periods (tens of ms) in which
    /// they still record: the caller keeps reading the ring buffer meanwhile, and
    /// [`Probes::sampled_probes_settled`] says when all they recorded is in it. Switching on
    /// waits for that first.
    ///
    /// Synchronisation is watched over the whole time map accesses are: its probes go on
    /// before the map-access probes and come off after them, so no access is judged without
    /// the edges that order it.
    pub fn set_sampled_probes(&mut self, on: bool) -> Result<()> {
        if on == self.sampled_probes_on() {
            return Ok(());
        }
        if !on {
            let (sampled, kept) = std::mem::take(&mut self.links)
                .into_iter()
                .partition(|(p, _)| p.is_sampled());
            self.links = kept;
            let (sync, maps): (Vec<_>, Vec<_>) =
                sampled.into_iter().partition(|(p, _)| p.is_sync());
            self.detaching = Some(std::thread::spawn(move || {
                detach_all(maps);
                detach_all(sync);
            }));
            return Ok(());
        }
        self.wait_detached();
        let Some((exe, pid)) = self.target.clone() else {
            return Ok(());
        };
        let sites: Vec<PlannedSite> = self
            .planned
            .iter()
            .filter(|s| s.program.is_sampled())
            .cloned()
            .collect();
        self.attach_sites(&sites, &exe, pid)
    }

    /// Makes the programs read every goid afresh.
    fn new_goid_epoch(&mut self) {
        if let Some(bss) = self.skel.maps.bss_data.as_deref_mut() {
            // SAFETY: an aligned u64 in the BPF object's mapped data, which the programs
            // also change atomically.
            let epoch = unsafe { AtomicU64::from_ptr(&mut bss.g_epoch) };
            epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether the map-access and synchronisation probes are on: false from the moment they
    /// start coming off (see [`Probes::sampled_probes_settled`]).
    pub fn sampled_probes_on(&self) -> bool {
        self.links.iter().any(|(p, _)| p.is_sampled())
    }

    /// Whether the probes last switched off have finished: everything they recorded is in the
    /// ring buffer.
    pub fn sampled_probes_settled(&self) -> bool {
        self.detaching.as_ref().is_none_or(|d| d.is_finished())
    }

    fn wait_detached(&mut self) {
        if let Some(detaching) = self.detaching.take() {
            // Dropping links does not panic; if it did, the links are gone all the same.
            let _ = detaching.join();
        }
    }

    /// One uprobe-multi link per program for all its sites. Removing a uprobe waits out an
    /// RCU grace period (~80 ms here), and the kernel does removals one at a time; a multi link
    /// waits once for all its uprobes, so detaching takes six waits instead of one per site.
    fn attach_multi(&mut self, sites: &[PlannedSite], exe: &Path, pid: i32) -> Result<()> {
        let mut programs: Vec<BpfProgram> = sites.iter().map(|s| s.program).collect();
        programs.sort();
        programs.dedup();
        for program in programs {
            let group: Vec<&PlannedSite> = sites.iter().filter(|s| s.program == program).collect();
            let opts = UprobeMultiOpts {
                offsets: group.iter().map(|s| s.site.file_offset as usize).collect(),
                cookies: group.iter().map(|s| s.cookie).collect(),
                ..Default::default()
            };
            let link = self
                .program(program)
                .attach_uprobe_multi_with_opts(pid, exe, "", opts)
                .with_context(|| {
                    let names: Vec<&str> = group.iter().map(|s| s.function.as_str()).collect();
                    format!("cannot attach uprobes to {}", names.join(", "))
                })?;
            self.links.push((program, link));
        }
        Ok(())
    }

    fn attach_single(&mut self, s: &PlannedSite, exe: &Path, pid: i32) -> Result<()> {
        let opts = UprobeOpts {
            cookie: s.cookie,
            ..Default::default()
        };
        let link = self
            .program(s.program)
            .attach_uprobe_with_opts(pid, exe, s.site.file_offset as usize, opts)
            .with_context(|| {
                format!(
                    "cannot attach a uprobe to {} at {:#x}",
                    s.function, s.site.addr
                )
            })?;
        self.links.push((s.program, link));
        Ok(())
    }

    fn program(&self, program: BpfProgram) -> &libbpf_rs::ProgramMut<'static> {
        let progs = &self.skel.progs;
        match program {
            BpfProgram::Read => &progs.on_read,
            BpfProgram::Write => &progs.on_write,
            BpfProgram::IterStart => &progs.on_iter_start,
            BpfProgram::IterNext => &progs.on_iter_next,
            BpfProgram::MakeReturn => &progs.on_make_return,
            BpfProgram::CloneReturn => &progs.on_clone_return,
            BpfProgram::Fatal => &progs.on_fatal,
            BpfProgram::Sync => &progs.on_sync,
            BpfProgram::SyncStepped => &progs.on_sync_stepped,
            BpfProgram::Nothing => &progs.on_nothing,
        }
    }

    /// Removes every uprobe; the target runs on as if never watched.
    pub fn detach(&mut self) {
        detach_all(std::mem::take(&mut self.links));
        self.wait_detached();
    }

    /// How many probes were attached, and how many of them on instructions the kernel
    /// emulates (cheap) rather than single-steps (also after [`Probes::detach`]).
    pub fn attached_count(&self) -> (usize, usize) {
        let emulated = self.planned.iter().filter(|p| p.site.emulated).count();
        (self.planned.len(), emulated)
    }

    /// A reader of this object's event ring buffer.
    pub fn reader(&self) -> Result<EventReader> {
        EventReader::new(&self.skel.maps.events)
    }

    /// Per-op counts and drops so far, summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        read_counters(&self.skel.maps.cpu_states)
    }

    /// A reader of the counters that lives apart from these probes (the metrics hold one).
    pub fn counter_reader(&self) -> Result<CounterReader> {
        MapHandle::try_from(&self.skel.maps.cpu_states)
            .map(CounterReader)
            .context("cannot open the BPF per-CPU state")
    }
}

/// Reads the BPF counters through its own handle on their map.
pub struct CounterReader(MapHandle);

impl CounterReader {
    /// Per-op counts and drops so far, summed over CPUs.
    pub fn read(&self) -> Result<Counters> {
        read_counters(&self.0)
    }
}

/// Sums `struct cpu_state` (event.h) over CPUs.
/// Detaches `links` all at once: each detach waits out an RCU grace period (tens of ms here)
/// for its programs still running to finish, and the waits overlap.
fn detach_all(links: Vec<(BpfProgram, Link)>) {
    std::thread::scope(|s| {
        for link in links {
            s.spawn(move || drop(link));
        }
    });
}

fn read_counters(cpu_states: &dyn MapCore) -> Result<Counters> {
    let per_cpu = cpu_states
        .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
        .context("cannot read the BPF per-CPU state")?
        .unwrap_or_default();
    let mut counters = Counters::default();
    for state in &per_cpu {
        let word = |offset: usize| {
            state
                .get(offset..offset + 8)
                .map_or(0, |b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
        };
        for (i, slot) in counters.ops.iter_mut().enumerate() {
            *slot += word(layout::CPU_STATE_OPS + 8 * i);
        }
        counters.drops += word(layout::CPU_STATE_DROPS);
        counters.sync += word(layout::CPU_STATE_SYNC);
    }
    Ok(counters)
}

fn explain_load_error(e: libbpf_rs::Error) -> anyhow::Error {
    let hint = if unsafe { libc::geteuid() } != 0 {
        " (mapwatch needs root, or CAP_BPF and CAP_PERFMON, to load eBPF programs)"
    } else {
        ""
    };
    anyhow!("cannot load the BPF programs: {e}{hint}")
}

//! The happens-before sources a race detector needs, and where to probe each in a binary.
//!
//! Real calls (channel operations, `WaitGroup`, `RWMutex.Lock/Unlock`, `atomic.Value.Store`,
//! goroutine creation and exit) are probed after their stack check like the map entry points.
//! Operations the compiler inlines (`Mutex.Lock/Unlock`, `RWMutex.RLock/RUnlock`, `Once.Do`'s
//! fast path, `atomic.Value.Load`) are found through DWARF's inlined-subroutine records and
//! probed inside their caller, the object's address recovered from the code (`syncsite`).

use std::fmt;

use crate::prologue::{self, DirectCall};
use crate::syncsite::{FunctionCode, KeyInstruction, ObjectAddr, Reg};
use crate::{Function, GoBinary, InspectError, Placement, ProbeSite};

/// A synchronisation operation, as carried in a BPF event's op byte (map operations use
/// 1-7; these start at 16).
///
/// ```
/// use gotarget::SyncKind;
/// assert_eq!(SyncKind::from_u8(SyncKind::MutexUnlock as u8), Some(SyncKind::MutexUnlock));
/// assert_eq!(SyncKind::from_u8(3), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SyncKind {
    /// A goroutine was created (`newproc1` returned, before the goroutine can run): parent
    /// and child.
    GoStart = 16,
    /// A goroutine is exiting (`goexit1`).
    GoExit = 17,
    /// A channel send: inside `chansend` with the channel locked (its state read there), or
    /// at the entry of `chansend1` / `selectnbsend`.
    ChanSend = 18,
    /// A channel receive: inside `chanrecv` with the channel locked (its state read there), or
    /// at the entry of `chanrecv1/2` / `selectnbrecv`.
    ChanRecv = 19,
    /// `close(c)`.
    ChanClose = 20,
    /// One channel of a `select` (which case runs is not known at entry).
    Select = 21,
    /// `sync.Mutex.Lock` (inlined fast path, or the out-of-line method).
    MutexLock = 22,
    /// `sync.Mutex.Unlock`.
    MutexUnlock = 23,
    /// `sync.RWMutex.RLock`.
    RLock = 24,
    /// `sync.RWMutex.RUnlock`.
    RUnlock = 25,
    /// `sync.RWMutex.Lock`.
    RwLock = 26,
    /// `sync.RWMutex.Unlock`.
    RwUnlock = 27,
    /// `sync.WaitGroup.Add` (and `Done`, which calls it).
    WgAdd = 28,
    /// `sync.WaitGroup.Wait`.
    WgWait = 29,
    /// `sync.Once.Do`: the object is the Once's mutex, which `doSlow` unlocks after `f` ran.
    OnceDo = 30,
    /// `atomic.Value.Load`.
    ValueLoad = 31,
    /// `atomic.Value.Store`.
    ValueStore = 32,
    /// `atomic.Value.Swap` / `CompareAndSwap`: a store that also reads.
    ValueSwap = 33,
    /// A sender hands its value straight to a waiting receiver (`runtime.send`, with the
    /// channel locked): on a buffered channel the slot indices then stop counting operations.
    ChanHandoff = 34,
    /// The entry of a non-blocking receive (`selectnbrecv`) whose locked probe reports the
    /// receive itself: it can still find the channel closed without taking the lock.
    ChanPoll = 35,
    /// An atomic write whose loads cannot be observed: `sync/atomic`'s function forms
    /// (`AddInt64`, `StoreInt32`, `CompareAndSwapUint32`, ...) are compiler intrinsics, and
    /// their `Load*` counterparts plain moves with nothing to probe. It releases as a
    /// `ValueSwap` does, and also to every later access of every goroutine (which may have
    /// loaded it unseen).
    AtomicUnpaired = 36,
    /// A coroutine switch (`coroswitch`, `coroexit`: `iter.Pull`'s next, yield and stop),
    /// seen in `coroswitch_m`, which does them all: what the switching goroutine did happens
    /// before what the goroutine it resumes does next (that one is parked until then).
    CoroSwitch = 37,
}

impl SyncKind {
    /// Every kind, in discriminant order.
    pub const ALL: [SyncKind; 22] = [
        SyncKind::GoStart,
        SyncKind::GoExit,
        SyncKind::ChanSend,
        SyncKind::ChanRecv,
        SyncKind::ChanClose,
        SyncKind::Select,
        SyncKind::MutexLock,
        SyncKind::MutexUnlock,
        SyncKind::RLock,
        SyncKind::RUnlock,
        SyncKind::RwLock,
        SyncKind::RwUnlock,
        SyncKind::WgAdd,
        SyncKind::WgWait,
        SyncKind::OnceDo,
        SyncKind::ValueLoad,
        SyncKind::ValueStore,
        SyncKind::ValueSwap,
        SyncKind::ChanHandoff,
        SyncKind::ChanPoll,
        SyncKind::AtomicUnpaired,
        SyncKind::CoroSwitch,
    ];

    /// The kind with discriminant `v`.
    pub fn from_u8(v: u8) -> Option<SyncKind> {
        SyncKind::ALL.into_iter().find(|k| *k as u8 == v)
    }
}

impl fmt::Display for SyncKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where the probe finds the operation's object (channel, lock, WaitGroup, Value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncObject {
    /// An address computed from registers or memory at the probe.
    At(ObjectAddr),
    /// A channel whose lock the code holds at the probe: its address, and its state (buffer
    /// count, capacity, slot indices, waiters), which is exact there, read with it.
    LockedChannel(ObjectAddr),
    /// `selectgo`'s cases: the `scase` array in AX, `nsends` in DI, `nrecvs` in SI.
    SelectCases,
    /// A new goroutine's `g` (its goid and parentGoid) in a register: `newproc1`'s result.
    NewGoroutine(Reg),
    /// A coroutine switch in `coroswitch_m(gp)`, on the system stack: the switching
    /// goroutine's `g` in register `g`, the coroutine at `g + coroarg`, and the goroutine it
    /// resumes its `gp` (the first field of `runtime.coro` in Go 1.22-1.27).
    CoroutineSwitch {
        /// Holds the switching goroutine's `g`.
        g: Reg,
        /// `runtime.g.coroarg`.
        coroarg: u32,
    },
    /// No object (goroutine exit).
    None,
}

/// One probe for a synchronisation operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncProbe {
    /// What it observes.
    pub kind: SyncKind,
    /// The function probed (a real call) or holding the inlined code.
    pub function: String,
    /// Source position of an inlined operation (`file:line`), empty for real calls.
    pub call_site: String,
    /// Where to attach.
    pub site: ProbeSite,
    /// How to find the object.
    pub object: SyncObject,
}

impl SyncProbe {
    /// The function, and for an inlined operation its source position: `main.bump main.go:17`.
    pub fn location(&self) -> String {
        if self.call_site.is_empty() {
            self.function.clone()
        } else {
            format!("{} {}", self.function, self.call_site)
        }
    }
}

/// The sync probes of a binary, and what could not be observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Probes to attach.
    pub probes: Vec<SyncProbe>,
    /// Synchronisation mapwatch cannot see in this binary, one sentence each. A race detector
    /// that misses an edge reports false races; the caller must lean toward silence (the
    /// plan turns each such site into a probe on an unknown object when it can, which
    /// synchronises with everything).
    pub unobservable: Vec<String>,
    /// Whether DWARF listed the inlined operations. Without it (stripped binaries) every
    /// `Mutex` is invisible, and a race detector would mistake locked accesses for races.
    pub inlined_known: bool,
}

/// Real calls: (function, kind, register holding the object).
const CALLS: &[(&str, SyncKind, Reg)] = &[
    ("runtime.chansend1", SyncKind::ChanSend, Reg::Rax),
    ("runtime.chanrecv1", SyncKind::ChanRecv, Reg::Rax),
    ("runtime.chanrecv2", SyncKind::ChanRecv, Reg::Rax),
    ("runtime.closechan", SyncKind::ChanClose, Reg::Rax),
    ("runtime.selectnbsend", SyncKind::ChanSend, Reg::Rax),
    // selectnbrecv(elem, c)
    ("runtime.selectnbrecv", SyncKind::ChanRecv, Reg::Rbx),
    ("sync.(*WaitGroup).Add", SyncKind::WgAdd, Reg::Rax),
    ("sync.(*WaitGroup).Wait", SyncKind::WgWait, Reg::Rax),
    ("sync.(*RWMutex).Lock", SyncKind::RwLock, Reg::Rax),
    ("sync.(*RWMutex).Unlock", SyncKind::RwUnlock, Reg::Rax),
    ("sync/atomic.(*Value).Store", SyncKind::ValueStore, Reg::Rax),
    // atomic.Pointer[T]'s writes and the unsafe.Pointer function forms are real calls (they
    // carry a write barrier); their loads are inlined (typed) or plain moves (function form).
    ("sync/atomic.StorePointer", SyncKind::ValueSwap, Reg::Rax),
    ("sync/atomic.SwapPointer", SyncKind::ValueSwap, Reg::Rax),
    (
        "sync/atomic.CompareAndSwapPointer",
        SyncKind::ValueSwap,
        Reg::Rax,
    ),
    ("sync/atomic.(*Value).Swap", SyncKind::ValueSwap, Reg::Rax),
    // What is Put in a sync.Pool is ordered before a later Get from it (-race orders it per
    // item; here per pool: more order than Go promises, never less).
    ("sync.(*Pool).Put", SyncKind::ValueStore, Reg::Rax),
    ("sync.(*Pool).Get", SyncKind::ValueLoad, Reg::Rax),
    (
        "sync/atomic.(*Value).CompareAndSwap",
        SyncKind::ValueSwap,
        Reg::Rax,
    ),
];

/// Calls that synchronise through everything (their object is not in a register): arming a
/// `time.AfterFunc` callback releases what its caller did to everything, and the callback's
/// runner (`time.goFunc`, which starts its goroutine) acquires everything; neither knows the
/// other's timer.
const EVERYTHING_CALLS: &[(&str, SyncKind)] = &[
    ("time.AfterFunc", SyncKind::ValueStore),
    ("time.(*Timer).Reset", SyncKind::ValueStore),
    ("time.goFunc", SyncKind::ValueLoad),
];

/// `sync.Map`'s methods: (method, kind). Go 1.21-1.23 keep plain maps behind atomic pointers
/// (lock-free `Load` hits), Go 1.24+ a hash trie built on atomics; neither shows a lock
/// mapwatch can see on every path, so each method is an edge on the whole `sync.Map`: stores
/// release, loads acquire (all keys at once: more order than Go promises, never less).
/// 1.24+ inlines `sync.Map`'s methods into calls of `internal/sync.HashTrieMap`'s, whose
/// generic (shape) instantiations take the receiver in AX like any method.
const SYNC_MAP_METHODS: &[(&str, SyncKind)] = &[
    ("Load", SyncKind::ValueLoad),
    ("Range", SyncKind::ValueLoad),
    ("All", SyncKind::ValueLoad),
    ("LoadOrStore", SyncKind::ValueSwap),
    ("LoadAndDelete", SyncKind::ValueSwap),
    ("Swap", SyncKind::ValueSwap),
    ("CompareAndSwap", SyncKind::ValueSwap),
    ("CompareAndDelete", SyncKind::ValueSwap),
    ("Store", SyncKind::ValueSwap),
    ("Delete", SyncKind::ValueSwap),
    ("Clear", SyncKind::ValueSwap),
];

/// The `sync.Map` method probed for function `name`, if it is one.
fn sync_map_method(name: &str) -> Option<SyncKind> {
    let method = name.strip_prefix("sync.(*Map).").or_else(|| {
        name.strip_prefix("internal/sync.(*HashTrieMap[")
            .and_then(|rest| rest.rsplit_once("]).").map(|(_, m)| m))
    })?;
    SYNC_MAP_METHODS
        .iter()
        .find(|(m, _)| *m == method)
        .map(|&(_, k)| k)
}

/// Inlined operations: (function, kind, key instruction).
const INLINED: &[(&str, SyncKind, KeyInstruction)] = &[
    (
        "sync.(*Mutex).Lock",
        SyncKind::MutexLock,
        KeyInstruction::LockCmpxchg,
    ),
    (
        "sync.(*Mutex).Unlock",
        SyncKind::MutexUnlock,
        KeyInstruction::LockXadd,
    ),
    (
        "sync.(*RWMutex).RLock",
        SyncKind::RLock,
        KeyInstruction::LockXadd,
    ),
    (
        "sync.(*RWMutex).RUnlock",
        SyncKind::RUnlock,
        KeyInstruction::LockXadd,
    ),
    (
        "sync.(*Once).Do",
        SyncKind::OnceDo,
        KeyInstruction::FirstLoad,
    ),
    (
        "sync/atomic.(*Value).Load",
        SyncKind::ValueLoad,
        KeyInstruction::FirstLoad,
    ),
];

/// Channel operations probed inside, once the channel's lock is held (`lock(&c.lock)` returned),
/// where the buffer's state says exactly which slot the operation uses. At the entry points
/// (`chansend1`, ...) the lock is not held: under contention the indices read there can be
/// stale, and a wrong slot would drop an edge (a false alarm).
const LOCKED_CHANNEL_OPS: &[(&str, SyncKind)] = &[
    ("runtime.chansend", SyncKind::ChanSend),
    ("runtime.chanrecv", SyncKind::ChanRecv),
];

/// Entry points that call the [`LOCKED_CHANNEL_OPS`]: not probed when those are. A
/// non-blocking send (`selectnbsend`) that fails without the lock synchronises with nothing.
const CHANNEL_ENTRIES: &[&str] = &[
    "runtime.chansend1",
    "runtime.chanrecv1",
    "runtime.chanrecv2",
    "runtime.selectnbsend",
    "runtime.selectnbrecv",
];

/// A non-blocking receive can find the channel closed (and return) without taking the lock:
/// with the locked probes, its entry is still probed, as a [`SyncKind::ChanPoll`].
const POLLING_RECEIVE: &str = "runtime.selectnbrecv";

/// The runtime's lock: `lock` is inlined into a call of `lock2` (of `lockWithRank` in
/// builds with static lock ranking).
const RUNTIME_LOCKS: &[&str] = &["runtime.lock2", "runtime.lockWithRank", "runtime.lock"];

/// Layout facts (DWARF, else these values, the same in Go 1.21-1.27).
const RWMUTEX_READER_COUNT: u64 = 16;
const ONCE_DONE: u64 = 0;
const ONCE_MUTEX: u64 = 4;
/// `sync.(*Once).doSlow` and the deferred calls it runs (`...deferwrap1`, `...func1`).
const ONCE_DO_SLOW: &str = "sync.(*Once).doSlow";

impl GoBinary {
    /// Every synchronisation operation to probe for happens-before race detection.
    ///
    /// ```no_run
    /// # let bin = gotarget::GoBinary::open(std::path::Path::new("./server")).unwrap();
    /// let plan = bin.sync_probe_plan();
    /// for p in &plan.probes {
    ///     println!("{} in {} {} at {:#x}", p.kind, p.function, p.call_site, p.site.addr);
    /// }
    /// for why in &plan.unobservable {
    ///     eprintln!("unobservable: {why}");
    /// }
    /// ```
    pub fn sync_probe_plan(&self) -> SyncPlan {
        let mut plan = SyncPlan::default();
        let register = |base| {
            SyncObject::At(ObjectAddr::Registers {
                base,
                index: None,
                disp: 0,
            })
        };
        let channels = self.locked_channel_probes();
        let locked = channels.is_some();
        // Real calls, probed after their stack check.
        let mut calls: Vec<(Function, SyncKind, SyncObject)> = CALLS
            .iter()
            .filter_map(|&(name, kind, reg)| {
                let kind = match (locked, name) {
                    (true, POLLING_RECEIVE) => SyncKind::ChanPoll,
                    (true, _) if CHANNEL_ENTRIES.contains(&name) => return None,
                    _ => kind,
                };
                Some((self.function(name)?, kind, register(reg)))
            })
            .collect();
        plan.probes.extend(channels.into_iter().flatten());
        calls.extend(
            EVERYTHING_CALLS
                .iter()
                .filter_map(|&(name, kind)| Some((self.function(name)?, kind)))
                .map(|(f, kind)| (f, kind, SyncObject::At(ObjectAddr::Unknown))),
        );
        for f in self.functions_where(|n| sync_map_method(n).is_some()) {
            if let Some(kind) = sync_map_method(&f.name) {
                calls.push((f, kind, register(Reg::Rax)));
            }
        }
        calls.extend(
            self.function("runtime.goexit1")
                .map(|f| (f, SyncKind::GoExit, SyncObject::None)),
        );
        if let Some(f) = self.function("runtime.coroswitch_m") {
            match self.runtime_offsets().coroarg {
                Some(coroarg) => calls.push((
                    f,
                    SyncKind::CoroSwitch,
                    SyncObject::CoroutineSwitch {
                        g: Reg::Rax,
                        coroarg,
                    },
                )),
                None => plan
                    .unobservable
                    .push("coroutine switches: no offset for runtime.g.coroarg".into()),
            }
        }
        calls.extend(
            self.function("runtime.selectgo")
                .map(|f| (f, SyncKind::Select, SyncObject::SelectCases)),
        );
        for (f, kind, object) in calls {
            match self.probe_site(&f) {
                Ok(site) => plan.probes.push(SyncProbe {
                    kind,
                    function: f.name,
                    call_site: String::new(),
                    site,
                    object,
                }),
                Err(e) => plan.unobservable.push(format!("{}: {e}", f.name)),
            }
        }
        match self.function("runtime.newproc1") {
            Some(f) => match self.goroutine_start_sites(&f) {
                Ok(sites) => plan
                    .probes
                    .extend(sites.into_iter().map(|(function, site, reg)| SyncProbe {
                        kind: SyncKind::GoStart,
                        function,
                        call_site: String::new(),
                        site,
                        object: SyncObject::NewGoroutine(reg),
                    })),
                Err(e) => plan.unobservable.push(format!("goroutine creation: {e}")),
            },
            None => plan
                .unobservable
                .push("goroutine creation: runtime.newproc1 not found".into()),
        }
        self.plan_inlined(&mut plan);
        plan
    }

    /// Where goroutine creations are probed, with the register holding the new `g` there:
    /// after `newproc1` has given it its goid, before it can run. Each call of `newproc1`
    /// is followed: in `newproc`'s closure the code runs straight into `runqput(pp, newg,
    /// next)`, a `call` the kernel emulates, the new g its second argument (BX); the other
    /// callers (coroutines, debugger calls, synctest: rare) are probed on the instruction
    /// the call returns to, the new g in AX. If a call fits neither (its return address is
    /// also a jump target), `newproc1`'s returns are probed instead: single-stepped, about
    /// ten times the cost of an emulated hit, once per goroutine.
    fn goroutine_start_sites(
        &self,
        newproc1: &Function,
    ) -> Result<Vec<(String, ProbeSite, Reg)>, InspectError> {
        /// Instructions between `newproc1`'s return and the `runqput` call (five in Go
        /// 1.21-1.27: find the P, move the arguments).
        const TO_RUNQPUT: usize = 12;
        let runqput = self.function("runtime.runqput").map(|f| f.addr);
        let mut sites = Vec::new();
        for caller in self.functions_where(|name| name.starts_with("runtime.")) {
            let Some(code) = self.code(&caller) else {
                continue;
            };
            let calls: Vec<DirectCall> = prologue::direct_calls(code, caller.addr)
                .into_iter()
                .filter(|c| c.target == newproc1.addr)
                .collect();
            if calls.is_empty() {
                continue;
            }
            let jump_targets = prologue::jump_targets(code, caller.addr);
            for call in calls {
                let Some(after) = call.at.checked_add(DirectCall::LEN) else {
                    continue;
                };
                let entered_only_by_the_call =
                    |addrs: &[u64]| !addrs.iter().any(|a| jump_targets.contains(a));
                let (addr, placement, instruction, emulated, reg) =
                    match prologue::straight_to_call(code, caller.addr, after, TO_RUNQPUT) {
                        Some((before, next))
                            if Some(next.target) == runqput
                                && entered_only_by_the_call(&before)
                                && !jump_targets.contains(&next.at) =>
                        {
                            let placement = Placement::Call {
                                callee: next.target,
                            };
                            let text = "call runtime.runqput".to_string();
                            (next.at, placement, text, true, Reg::Rbx)
                        }
                        _ if !jump_targets.contains(&after) => {
                            let Some(ins) = prologue::instruction_at(code, caller.addr, after)
                            else {
                                return self.newproc1_returns(newproc1);
                            };
                            let placement = Placement::AfterCall {
                                callee: newproc1.addr,
                            };
                            let emulated = crate::syncsite::is_emulated(&ins);
                            (after, placement, prologue::format(&ins), emulated, Reg::Rax)
                        }
                        _ => return self.newproc1_returns(newproc1),
                    };
                let file_offset =
                    self.file_offset(addr)
                        .ok_or_else(|| InspectError::Malformed {
                            path: self.path().to_path_buf(),
                            reason: format!("{addr:#x} is not in a loadable segment"),
                        })?;
                let site = ProbeSite {
                    addr,
                    file_offset,
                    placement,
                    instruction,
                    emulated,
                };
                sites.push((caller.name.clone(), site, reg));
            }
        }
        if sites.is_empty() {
            return self.newproc1_returns(newproc1);
        }
        Ok(sites)
    }

    /// `newproc1`'s returns, the new g in AX.
    fn newproc1_returns(
        &self,
        newproc1: &Function,
    ) -> Result<Vec<(String, ProbeSite, Reg)>, InspectError> {
        Ok(self
            .return_sites(newproc1)?
            .into_iter()
            .map(|site| (newproc1.name.clone(), site, Reg::Rax))
            .collect())
    }

    /// Probes inside `chansend` and `chanrecv` once they hold the channel's lock, and on
    /// `runtime.send` (a hand-off to a waiting receiver, also from `selectgo`). `None` unless
    /// every one has a site: then the entry points are probed instead, and the detector
    /// orders every operation on a channel after every earlier one (more order than Go
    /// promises, never less).
    fn locked_channel_probes(&self) -> Option<Vec<SyncProbe>> {
        let locks: Vec<u64> = RUNTIME_LOCKS
            .iter()
            .filter_map(|name| Some(self.function(name)?.addr))
            .collect();
        let closed = i64::from(self.runtime_offsets().chan.closed);
        let mut probes = Vec::new();
        for &(name, kind) in LOCKED_CHANNEL_OPS {
            let f = self.function(name)?;
            let placed = FunctionCode::decode(self.code(&f)?, f.addr).after_lock(&locks, closed)?;
            probes.push(SyncProbe {
                kind,
                function: f.name,
                call_site: String::new(),
                site: ProbeSite {
                    addr: placed.addr,
                    file_offset: self.file_offset(placed.addr)?,
                    placement: Placement::Locked {
                        read_addr: placed.key_addr,
                    },
                    instruction: placed.instruction,
                    emulated: placed.emulated,
                },
                object: SyncObject::LockedChannel(placed.object),
            });
        }
        let send = self.function("runtime.send")?;
        probes.push(SyncProbe {
            kind: SyncKind::ChanHandoff,
            site: self.probe_site(&send).ok()?,
            function: send.name,
            call_site: String::new(),
            object: SyncObject::LockedChannel(ObjectAddr::Registers {
                base: Reg::Rax,
                index: None,
                disp: 0,
            }),
        });
        Some(probes)
    }

    /// Inlined operations (and their out-of-line copies, when the method is also called
    /// through an interface or method value).
    fn plan_inlined(&self, plan: &mut SyncPlan) {
        if !self.has_dwarf_inlining() {
            plan.unobservable.push(
                "no DWARF: inlined sync.Mutex, RWMutex.RLock, Once and atomic.Value.Load \
                 sites cannot be found, so races cannot be told from synchronised accesses"
                    .into(),
            );
            return;
        }
        plan.inlined_known = true;
        let member = |s: &str, m: &str, default: u64| self.struct_member(s, m).unwrap_or(default);
        let reader_count = member("sync.RWMutex", "readerCount", RWMUTEX_READER_COUNT) as i64;
        let once_adjust = member("sync.Once", "m", ONCE_MUTEX) as i64
            - member("sync.Once", "done", ONCE_DONE) as i64;
        let adjust_for = |kind| match kind {
            SyncKind::RLock | SyncKind::RUnlock => -reader_count,
            SyncKind::OnceDo => once_adjust,
            _ => 0,
        };
        // Every inlined site in one pass over DWARF: the sync operations first (they claim
        // their probe addresses before the atomics their own bodies use), then the typed
        // atomics user code calls.
        let sites =
            self.inlined_sites_where(|n| inlined_op(n).is_some() || typed_atomic(n).is_some());
        // (operation, kind, key instruction, object - key operand, code)
        let mut ops: Vec<(String, SyncKind, KeyInstruction, i64, Body)> = Vec::new();
        for (name, s) in &sites {
            if let Some((kind, key)) = inlined_op(name) {
                ops.push((name.clone(), kind, key, adjust_for(kind), Body::inlined(s)));
            }
        }
        for &(name, kind, key) in INLINED {
            if let Some(f) = self.function(name) {
                let body = Body::out_of_line(&f);
                ops.push((name.to_string(), kind, key, adjust_for(kind), body));
            }
        }
        for (name, s) in &sites {
            if let Some((kind, key)) = typed_atomic(name) {
                // User code's calls, and the method-value wrappers (`(*Bool).Load-fm`) user
                // code calls through.
                let wrapper = s.caller.strip_suffix("-fm").and_then(typed_atomic);
                if crate::is_user_function(&s.caller) || wrapper.is_some() {
                    ops.push((name.clone(), kind, key, adjust_for(kind), Body::inlined(s)));
                }
            }
        }
        for f in self.functions_where(|n| typed_atomic(n).is_some()) {
            let (kind, key) = typed_atomic(&f.name).expect("filtered");
            ops.push((f.name.clone(), kind, key, 0, Body::out_of_line(&f)));
        }
        let mut functions: Vec<(Function, FunctionCode)> = Vec::new();
        let mut taken: std::collections::HashSet<u64> =
            plan.probes.iter().map(|p| p.site.addr).collect();
        // Code an operation above covers: its atomic instructions are that operation's.
        let mut claimed: Vec<std::ops::Range<u64>> = Vec::new();
        // Once.Do's winner stores `done` before it unlocks `m`: a loser that sees `done` set
        // takes the fast path without waiting for the unlock, so the store is the release.
        for f in self.functions_where(|n| n.starts_with(ONCE_DO_SLOW)) {
            let Some(bytes) = self.code(&f) else { continue };
            let code = FunctionCode::decode(bytes, f.addr);
            for ip in code.key_instructions(KeyInstruction::Atomic) {
                if code.is_store(ip) {
                    let body = Body::out_of_line(&f).at(ip);
                    let name = format!("sync.Once's done store in {}", f.name);
                    ops.push((
                        name,
                        SyncKind::MutexUnlock,
                        KeyInstruction::Atomic,
                        once_adjust,
                        body,
                    ));
                }
            }
        }
        ops.extend(self.unpaired_atomics(&sites, &mut functions));
        for (name, kind, key, adjust, body) in ops {
            let Body {
                mut range,
                call_site,
                call,
            } = body;
            let Some(f) = self.function_at(range.start) else {
                continue;
            };
            // The edge of a sync call probed at its own entry (`RWMutex.Lock`'s inner
            // `Mutex.Lock`, say) is that probe's: the inner operation adds nothing.
            if CALLS.iter().any(|&(call, _, _)| call == f.name) {
                continue;
            }
            let idx = match functions.iter().position(|(g, _)| g.addr == f.addr) {
                Some(i) => i,
                None => {
                    let Some(bytes) = self.code(&f) else { continue };
                    functions.push((f.clone(), FunctionCode::decode(bytes, f.addr)));
                    functions.len() - 1
                }
            };
            let (func, code) = &functions[idx];
            if kind == SyncKind::AtomicUnpaired && claimed.iter().any(|r| r.contains(&range.start))
            {
                continue;
            }
            if let Some((file, line)) = &call {
                if !code.has_key(range.clone(), key) {
                    if let Some(start) = self.key_on_call_line(code, range.start, key, file, *line)
                    {
                        range.start = start;
                    }
                }
            }
            claimed.push(range.clone());
            // Acquires may be probed just after their operation (see `FunctionCode::place`).
            let is_acquire = matches!(
                kind,
                SyncKind::MutexLock | SyncKind::RLock | SyncKind::ValueLoad | SyncKind::OnceDo
            );
            let Some(placed) = code
                .place(range.clone(), key, adjust, is_acquire)
                .filter(|p| !taken.contains(&p.addr))
            else {
                let why = if code.has_key(range.clone(), key) {
                    "no instruction to probe before it"
                } else {
                    "the instruction that touches it was not found"
                };
                plan.unobservable
                    .push(format!("{name} in {} {call_site}: {why}", func.name));
                continue;
            };
            taken.insert(placed.addr);
            let Some(file_offset) = self.file_offset(placed.addr) else {
                continue;
            };
            let object = if placed.object == ObjectAddr::Unknown {
                plan.unobservable.push(format!(
                        "{name} in {} {call_site}: lock address not recoverable from `{}` (treated as synchronising with everything)",
                        func.name, placed.instruction
                    ));
                ObjectAddr::Unknown
            } else {
                placed.object
            };
            plan.probes.push(SyncProbe {
                kind,
                function: func.name.clone(),
                call_site,
                site: ProbeSite {
                    addr: placed.addr,
                    file_offset,
                    placement: Placement::Inlined {
                        key_addr: placed.key_addr,
                    },
                    instruction: placed.instruction,
                    emulated: placed.emulated,
                },
                object: SyncObject::At(object),
            });
        }
        let unpaired: Vec<&SyncProbe> = plan
            .probes
            .iter()
            .filter(|p| p.kind == SyncKind::AtomicUnpaired)
            .collect();
        if let Some(first) = unpaired.first() {
            plan.unobservable.push(format!(
                "the loads of {} sync/atomic function-form write(s) in user code (e.g. {}): \
                 each is taken as ordering everything before it with every later map access",
                unpaired.len(),
                first.location()
            ));
        }
    }
}

impl GoBinary {
    /// Every atomic instruction in user code (the function forms of `sync/atomic`, compiler
    /// intrinsics with no DWARF record), each as an [`SyncKind::AtomicUnpaired`] operation on
    /// one instruction. Listed after every inlined operation, so those that sit inside one
    /// (a `Mutex.Lock`'s `lock cmpxchg`) stay that operation's.
    fn unpaired_atomics(
        &self,
        sites: &[(String, crate::InlinedSite)],
        functions: &mut Vec<(Function, FunctionCode)>,
    ) -> Vec<(String, SyncKind, KeyInstruction, i64, Body)> {
        let mut out = Vec::new();
        for f in self.functions_where(crate::is_user_function) {
            let Some(bytes) = self.code(&f) else { continue };
            let code = FunctionCode::decode(bytes, f.addr);
            let atomics = code.key_instructions(KeyInstruction::Atomic);
            if atomics.is_empty() {
                continue;
            }
            for ip in atomics {
                // An inlined typed atomic is planned from its DWARF record instead.
                if sites
                    .iter()
                    .any(|(_, s)| (s.low_pc..s.high_pc).contains(&ip))
                {
                    continue;
                }
                let frame = self.symbolize(ip).into_iter().next();
                out.push((
                    "sync/atomic".to_string(),
                    SyncKind::AtomicUnpaired,
                    KeyInstruction::Atomic,
                    0,
                    Body {
                        range: ip..ip.saturating_add(1),
                        call_site: frame
                            .map(|fr| format!("{}:{}", short_path(&fr.file), fr.line))
                            .unwrap_or_default(),
                        call: None,
                    },
                ));
            }
            if !functions.iter().any(|(g, _)| g.addr == f.addr) {
                functions.push((f, code));
            }
        }
        out
    }
}

/// The code of one inlined operation, or of the operation's out-of-line copy.
struct Body {
    /// Its addresses.
    range: std::ops::Range<u64>,
    /// `file:line` of the call it was inlined at (empty for the out-of-line copy).
    call_site: String,
    /// The call's file (full path) and line, when inlined.
    call: Option<(String, u32)>,
}

impl Body {
    /// An inlined copy: the hull of its ranges, not the exact ranges (Go 1.22 attributes the
    /// locked instruction of an inlined Lock to the caller's line, outside them).
    fn inlined(s: &crate::InlinedSite) -> Body {
        Body {
            range: s.low_pc..s.high_pc,
            call_site: format!("{}:{}", short_path(&s.call_file), s.call_line),
            call: Some((s.call_file.clone(), s.call_line)),
        }
    }

    /// The one instruction at `ip` of this code.
    fn at(self, ip: u64) -> Body {
        Body {
            range: ip..ip.saturating_add(1),
            ..self
        }
    }

    /// The operation's own function, called through an interface or a method value.
    fn out_of_line(f: &Function) -> Body {
        Body {
            range: f.addr..f.addr.saturating_add(f.size),
            call_site: String::new(),
            call: None,
        }
    }
}

/// The [`INLINED`] operation named `name`: its kind and key instruction.
fn inlined_op(name: &str) -> Option<(SyncKind, KeyInstruction)> {
    INLINED
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, kind, key)| (kind, key))
}

/// A method of one of `sync/atomic`'s typed atomics (`Bool`, `Int32` ... `Uintptr`,
/// `Pointer[T]`): a `Load` acquires the variable, every other method (`Store`, `Swap`,
/// `CompareAndSwap`, `Add`, `And`, `Or`) releases and acquires it, as the Go memory model
/// orders them. Their bodies are single atomic instructions, inlined with a DWARF record,
/// except `Pointer[T]`'s writes, which call `StorePointer` and friends ([`CALLS`]).
/// `atomic.Value` is planned apart ([`INLINED`], [`CALLS`]).
fn typed_atomic(name: &str) -> Option<(SyncKind, KeyInstruction)> {
    let rest = name.strip_prefix("sync/atomic.(*")?;
    let (ty, method) = rest.rsplit_once(").")?;
    let ty = ty.split('[').next().unwrap_or(ty);
    const TYPES: [&str; 7] = [
        "Bool", "Int32", "Int64", "Uint32", "Uint64", "Uintptr", "Pointer",
    ];
    if !TYPES.contains(&ty) {
        return None;
    }
    match method {
        "Load" => Some((SyncKind::ValueLoad, KeyInstruction::FirstLoad)),
        _ if ty == "Pointer" => None,
        "Store" | "Swap" | "CompareAndSwap" | "Add" | "And" | "Or" => {
            Some((SyncKind::ValueSwap, KeyInstruction::Atomic))
        }
        _ => None,
    }
}

impl GoBinary {
    /// A `key` instruction right before an inlined body (straight-line, at most a few
    /// instructions back) that the line table gives to the call's own line: Go 1.22 puts an
    /// inlined `RLock`'s `lock xadd` there, before the body's DWARF ranges begin.
    fn key_on_call_line(
        &self,
        code: &FunctionCode,
        body_start: u64,
        key: KeyInstruction,
        call_file: &str,
        call_line: u32,
    ) -> Option<u64> {
        let ip = code.key_before(body_start, key)?;
        let frame = self.symbolize(ip).into_iter().next()?;
        (frame.line == call_line && frame.file == call_file).then_some(ip)
    }
}

fn short_path(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_map_methods_of_both_implementations() {
        assert_eq!(
            sync_map_method("sync.(*Map).Load"),
            Some(SyncKind::ValueLoad)
        );
        assert_eq!(
            sync_map_method(
                "internal/sync.(*HashTrieMap[go.shape.interface {},go.shape.interface {}]).Swap"
            ),
            Some(SyncKind::ValueSwap)
        );
        assert_eq!(sync_map_method("sync.(*Map).missLocked"), None);
        assert_eq!(
            sync_map_method("internal/sync.(*HashTrieMap[go.shape.int,go.shape.int]).expand"),
            None
        );
    }

    #[test]
    fn kinds_round_trip_and_stay_clear_of_map_ops() {
        for k in SyncKind::ALL {
            assert_eq!(SyncKind::from_u8(k as u8), Some(k));
            assert!(crate::MapOp::from_u8(k as u8).is_none());
        }
    }
}

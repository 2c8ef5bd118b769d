//! Finding where to probe an inlined synchronisation operation and how to recover its object's
//! address there.
//!
//! `sync.(*Mutex).Lock` and friends are inlined: there is no call to probe, only a locked
//! instruction (`lock cmpxchg [rsi+8], edi`) whose memory operand is the lock. A probe on that
//! instruction is single-stepped by the kernel (~5-16 µs here); the kernel emulates `nop` and
//! `push`, and Go puts a `nop` (its inline mark) right before most inlined bodies. So this walks
//! back from the locked instruction over straight-line code to the nearest emulated instruction,
//! rewriting the address expression as it goes (`mov rsi, rax` makes `[rsi+8]` into `[rax+8]`,
//! `lea rdi, [rip+x]` makes it a fixed address, `mov rdx, [rsp+0x30]` a pointer loaded from a
//! stack slot). Where the walk cannot prove the expression, the probe stays on the instruction.

use std::collections::{HashMap, HashSet};

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfo, InstructionInfoFactory,
    Mnemonic, OpAccess, OpKind, Register,
};

/// A general-purpose register as the BPF side numbers them (`enum reg` in event.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Reg {
    Rax = 0,
    Rbx,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    Rbp,
    Rsp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
}

impl Reg {
    const ALL: [(Reg, Register); 16] = [
        (Reg::Rax, Register::RAX),
        (Reg::Rbx, Register::RBX),
        (Reg::Rcx, Register::RCX),
        (Reg::Rdx, Register::RDX),
        (Reg::Rsi, Register::RSI),
        (Reg::Rdi, Register::RDI),
        (Reg::Rbp, Register::RBP),
        (Reg::Rsp, Register::RSP),
        (Reg::R8, Register::R8),
        (Reg::R9, Register::R9),
        (Reg::R10, Register::R10),
        (Reg::R11, Register::R11),
        (Reg::R12, Register::R12),
        (Reg::R13, Register::R13),
        (Reg::R14, Register::R14),
        (Reg::R15, Register::R15),
    ];

    fn of(r: Register) -> Option<Reg> {
        let full = r.full_register();
        Reg::ALL.iter().find(|(_, x)| *x == full).map(|(g, _)| *g)
    }

    fn register(self) -> Register {
        Reg::ALL[self as usize].1
    }
}

/// How a probe recovers the address of the object a sync operation works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectAddr {
    /// `base + index * scale + disp`, from registers at the probe.
    Registers {
        /// Base register.
        base: Reg,
        /// Index register and scale, if any.
        index: Option<(Reg, u8)>,
        /// Added last.
        disp: i64,
    },
    /// A fixed address, as a distance from the probed instruction (position-independent).
    FromProbe {
        /// `object - probe address`.
        delta: i64,
    },
    /// `*(base + slot) + disp`: a pointer the code loads from memory (a stack slot) later.
    Loaded {
        /// Register holding the slot's base.
        base: Reg,
        /// Offset of the slot.
        slot: i64,
        /// Added to the loaded pointer.
        disp: i64,
    },
    /// Not recoverable: the detector treats the operation as synchronising with everything.
    Unknown,
}

impl ObjectAddr {
    fn add(self, d: i64) -> ObjectAddr {
        match self {
            ObjectAddr::Registers { base, index, disp } => ObjectAddr::Registers {
                base,
                index,
                disp: disp.wrapping_add(d),
            },
            ObjectAddr::FromProbe { delta } => ObjectAddr::FromProbe {
                delta: delta.wrapping_add(d),
            },
            ObjectAddr::Loaded { base, slot, disp } => ObjectAddr::Loaded {
                base,
                slot,
                disp: disp.wrapping_add(d),
            },
            ObjectAddr::Unknown => ObjectAddr::Unknown,
        }
    }
}

/// Which instruction of an inlined body touches the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyInstruction {
    /// `lock cmpxchg [mem], reg` (Mutex.Lock's fast path).
    LockCmpxchg,
    /// `lock xadd [mem], reg` (Mutex.Unlock, RWMutex.RLock/RUnlock).
    LockXadd,
    /// An atomic read-modify-write or store: any `lock`-prefixed instruction on memory, or an
    /// `xchg` with memory (locked without a prefix: Go's atomic stores).
    Atomic,
    /// The first load from memory that is not a stack slot (Once.Do's `done`, Value.Load's
    /// type word).
    FirstLoad,
}

/// A probe placement for one inlined operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Placed {
    /// The probed instruction.
    pub addr: u64,
    /// Whether the kernel emulates it (cheap) rather than single-stepping it.
    pub emulated: bool,
    /// Its text.
    pub instruction: String,
    /// The object's address as seen from there, with `adjust` already added.
    pub object: ObjectAddr,
    /// The key instruction's address (where the operation really happens).
    pub key_addr: u64,
}

impl Placed {
    /// A probe on `ins`, where the object's address is `expr`, for the key instruction at
    /// `key_addr`.
    fn on(ins: &Instruction, expr: ObjectAddr, key_addr: u64) -> Placed {
        Placed {
            addr: ins.ip(),
            emulated: is_emulated(ins),
            instruction: crate::prologue::format(ins),
            object: relative_to(expr, ins.ip()),
            key_addr,
        }
    }
}

/// Decoded code of one function: instructions, and every address a direct branch lands on.
pub(crate) struct FunctionCode {
    instructions: Vec<Instruction>,
    branch_targets: HashSet<u64>,
    /// The `jne` of each wrapper's panic check (see [`wrapper_check`]): the walk back may
    /// cross it, and the address its detour rejoins is not a branch target to the walk.
    wrapper_checks: HashSet<u64>,
}

/// Go's wrappers (method values, `defer` wrappers, promoted methods) open with a check of the
/// panic in progress, whose rare path adjusts its argument pointer and rejoins the code right
/// after the check:
///
/// ```text
///     mov r12, [r14+0x20]       ; g._panic
///     test r12, r12
///     jne ADJUST
/// BACK:                         ; the body (an inlined RUnlock, say)
///     ...
/// ADJUST:
///     lea r13, [rsp+N]
///     cmp [r12], r13
///     jne BACK
///     mov [r12], rsp
///     jmp BACK
/// ```
///
/// The detour writes R12, R13, the flags and the panic record only. Returns the check's `jne`
/// (the check starts at instruction `at`) and BACK when the code there is such a check.
fn wrapper_check(instructions: &[Instruction], at: usize) -> Option<(u64, u64)> {
    let [load, test, jne] = instructions.get(at..at + 3)? else {
        return None;
    };
    let loads_panic = load.mnemonic() == Mnemonic::Mov
        && load.op0_register() == Register::R12
        && load.op1_kind() == OpKind::Memory
        && load.memory_base() == Register::R14
        && load.memory_index() == Register::None;
    let tests_it = test.mnemonic() == Mnemonic::Test
        && test.op0_register() == Register::R12
        && test.op1_register() == Register::R12;
    if !(loads_panic && tests_it && jne.mnemonic() == Mnemonic::Jne) {
        return None;
    }
    let back = jne.next_ip();
    let adjust = instructions
        .iter()
        .position(|i| i.ip() == jne.near_branch_target())?;
    let [lea, cmp, jne_back, store, jmp_back] = instructions.get(adjust..adjust + 5)? else {
        return None;
    };
    let detour = lea.mnemonic() == Mnemonic::Lea
        && lea.op0_register() == Register::R13
        && cmp.mnemonic() == Mnemonic::Cmp
        && cmp.memory_base() == Register::R12
        && jne_back.mnemonic() == Mnemonic::Jne
        && jne_back.near_branch_target() == back
        && store.mnemonic() == Mnemonic::Mov
        && store.memory_base() == Register::R12
        && jmp_back.mnemonic() == Mnemonic::Jmp
        && jmp_back.near_branch_target() == back;
    detour.then_some((jne.ip(), back))
}

impl FunctionCode {
    /// Decodes a whole function (`code` starting at `addr`).
    pub fn decode(code: &[u8], addr: u64) -> FunctionCode {
        let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
        let mut instructions = Vec::new();
        // Each branch target, with the branches that land on it.
        let mut sources: HashMap<u64, Vec<u64>> = HashMap::new();
        while decoder.can_decode() {
            let ins = decoder.decode();
            if matches!(
                ins.flow_control(),
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
            ) && ins.op0_kind() == OpKind::NearBranch64
            {
                sources
                    .entry(ins.near_branch_target())
                    .or_default()
                    .push(ins.ip());
            }
            instructions.push(ins);
        }
        let mut wrapper_checks = HashSet::new();
        for at in 0..instructions.len() {
            let Some((jne, back)) = wrapper_check(&instructions, at) else {
                continue;
            };
            // BACK joins nothing but the detour: a walk back may go on past it.
            let detour = instructions[at + 2].near_branch_target();
            let in_detour = |ip: &u64| (detour..detour.saturating_add(32)).contains(ip);
            if sources.get(&back).is_some_and(|s| s.iter().all(in_detour)) {
                sources.remove(&back);
                wrapper_checks.insert(jne);
            }
        }
        // Jump tables (indirect jumps) land on case bodies, which begin with their own code,
        // not inside an inlined lock sequence; they are not tracked.
        FunctionCode {
            instructions,
            branch_targets: sources.into_keys().collect(),
            wrapper_checks,
        }
    }

    /// The addresses of every `key` instruction.
    pub fn key_instructions(&self, key: KeyInstruction) -> Vec<u64> {
        self.instructions
            .iter()
            .filter(|i| is_key(i, key))
            .map(Instruction::ip)
            .collect()
    }

    /// Whether the instruction at `ip` stores to memory without reading it first (`xchg` is
    /// Go's atomic store; `lock xadd`/`cmpxchg` read too).
    pub fn is_store(&self, ip: u64) -> bool {
        self.instructions
            .iter()
            .find(|i| i.ip() == ip)
            .is_some_and(|i| i.mnemonic() == Mnemonic::Xchg)
    }

    /// Whether `range` holds a `key` instruction.
    pub fn has_key(&self, range: std::ops::Range<u64>, key: KeyInstruction) -> bool {
        self.instructions
            .iter()
            .any(|i| range.contains(&i.ip()) && is_key(i, key))
    }

    /// The `key` instruction among the few straight-line instructions right before `addr`,
    /// if there is one.
    pub fn key_before(&self, addr: u64, key: KeyInstruction) -> Option<u64> {
        /// Instructions looked at: the key is the call line's last before the body.
        const WINDOW: usize = 4;
        let at = self.instructions.iter().position(|i| i.ip() >= addr)?;
        self.instructions[at.saturating_sub(WINDOW)..at]
            .iter()
            .rev()
            .take_while(|i| i.flow_control() == FlowControl::Next)
            .find(|i| is_key(i, key))
            .map(Instruction::ip)
    }

    /// Places a probe for the operation whose key instruction is the first of `key` within
    /// `range`; `adjust` turns the operand's address into the object's. The kernel refuses
    /// uprobes on `lock`-prefixed instructions, so the probe goes before the key instruction:
    /// on the nearest emulated instruction where the address is still known, else on the
    /// instruction right before it (single-stepped). With `after_ok` (an acquire, which the
    /// detector applies later anyway) the instruction right after it will do as a last resort.
    /// `None` if the range holds no such instruction or no placement works.
    pub fn place(
        &self,
        range: std::ops::Range<u64>,
        key: KeyInstruction,
        adjust: i64,
        after_ok: bool,
    ) -> Option<Placed> {
        let at = self
            .instructions
            .iter()
            .position(|i| range.contains(&i.ip()) && is_key(i, key))?;
        let ins = &self.instructions[at];
        let operand = memory_operand(ins).add(adjust);
        let back = self.walk_back(at, operand);
        if let Some(p) = back.clone().filter(|p| p.emulated) {
            return Some(p);
        }
        // A plain load that acquires always completes: an emulated instruction just after it
        // will do (an acquire is applied at the goroutine's next event anyway).
        if after_ok && !ins.has_lock_prefix() {
            if let Some(p) = self.walk_forward(at, operand) {
                return Some(p);
            }
        }
        if let Some(p) = back {
            return Some(p);
        }
        if !ins.has_lock_prefix() {
            return Some(Placed {
                emulated: false,
                ..Placed::on(ins, operand, ins.ip())
            });
        }
        let next = self.instructions.get(at + 1).filter(|_| after_ok)?;
        let mut info = InstructionInfoFactory::new();
        let unchanged = before(ins, operand, &mut info) == Some(operand);
        unchanged.then(|| Placed::on(next, operand, ins.ip()))
    }

    /// A probe just after the first direct call to one of `lock_calls` (the runtime's
    /// `lock2`), where the code goes on to read a field `member` bytes into the object it
    /// locked (`cmp dword ptr [rax+0x1c], 0` after `mov rax, [rsp+0x70]`): on the first
    /// emulated instruction after that read while its base register still holds the object
    /// (the `jne` that tests the field), else on the read itself (single-stepped). Only
    /// straight-line code that nothing jumps into, so the probe fires only with the lock
    /// held. `None` if the code does not look like that.
    pub fn after_lock(&self, lock_calls: &[u64], member: i64) -> Option<Placed> {
        /// Instructions looked at after the call: the read comes within a few.
        const WINDOW: usize = 12;
        let call = self.instructions.iter().position(|i| {
            i.flow_control() == FlowControl::Call
                && i.op0_kind() == OpKind::NearBranch64
                && lock_calls.contains(&i.near_branch_target())
        })?;
        let mut info = InstructionInfoFactory::new();
        let mut key: Option<(Register, &Instruction)> = None;
        for ins in self.instructions.iter().skip(call + 1).take(WINDOW) {
            if self.branch_targets.contains(&ins.ip()) {
                break;
            }
            if let Some((base, read)) = key {
                if is_emulated(ins) {
                    return Some(Placed {
                        addr: ins.ip(),
                        emulated: true,
                        instruction: crate::prologue::format(ins),
                        object: ObjectAddr::Registers {
                            base: Reg::of(base)?,
                            index: None,
                            disp: 0,
                        },
                        key_addr: read.ip(),
                    });
                }
                if writes_register(ins, base, &mut info) || ins.flow_control() != FlowControl::Next
                {
                    break;
                }
                continue;
            }
            if ins.flow_control() != FlowControl::Next {
                return None;
            }
            let reads_member = (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory)
                && ins.memory_index() == Register::None
                && ins.memory_displacement64() as i64 == member
                && Reg::of(ins.memory_base())
                    .is_some_and(|r| !matches!(r, Reg::Rsp | Reg::Rbp | Reg::R14));
            if reads_member {
                let base = ins.memory_base().full_register();
                key = Some((base, ins));
                if writes_register(ins, base, &mut info) {
                    break;
                }
            }
        }
        // No emulated instruction in reach: the read itself, where the base still holds the
        // object (it is read before it can be overwritten).
        let (base, read) = key?;
        Some(Placed {
            addr: read.ip(),
            emulated: false,
            instruction: crate::prologue::format(read),
            object: ObjectAddr::Registers {
                base: Reg::of(base)?,
                index: None,
                disp: 0,
            },
            key_addr: read.ip(),
        })
    }

    /// The nearest emulated instruction after the key instruction `at`, over straight-line
    /// code that leaves `expr` (valid just before `at`) as it is: nothing that writes its
    /// registers, nor memory when it is loaded from memory. At most a few instructions on.
    fn walk_forward(&self, at: usize, expr: ObjectAddr) -> Option<Placed> {
        const REACH: usize = 8;
        let key = &self.instructions[at];
        let (registers, loaded): (Vec<Reg>, bool) = match expr {
            ObjectAddr::Registers { base, index, .. } => (
                std::iter::once(base).chain(index.map(|(r, _)| r)).collect(),
                false,
            ),
            ObjectAddr::Loaded { base, .. } => (vec![base], true),
            ObjectAddr::FromProbe { .. } | ObjectAddr::Unknown => (Vec::new(), false),
        };
        let mut info = InstructionInfoFactory::new();
        for pos in at..(at + REACH).min(self.instructions.len()) {
            let ins = &self.instructions[pos];
            if pos > at {
                // Code that jumps here did not do the key's load.
                if self.branch_targets.contains(&ins.ip()) {
                    return None;
                }
                if is_emulated(ins) {
                    return Some(Placed::on(ins, expr, key.ip()));
                }
            }
            if ins.flow_control() != FlowControl::Next
                || registers
                    .iter()
                    .any(|r| writes_register(ins, r.register(), &mut info))
                || (loaded && writes_memory(info.info(ins)))
            {
                return None;
            }
        }
        None
    }

    /// Walks back from `at` over straight-line code while `expr` (valid just before
    /// instruction `at`) can still be computed: the nearest emulated instruction on the way,
    /// else the instruction right before `at`.
    fn walk_back(&self, at: usize, mut expr: ObjectAddr) -> Option<Placed> {
        let key_addr = self.instructions[at].ip();
        let mut info = InstructionInfoFactory::new();
        let mut nearest = None;
        let mut pos = at;
        while pos > 0 {
            // Code that jumps to `pos` would skip whatever comes before it.
            if self.branch_targets.contains(&self.instructions[pos].ip()) {
                break;
            }
            let ins = &self.instructions[pos - 1];
            let e = if self.wrapper_checks.contains(&ins.ip()) {
                // The detour of a wrapper's panic check changes R12, R13 and the panic record
                // only: an address computed from neither is the same on both paths.
                let detour_reg = |r: Reg| matches!(r, Reg::R12 | Reg::R13);
                let through_detour = match expr {
                    ObjectAddr::Registers { base, index, .. } => {
                        detour_reg(base) || index.is_some_and(|(r, _)| detour_reg(r))
                    }
                    ObjectAddr::Loaded { base, .. } => detour_reg(base),
                    ObjectAddr::FromProbe { .. } | ObjectAddr::Unknown => false,
                };
                (!through_detour).then_some(expr)
            } else if ins.flow_control() != FlowControl::Next || ins.has_lock_prefix() {
                break;
            } else {
                before(ins, expr, &mut info)
            };
            let Some(e) = e else {
                break;
            };
            expr = e;
            pos -= 1;
            let placed = Placed::on(ins, expr, key_addr);
            if placed.emulated {
                return Some(placed);
            }
            nearest.get_or_insert(placed);
        }
        nearest
    }
}

/// `expr` as it must be computed just before `ins`, given it is right just after it; `None`
/// when `ins` changes it in a way not followed.
fn before(
    ins: &Instruction,
    expr: ObjectAddr,
    info: &mut InstructionInfoFactory,
) -> Option<ObjectAddr> {
    let facts = info.info(ins);
    let writes = |r: Register| {
        facts.used_registers().iter().any(|u| {
            u.register().full_register() == r.full_register()
                && !matches!(u.access(), OpAccess::Read | OpAccess::CondRead)
        })
    };
    let writes_memory = writes_memory(facts);
    match expr {
        ObjectAddr::FromProbe { .. } | ObjectAddr::Unknown => Some(expr),
        ObjectAddr::Registers { base, index, disp } => {
            if index.is_some_and(|(r, _)| writes(r.register())) {
                return None;
            }
            if !writes(base.register()) {
                return Some(expr);
            }
            if index.is_some() {
                return None;
            }
            let dst_is_base = ins.op_count() == 2
                && ins.op0_kind() == OpKind::Register
                && ins.op0_register() == base.register();
            if !dst_is_base {
                // push/pop/call change RSP implicitly; anything else is not followed.
                return (base == Reg::Rsp && ins.mnemonic() == Mnemonic::Push).then_some(
                    ObjectAddr::Registers {
                        base,
                        index,
                        disp: disp - 8,
                    },
                );
            }
            match (ins.mnemonic(), ins.op1_kind()) {
                (Mnemonic::Mov, OpKind::Register) => {
                    let src = Reg::of(ins.op1_register())?;
                    (ins.op1_register().size() == 8).then_some(ObjectAddr::Registers {
                        base: src,
                        index: None,
                        disp,
                    })
                }
                (Mnemonic::Lea, OpKind::Memory) if ins.memory_index() == Register::None => {
                    let d = ins.memory_displacement64() as i64;
                    if ins.memory_base() == Register::RIP {
                        // iced folds the next ip into the displacement: it is the target.
                        return Some(ObjectAddr::FromProbe {
                            delta: d.wrapping_add(disp),
                        });
                    }
                    Some(ObjectAddr::Registers {
                        base: Reg::of(ins.memory_base())?,
                        index: None,
                        disp: disp.wrapping_add(d),
                    })
                }
                (Mnemonic::Mov, OpKind::Memory)
                    if ins.memory_index() == Register::None
                        && ins.op0_register().size() == 8
                        && ins.memory_base() != Register::RIP =>
                {
                    Some(ObjectAddr::Loaded {
                        base: Reg::of(ins.memory_base())?,
                        slot: ins.memory_displacement64() as i64,
                        disp,
                    })
                }
                (Mnemonic::Add, OpKind::Immediate8to64 | OpKind::Immediate32to64) => {
                    Some(ObjectAddr::Registers {
                        base,
                        index: None,
                        disp: disp.wrapping_add(ins.immediate(1) as i64),
                    })
                }
                _ => None,
            }
        }
        ObjectAddr::Loaded { base, slot, disp } => {
            // The slot must hold the same pointer before `ins`: no store anywhere, and its
            // base register unchanged (a push moves RSP: follow it).
            if writes_memory && ins.mnemonic() != Mnemonic::Push {
                return None;
            }
            if !writes(base.register()) {
                return Some(expr);
            }
            if base == Reg::Rsp && ins.mnemonic() == Mnemonic::Push {
                return Some(ObjectAddr::Loaded {
                    base,
                    slot: slot - 8,
                    disp,
                });
            }
            None
        }
    }
}

/// Whether an instruction (described by `facts`) writes to memory.
fn writes_memory(facts: &InstructionInfo) -> bool {
    facts.used_memory().iter().any(|m| {
        !matches!(
            m.access(),
            OpAccess::Read | OpAccess::CondRead | OpAccess::NoMemAccess
        )
    })
}

/// Whether `ins` writes (any part of) register `r`.
fn writes_register(ins: &Instruction, r: Register, info: &mut InstructionInfoFactory) -> bool {
    info.info(ins).used_registers().iter().any(|u| {
        u.register().full_register() == r.full_register()
            && !matches!(u.access(), OpAccess::Read | OpAccess::CondRead)
    })
}

fn is_key(ins: &Instruction, key: KeyInstruction) -> bool {
    let has_memory = ins.op_count() >= 1 && ins.op0_kind() == OpKind::Memory;
    match key {
        KeyInstruction::LockCmpxchg => {
            ins.has_lock_prefix() && ins.mnemonic() == Mnemonic::Cmpxchg && has_memory
        }
        KeyInstruction::LockXadd => {
            ins.has_lock_prefix() && ins.mnemonic() == Mnemonic::Xadd && has_memory
        }
        KeyInstruction::Atomic => {
            has_memory && (ins.has_lock_prefix() || ins.mnemonic() == Mnemonic::Xchg)
        }
        KeyInstruction::FirstLoad => {
            // A load through a pointer or of a global (a package-level `sync.Once`): not a
            // stack slot, not the goroutine (R14: the stack check), not a nil check
            // (`test byte ptr [reg], al`), not an address computation.
            (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory)
                && !matches!(
                    ins.memory_base(),
                    Register::RSP | Register::RBP | Register::R14 | Register::None
                )
                && !matches!(
                    ins.mnemonic(),
                    Mnemonic::Lea | Mnemonic::Test | Mnemonic::Nop
                )
        }
    }
}

/// While walking, `FromProbe` holds the absolute address; once the probe is placed it becomes
/// the distance from the probe, which stays right wherever a PIE binary is loaded.
fn relative_to(expr: ObjectAddr, probe: u64) -> ObjectAddr {
    match expr {
        ObjectAddr::FromProbe { delta } => ObjectAddr::FromProbe {
            delta: delta.wrapping_sub(probe as i64),
        },
        other => other,
    }
}

fn memory_operand(ins: &Instruction) -> ObjectAddr {
    if ins.memory_base() == Register::RIP {
        // iced resolves RIP-relative displacements to the absolute target.
        return ObjectAddr::FromProbe {
            delta: ins.memory_displacement64() as i64,
        };
    }
    let Some(base) = Reg::of(ins.memory_base()) else {
        return ObjectAddr::Unknown;
    };
    let index = match ins.memory_index() {
        Register::None => None,
        r => match Reg::of(r) {
            Some(r) => Some((r, ins.memory_index_scale() as u8)),
            None => return ObjectAddr::Unknown,
        },
    };
    ObjectAddr::Registers {
        base,
        index,
        disp: ins.memory_displacement64() as i64,
    }
}

/// The kernel emulates `nop`, `push reg` and relative `jcc`, `jmp` and `call` instead of
/// single-stepping them (arch/x86/kernel/uprobes.c).
pub(crate) fn is_emulated(ins: &Instruction) -> bool {
    match ins.mnemonic() {
        Mnemonic::Nop => ins.len() == 1,
        Mnemonic::Push => ins.op0_kind() == OpKind::Register,
        _ => ins.is_jcc_short_or_near() || ins.is_jmp_short_or_near() || ins.is_call_near(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(bytes: &[&[u8]]) -> Vec<u8> {
        bytes.concat()
    }

    /// Go 1.25's inlined `s.mu.Lock()` (mutex at s+8): nop; lea rdx,[rax+8];
    /// mov [rsp+0x18],rdx; mov rsi,rax; xor eax,eax; mov edi,1; lock cmpxchg [rsi+8],edi
    #[test]
    fn mutex_lock_moves_to_the_inline_mark() {
        let c = code(&[
            &[0x90],
            &[0x48, 0x8d, 0x50, 0x08],
            &[0x48, 0x89, 0x54, 0x24, 0x18],
            &[0x48, 0x89, 0xc6],
            &[0x31, 0xc0],
            &[0xbf, 0x01, 0, 0, 0],
            &[0xf0, 0x0f, 0xb1, 0x7e, 0x08],
        ]);
        let f = FunctionCode::decode(&c, 0x1000);
        let p = f
            .place(0x1001..0x1100, KeyInstruction::LockCmpxchg, 0, true)
            .unwrap();
        assert_eq!(p.addr, 0x1000);
        assert!(p.emulated);
        assert_eq!(p.key_addr, 0x1000 + c.len() as u64 - 5);
        assert_eq!(
            p.object,
            ObjectAddr::Registers {
                base: Reg::Rax,
                index: None,
                disp: 8
            }
        );
    }

    /// Go 1.25's `defer s.mu.RUnlock()` wrapper (`main.(*store).get.deferwrap1`): the RWMutex
    /// is loaded from the closure (DX+8) after the wrapper's panic check, whose detour rejoins
    /// right before that load: the walk reaches the check's `jne`, which the kernel emulates.
    #[test]
    fn a_deferred_runlock_walks_back_to_the_wrapper_check() {
        let c = code(&[
            &[0x49, 0x3b, 0x66, 0x10],       // 00 cmp rsp,[r14+0x10]
            &[0x76, 0x30],                   // 04 jbe 0x36
            &[0x55],                         // 06 push rbp
            &[0x48, 0x89, 0xe5],             // 07 mov rbp,rsp
            &[0x48, 0x83, 0xec, 0x10],       // 0a sub rsp,0x10
            &[0x4d, 0x8b, 0x66, 0x20],       // 0e mov r12,[r14+0x20]
            &[0x4d, 0x85, 0xe4],             // 12 test r12,r12
            &[0x75, 0x26],                   // 15 jne 0x3d
            &[0x48, 0x8b, 0x42, 0x08],       // 17 mov rax,[rdx+8]
            &[0xbb, 0xff, 0xff, 0xff, 0xff], // 1b mov ebx,-1
            &[0xf0, 0x0f, 0xc1, 0x58, 0x10], // 20 lock xadd [rax+0x10],ebx
            &[0xff, 0xcb],                   // 25 dec ebx
            &[0x85, 0xdb],                   // 27 test ebx,ebx
            &[0x7d, 0x05],                   // 29 jge 0x30
            &[0xe8, 0x30, 0xfa, 0xe6, 0xff], // 2b call rUnlockSlow
            &[0x48, 0x83, 0xc4, 0x10],       // 30 add rsp,0x10
            &[0x5d],                         // 34 pop rbp
            &[0xc3],                         // 35 ret
            &[0xe8, 0x05, 0xd4, 0xe5, 0xff], // 36 call morestack
            &[0xeb, 0xc3],                   // 3b jmp 0x00
            &[0x4c, 0x8d, 0x6c, 0x24, 0x20], // 3d lea r13,[rsp+0x20]
            &[0x4d, 0x39, 0x2c, 0x24],       // 42 cmp [r12],r13
            &[0x75, 0xcf],                   // 46 jne 0x17
            &[0x49, 0x89, 0x24, 0x24],       // 48 mov [r12],rsp
            &[0xeb, 0xc9],                   // 4c jmp 0x17
        ]);
        let f = FunctionCode::decode(&c, 0x61dfa0);
        let p = f
            .place(0x61dfa0..0x61dfee, KeyInstruction::LockXadd, -16, false)
            .unwrap();
        assert_eq!((p.addr, p.emulated), (0x61dfb5, true), "{p:?}");
        assert_eq!(
            p.object,
            ObjectAddr::Loaded {
                base: Reg::Rdx,
                slot: 8,
                disp: 0
            }
        );
        // The same body without the detour's return is a real join: the walk stops there.
        let mut joined = c.clone();
        joined[0x4c..0x4e].copy_from_slice(&[0xeb, 0xc7]); // jmp 0x15: not BACK
        let f = FunctionCode::decode(&joined, 0x61dfa0);
        let p = f
            .place(0x61dfa0..0x61dfee, KeyInstruction::LockXadd, -16, false)
            .unwrap();
        assert!(!p.emulated, "{p:?}");
    }

    /// `c.done.Load()` after a call (context.(*cancelCtx).Done): nothing emulated before the
    /// load of the Value's type word, so the acquire goes on the `je` right after it.
    #[test]
    fn an_acquiring_load_with_nothing_emulated_before_goes_after() {
        let c = code(&[
            &[0xe8, 0, 0, 0, 0],                   // 00 call
            &[0x84, 0x00],                         // 05 test [rax],al
            &[0x44, 0x0f, 0x11, 0x7c, 0x24, 0x38], // 07 movups [rsp+0x38],xmm15
            &[0x48, 0x8b, 0x70, 0x18],             // 0d mov rsi,[rax+0x18]
            &[0x48, 0x85, 0xf6],                   // 11 test rsi,rsi
            &[0x74, 0x00],                         // 14 je 0x16
            &[0x90],                               // 16 nop
        ]);
        let f = FunctionCode::decode(&c, 0x8000);
        let p = f
            .place(0x8005..0x8100, KeyInstruction::FirstLoad, -0x18, true)
            .unwrap();
        assert_eq!(
            (p.addr, p.emulated, p.key_addr),
            (0x8014, true, 0x800d),
            "{p:?}"
        );
        assert_eq!(
            p.object,
            ObjectAddr::Registers {
                base: Reg::Rax,
                index: None,
                disp: 0
            }
        );
        // A release is never moved after its operation.
        let p = f
            .place(0x8005..0x8100, KeyInstruction::FirstLoad, -0x18, false)
            .unwrap();
        assert_eq!((p.addr, p.emulated), (0x8007, false), "{p:?}");
    }

    /// Inlined `s.mu.Unlock()`: nop; mov ebx,-1; mov rdx,[rsp+0x30]; lock xadd [rdx+8],ebx
    #[test]
    fn unlock_through_a_stack_slot() {
        let c = code(&[
            &[0x90],
            &[0xbb, 0xff, 0xff, 0xff, 0xff],
            &[0x48, 0x8b, 0x54, 0x24, 0x30],
            &[0xf0, 0x0f, 0xc1, 0x5a, 0x08],
        ]);
        let f = FunctionCode::decode(&c, 0x2000);
        let p = f
            .place(0x2000..0x2100, KeyInstruction::LockXadd, 0, true)
            .unwrap();
        assert_eq!((p.addr, p.emulated), (0x2000, true));
        assert_eq!(
            p.object,
            ObjectAddr::Loaded {
                base: Reg::Rsp,
                slot: 0x30,
                disp: 8
            }
        );
    }

    /// A global RWMutex's RLock: nop; mov esi,1; lea rdi,[rip+0x10]; lock xadd [rdi],esi.
    /// readerCount is at +16, so the object is the lea target minus 16.
    #[test]
    fn global_lock_is_a_fixed_distance_from_the_probe() {
        let c = code(&[
            &[0x90],
            &[0xbe, 0x01, 0, 0, 0],
            &[0x48, 0x8d, 0x3d, 0x10, 0, 0, 0],
            &[0xf0, 0x0f, 0xc1, 0x37],
        ]);
        let f = FunctionCode::decode(&c, 0x3000);
        let p = f
            .place(0x3000..0x3100, KeyInstruction::LockXadd, -16, true)
            .unwrap();
        // lea's target: next ip (0x3000 + 1 + 5 + 7) + 0x10.
        let target = 0x3000 + 13 + 0x10;
        assert_eq!(p.addr, 0x3000);
        assert_eq!(
            p.object,
            ObjectAddr::FromProbe {
                delta: target - 16 - 0x3000
            }
        );
    }

    /// Without an emulated instruction on the way back, the probe goes on the instruction
    /// right before the locked one (the kernel refuses `lock`-prefixed ones); with a jump
    /// landing on the locked instruction, only after it, and only for an acquire.
    #[test]
    fn fallbacks_avoid_the_locked_instruction() {
        // mov rsi,rax; lock cmpxchg [rsi+8],edi  (no nop before)
        let c = code(&[&[0x48, 0x89, 0xc6], &[0xf0, 0x0f, 0xb1, 0x7e, 0x08]]);
        let p = FunctionCode::decode(&c, 0x4000)
            .place(0x4000..0x4100, KeyInstruction::LockCmpxchg, 0, true)
            .unwrap();
        assert_eq!((p.addr, p.emulated), (0x4000, false));
        assert_eq!(
            p.object,
            ObjectAddr::Registers {
                base: Reg::Rax,
                index: None,
                disp: 8
            }
        );

        // jmp +0 (lands on the next instruction); nop; lock cmpxchg [rsi+8],edi: the nop is
        // a branch target, so probing it is fine, but not before the jump.
        let c = code(&[&[0xeb, 0x00], &[0x90], &[0xf0, 0x0f, 0xb1, 0x7e, 0x08]]);
        let p = FunctionCode::decode(&c, 0x5000)
            .place(0x5000..0x5100, KeyInstruction::LockCmpxchg, 0, true)
            .unwrap();
        assert_eq!((p.addr, p.emulated), (0x5002, true));

        // jmp +1 (to the lock cmpxchg itself); nop; lock cmpxchg; nop
        let c = code(&[
            &[0xeb, 0x01],
            &[0x90],
            &[0xf0, 0x0f, 0xb1, 0x7e, 0x08],
            &[0x90],
        ]);
        let f = FunctionCode::decode(&c, 0x6000);
        let p = f
            .place(0x6000..0x6100, KeyInstruction::LockCmpxchg, 0, true)
            .unwrap();
        assert_eq!((p.addr, p.emulated, p.key_addr), (0x6008, true, 0x6003));
        assert!(f
            .place(0x6000..0x6100, KeyInstruction::LockCmpxchg, 0, false)
            .is_none());
    }

    /// Go 1.25's chansend after `lock(&c.lock)`: call lock2; mov rax,[rsp+0x70];
    /// cmp dword ptr [rax+0x1c],0; nop5; jne: the probe goes on the jne, the channel in rax.
    #[test]
    fn after_lock_probes_the_branch_on_the_first_field_read() {
        let lock2 = 0x9000u64;
        let at = 0x8000u64;
        let rel = (lock2 as i64 - (at as i64 + 5)) as i32;
        let call = [&[0xe8u8][..], &rel.to_le_bytes()].concat();
        let c = code(&[
            &call,
            &[0x48, 0x8b, 0x44, 0x24, 0x70],
            &[0x83, 0x78, 0x1c, 0x00],
            &[0x0f, 0x1f, 0x44, 0x00, 0x00],
            &[0x0f, 0x85, 0x10, 0, 0, 0],
            &[0xc3],
        ]);
        let f = FunctionCode::decode(&c, at);
        let p = f.after_lock(&[lock2], 0x1c).unwrap();
        assert_eq!((p.addr, p.emulated), (at + 19, true));
        assert_eq!(p.key_addr, at + 10);
        assert_eq!(
            p.object,
            ObjectAddr::Registers {
                base: Reg::Rax,
                index: None,
                disp: 0
            }
        );
        // Another callee, or another field: not this shape.
        assert!(f.after_lock(&[lock2 + 1], 0x1c).is_none());
        assert!(f.after_lock(&[lock2], 0x20).is_none());

        // The read overwrites its base (mov eax,[rax+0x1c]; test eax,eax; jne): the read itself.
        let c = code(&[
            &call,
            &[0x48, 0x8b, 0x44, 0x24, 0x70],
            &[0x8b, 0x40, 0x1c],
            &[0x85, 0xc0],
            &[0x75, 0x02],
            &[0xc3],
        ]);
        let p = FunctionCode::decode(&c, at)
            .after_lock(&[lock2], 0x1c)
            .unwrap();
        assert_eq!((p.addr, p.emulated), (at + 10, false));
    }

    /// Once.Do's fast path loads `done` (mov ecx,[rax+0x18]); the function's `push rbp` is
    /// reachable straight back, and RSP changes don't matter to an RAX-based address.
    #[test]
    fn first_load_walks_back_to_the_push() {
        // push rbp; mov rbp,rsp; sub rsp,0x20; test [rax],al; mov ecx,[rax+0x18]
        let c = code(&[
            &[0x55],
            &[0x48, 0x89, 0xe5],
            &[0x48, 0x83, 0xec, 0x20],
            &[0x84, 0x00],
            &[0x8b, 0x48, 0x18],
        ]);
        let p = FunctionCode::decode(&c, 0x7000)
            .place(0x7000..0x7100, KeyInstruction::FirstLoad, 4, true)
            .unwrap();
        assert_eq!(p.key_addr, 0x7000 + 10);
        assert_eq!((p.addr, p.emulated), (0x7000, true));
        assert_eq!(
            p.object,
            ObjectAddr::Registers {
                base: Reg::Rax,
                index: None,
                disp: 0x18 + 4
            }
        );
    }
}

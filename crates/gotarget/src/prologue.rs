//! Decoding Go function prologues to find the cheapest uprobe site, and listing direct calls.
//!
//! Go's amd64 stack check (cmd/internal/obj/x86/obj6.go `stacksplit`) comes in three sizes:
//!
//! ```text
//! small:  CMP RSP,[R14+0x10]; JBE morestack
//! medium: LEA R12,[RSP-N]; CMP R12,[R14+0x10]; JBE morestack
//! large:  MOV R12,RSP; SUB R12,N; JB morestack; CMP R12,[R14+0x10]; JBE morestack
//! ```
//!
//! and the frame setup starts with `PUSH RBP` right after it. The kernel emulates `push`
//! (~0.5 µs per hit) but single-steps `cmp` (~16 µs), so the probe goes on the push. The
//! JBE can be short (2 bytes) or near (6 bytes), which is why the offset varies (0x6, 0xa,
//! 0xf, ...) and must be decoded.

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Formatter, Instruction, IntelFormatter, Mnemonic, OpKind,
    Register,
};

/// Where a probe on a function goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On the `push rbp` right after the stack-bound check: emulated by the kernel, and hit
    /// once per call (not again after a stack growth).
    AfterStackCheck,
    /// On the first instruction (usually single-stepped: ~30x dearer per hit), and why.
    Entry {
        /// Why the post-prologue site could not be used.
        reason: String,
    },
    /// On a `ret`, to see what the function returns (single-stepped; never a uretprobe,
    /// which rewrites the return address on the stack and crashes Go).
    Return,
    /// Inside a function, for an operation the compiler inlined there (a lock's fast path):
    /// on the operation's own instruction at `key_addr`, or on an emulated one before it.
    Inlined {
        /// Where the operation itself is.
        key_addr: u64,
    },
    /// Inside a function, once a lock it takes is held: on the first read of the locked
    /// object at `read_addr`, or on an emulated instruction after it.
    Locked {
        /// The read that identifies the object.
        read_addr: u64,
    },
    /// On a `call rel32` to the function, in its caller (emulated by the kernel): the
    /// arguments are in their registers already and the return address is the next
    /// instruction, so only the calls from code that is watched pay for a probe.
    Call {
        /// The function called.
        callee: u64,
    },
    /// On the instruction a `call rel32` to the function returns to, in its caller: sees what
    /// the function returned (in registers), for the calls from watched code only. Usually
    /// single-stepped.
    AfterCall {
        /// The function called.
        callee: u64,
    },
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placement::AfterStackCheck => f.write_str("after stack check (emulated)"),
            Placement::Entry { reason } => write!(f, "entry (single-stepped: {reason})"),
            Placement::Return => f.write_str("return (single-stepped)"),
            Placement::Inlined { key_addr } => write!(f, "inlined operation at {key_addr:#x}"),
            Placement::Locked { read_addr } => {
                write!(f, "lock held, object read at {read_addr:#x}")
            }
            Placement::Call { callee } => write!(f, "call to {callee:#x} (emulated)"),
            Placement::AfterCall { callee } => write!(f, "return from {callee:#x}"),
        }
    }
}

/// Outcome of decoding a prologue: offset from the entry, placement, instruction text.
pub(crate) struct Decoded {
    pub offset: u64,
    pub placement: Placement,
    pub instruction: String,
}

/// At most this many instructions make up a stack check (the large form has five).
const MAX_PROLOGUE: usize = 8;

/// Decodes the start of a function whose code (from its entry at `addr`) is `code`.
pub(crate) fn decode(code: &[u8], addr: u64) -> Decoded {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let entry_text = |reason: String, text: String| Decoded {
        offset: 0,
        placement: Placement::Entry { reason },
        instruction: text,
    };
    let mut first_text = None;
    let mut saw_cmp = false;
    let mut saw_jbe = false;
    for i in 0..MAX_PROLOGUE {
        if !decoder.can_decode() {
            break;
        }
        decoder.decode_out(&mut ins);
        let text = format(&ins);
        if ins.is_invalid() {
            return entry_text(
                format!("cannot decode instruction {i}"),
                first_text.unwrap_or(text),
            );
        }
        let first = first_text.get_or_insert_with(|| text.clone()).clone();
        if i == 0 && is_push_rbp(&ins) {
            return entry_text(
                "no stack check (nosplit function); the entry is `push rbp`, which the kernel \
                 emulates"
                    .into(),
                text,
            );
        }
        if saw_jbe {
            if is_push_rbp(&ins) {
                return Decoded {
                    offset: ins.ip().wrapping_sub(addr),
                    placement: Placement::AfterStackCheck,
                    instruction: text,
                };
            }
            return entry_text(
                format!("stack check not followed by `push rbp` (found `{text}`)"),
                first,
            );
        }
        if saw_cmp {
            if ins.mnemonic() == Mnemonic::Jbe {
                saw_jbe = true;
                continue;
            }
            return entry_text(
                format!("stack check not followed by jbe (found `{text}`)"),
                first,
            );
        }
        if is_stack_bound_cmp(&ins) {
            saw_cmp = true;
            continue;
        }
        // Only the R12 set-up of the medium/large forms may precede the compare.
        if !is_r12_setup(&ins) {
            return entry_text(
                format!("no Go stack check at the entry (starts with `{first}`)"),
                first,
            );
        }
    }
    entry_text(
        "no Go stack check in the first instructions".into(),
        first_text.unwrap_or_default(),
    )
}

/// A direct near call: `call rel32`, five bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirectCall {
    /// Address of the call instruction.
    pub at: u64,
    /// The function called.
    pub target: u64,
}

impl DirectCall {
    /// The instruction's length: the return address is `at + LEN`.
    pub const LEN: u64 = 5;
}

/// The direct near calls in `code` (a whole function starting at `addr`).
pub(crate) fn direct_calls(code: &[u8], addr: u64) -> Vec<DirectCall> {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut out = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        if ins.mnemonic() == Mnemonic::Call
            && ins.op0_kind() == OpKind::NearBranch64
            && ins.len() as u64 == DirectCall::LEN
        {
            out.push(DirectCall {
                at: ins.ip(),
                target: ins.near_branch_target(),
            });
        }
    }
    out
}

/// The code from `at` on, in `code` (a whole function starting at `addr`), when it runs
/// straight into a direct call within `limit` instructions (no jump, return or other branch
/// before it): the addresses of the instructions before the call, and the call.
pub(crate) fn straight_to_call(
    code: &[u8],
    addr: u64,
    at: u64,
    limit: usize,
) -> Option<(Vec<u64>, DirectCall)> {
    let start = usize::try_from(at.checked_sub(addr)?).ok()?;
    let mut decoder = Decoder::with_ip(64, code.get(start..)?, at, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut before = Vec::new();
    while decoder.can_decode() && before.len() < limit {
        decoder.decode_out(&mut ins);
        match ins.flow_control() {
            FlowControl::Next => before.push(ins.ip()),
            FlowControl::Call
                if ins.op0_kind() == OpKind::NearBranch64
                    && ins.len() as u64 == DirectCall::LEN =>
            {
                let call = DirectCall {
                    at: ins.ip(),
                    target: ins.near_branch_target(),
                };
                return Some((before, call));
            }
            _ => return None,
        }
    }
    None
}

/// The instruction at `at` in `code` (a whole function starting at `addr`).
pub(crate) fn instruction_at(code: &[u8], addr: u64, at: u64) -> Option<Instruction> {
    let start = usize::try_from(at.checked_sub(addr)?).ok()?;
    let mut decoder = Decoder::with_ip(64, code.get(start..)?, at, DecoderOptions::NONE);
    let ins = decoder.decode();
    (!ins.is_invalid()).then_some(ins)
}

/// Targets of the jumps in `code` (a whole function starting at `addr`).
pub(crate) fn jump_targets(code: &[u8], addr: u64) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut out = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        let near = matches!(ins.op0_kind(), OpKind::NearBranch64 | OpKind::NearBranch32);
        if near && ins.mnemonic() != Mnemonic::Call {
            out.push(ins.near_branch_target());
        }
    }
    out
}

/// Addresses of the `ret` instructions in `code` (a whole function starting at `addr`).
pub(crate) fn returns(code: &[u8], addr: u64) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut out = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        if ins.mnemonic() == Mnemonic::Ret {
            out.push(ins.ip());
        }
    }
    out
}

/// `CMP RSP|R12, [R14+0x10]`: compare against g.stackguard0.
fn is_stack_bound_cmp(ins: &Instruction) -> bool {
    ins.mnemonic() == Mnemonic::Cmp
        && ins.op_count() == 2
        && ins.op0_kind() == OpKind::Register
        && matches!(ins.op0_register(), Register::RSP | Register::R12)
        && ins.op1_kind() == OpKind::Memory
        && ins.memory_base() == Register::R14
        && ins.memory_index() == Register::None
        && ins.memory_displacement64() == 0x10
}

/// `LEA R12,[RSP-N]`, `MOV R12,RSP`, `SUB R12,N` or the `JB` of the large form.
fn is_r12_setup(ins: &Instruction) -> bool {
    let writes_r12 = ins.op_count() >= 1
        && ins.op0_kind() == OpKind::Register
        && ins.op0_register() == Register::R12;
    match ins.mnemonic() {
        Mnemonic::Lea | Mnemonic::Mov | Mnemonic::Sub => writes_r12,
        Mnemonic::Jb => true,
        _ => false,
    }
}

fn is_push_rbp(ins: &Instruction) -> bool {
    ins.mnemonic() == Mnemonic::Push
        && ins.op0_kind() == OpKind::Register
        && ins.op0_register() == Register::RBP
}

/// Intel syntax with 0x-prefixed hex, e.g. `cmp rsp,[r14+0x10]`.
pub(crate) fn format(ins: &Instruction) -> String {
    let mut f = IntelFormatter::new();
    f.options_mut().set_hex_prefix("0x");
    f.options_mut().set_hex_suffix("");
    f.options_mut().set_uppercase_hex(false);
    let mut s = String::new();
    f.format(ins, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frame_with_short_jbe() {
        // cmp rsp,[r14+0x10]; jbe +0x13; push rbp
        let code = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x13, 0x55, 0x48, 0x89, 0xe5];
        let d = decode(&code, 0x1000);
        assert_eq!(d.placement, Placement::AfterStackCheck);
        assert_eq!(d.offset, 6);
        assert_eq!(d.instruction, "push rbp");
    }

    #[test]
    fn medium_frame_with_near_jbe() {
        // lea r12,[rsp-0x10]; cmp r12,[r14+0x10]; jbe rel32; push rbp
        let code = [
            0x4c, 0x8d, 0x64, 0x24, 0xf0, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0, 1, 0, 0, 0x55,
        ];
        let d = decode(&code, 0x1000);
        assert_eq!(d.placement, Placement::AfterStackCheck);
        assert_eq!(d.offset, 0xf);
    }

    #[test]
    fn finds_every_ret() {
        // push rbp; ret; nop; ret
        assert_eq!(
            returns(&[0x55, 0xc3, 0x90, 0xc3], 0x1000),
            vec![0x1001, 0x1003]
        );
    }

    #[test]
    fn no_stack_check_falls_back_to_entry() {
        // mov rax,[rsp+8]; ret
        let d = decode(&[0x48, 0x8b, 0x44, 0x24, 0x08, 0xc3], 0x1000);
        assert!(matches!(d.placement, Placement::Entry { .. }));
        assert_eq!(d.offset, 0);
        assert!(decode(&[], 0).instruction.is_empty());
        assert!(matches!(
            decode(&[0x49, 0x3b], 0).placement,
            Placement::Entry { .. }
        ));
    }

    #[test]
    fn calls() {
        // call rel32 (+0); call rax
        let code = [0xe8, 0, 0, 0, 0, 0xff, 0xd0];
        assert_eq!(
            direct_calls(&code, 0x1000),
            vec![DirectCall {
                at: 0x1000,
                target: 0x1005
            }]
        );
    }
}

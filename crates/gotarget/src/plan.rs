//! The map entry points mapwatch probes, and what each one means.

use std::collections::HashMap;
use std::fmt;

use crate::prologue::{self, DirectCall, Placement};
use crate::{Function, GoBinary};

/// A class of map operation. The discriminant is stable and fits the BPF event's `u8`;
/// 0 is never used, so a zeroed event is recognisably invalid.
///
/// ```
/// use gotarget::MapOp;
/// assert_eq!(MapOp::Read as u8, 1);
/// assert_eq!(MapOp::from_u8(4), Some(MapOp::IterStart));
/// assert_eq!(MapOp::IterStart.as_str(), "iterate");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MapOp {
    /// `v := m[k]`, `v, ok := m[k]` (`mapaccess1*`, `mapaccess2*`).
    Read = 1,
    /// `m[k] = v` (`mapassign*`).
    Write = 2,
    /// `delete(m, k)` (`mapdelete*`).
    Delete = 3,
    /// Start of `for k, v := range m` (`mapiterinit` / `mapIterStart`).
    IterStart = 4,
    /// Each further step of a range loop (`mapiternext` / `mapIterNext`).
    IterNext = 5,
    /// `clear(m)` (`mapclear`).
    Clear = 6,
    /// `make(map[K]V[, hint])` (`makemap*`).
    Make = 7,
}

impl MapOp {
    /// Every operation, in discriminant order.
    pub const ALL: [MapOp; 7] = [
        MapOp::Read,
        MapOp::Write,
        MapOp::Delete,
        MapOp::IterStart,
        MapOp::IterNext,
        MapOp::Clear,
        MapOp::Make,
    ];

    /// The name used in reports: `read`, `write`, `delete`, `iterate`, `iterate_next`,
    /// `clear`, `make`.
    pub fn as_str(self) -> &'static str {
        match self {
            MapOp::Read => "read",
            MapOp::Write => "write",
            MapOp::Delete => "delete",
            MapOp::IterStart => "iterate",
            MapOp::IterNext => "iterate_next",
            MapOp::Clear => "clear",
            MapOp::Make => "make",
        }
    }

    /// The operation with discriminant `v` (as carried in a BPF event).
    pub fn from_u8(v: u8) -> Option<MapOp> {
        MapOp::ALL.into_iter().find(|op| *op as u8 == v)
    }
}

impl fmt::Display for MapOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where to attach a uprobe for a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSite {
    /// Virtual address of the probed instruction.
    pub addr: u64,
    /// Its offset in the ELF file (what `perf_event_open`/libbpf uprobes take).
    pub file_offset: u64,
    /// After the stack check (cheap) or at the entry (fallback, with the reason).
    pub placement: Placement,
    /// The probed instruction in Intel syntax, e.g. `push rbp`.
    pub instruction: String,
    /// Whether the kernel emulates it (`push reg`, a one-byte `nop`: ~0.8 µs a hit here)
    /// instead of single-stepping it (~5 µs).
    pub emulated: bool,
}

/// One map entry point to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapProbe {
    /// What the function does.
    pub op: MapOp,
    /// Which specialisation: `generic`, `fast32`, `fast32ptr`, `fast64`, `fast64ptr`, `faststr`,
    /// `fat`, `small` (makemap_small), `hint64` (makemap64), `clone` (maps.Clone). Keys of `faststr` come as (ptr, len)
    /// in CX, DI; the others' key (or key pointer) in CX.
    pub variant: &'static str,
    /// The runtime function, e.g. `runtime.mapaccess2_faststr`.
    pub function: Function,
    /// Where to attach.
    pub site: ProbeSite,
    /// `Some(reason)`: do not count this function's calls (it only forwards to another entry
    /// point of the same operation that is probed too, e.g. Go 1.27's `mapaccess1*` calling
    /// `mapaccess2*`, or `mapaccess1_fat` calling `mapaccess1`).
    pub skip: Option<String>,
}

/// Map entry points (`runtime.` + name, or a full name with a dot) with their operation and
/// variant. The linker drops unused ones, so a binary has a subset.
pub(crate) const ENTRY_POINTS: &[(&str, MapOp, &str)] = &[
    ("mapaccess1", MapOp::Read, "generic"),
    ("mapaccess2", MapOp::Read, "generic"),
    ("mapaccess1_fast32", MapOp::Read, "fast32"),
    ("mapaccess2_fast32", MapOp::Read, "fast32"),
    ("mapaccess1_fast64", MapOp::Read, "fast64"),
    ("mapaccess2_fast64", MapOp::Read, "fast64"),
    ("mapaccess1_faststr", MapOp::Read, "faststr"),
    ("mapaccess2_faststr", MapOp::Read, "faststr"),
    ("mapaccess1_fat", MapOp::Read, "fat"),
    ("mapaccess2_fat", MapOp::Read, "fat"),
    ("mapassign", MapOp::Write, "generic"),
    ("mapassign_fast32", MapOp::Write, "fast32"),
    ("mapassign_fast32ptr", MapOp::Write, "fast32ptr"),
    ("mapassign_fast64", MapOp::Write, "fast64"),
    ("mapassign_fast64ptr", MapOp::Write, "fast64ptr"),
    ("mapassign_faststr", MapOp::Write, "faststr"),
    ("mapdelete", MapOp::Delete, "generic"),
    ("mapdelete_fast32", MapOp::Delete, "fast32"),
    ("mapdelete_fast64", MapOp::Delete, "fast64"),
    ("mapdelete_faststr", MapOp::Delete, "faststr"),
    ("mapiterinit", MapOp::IterStart, "generic"),
    ("mapIterStart", MapOp::IterStart, "generic"),
    ("mapiternext", MapOp::IterNext, "generic"),
    ("mapIterNext", MapOp::IterNext, "generic"),
    ("mapclear", MapOp::Clear, "generic"),
    ("makemap", MapOp::Make, "generic"),
    ("makemap_small", MapOp::Make, "small"),
    ("makemap64", MapOp::Make, "hint64"),
    // maps.Clone's copy (the runtime's, linknamed into package maps): returns it as `any`, so
    // the new map is the interface's data word (BX), not AX. Swiss maps clone without a
    // makemap call.
    ("maps.clone", MapOp::Make, "clone"),
];

/// One call to a map entry point from code whose maps are watched
/// ([`operates_on_callers_maps`](crate::operates_on_callers_maps)): where mapwatch probes map
/// operations unless asked to probe the entry points themselves. Accesses are probed on the
/// call ([`Placement::Call`]); creations where it returns ([`Placement::AfterCall`]), to see
/// the new map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapCall {
    /// What the called function does.
    pub op: MapOp,
    /// Its specialisation (as in [`MapProbe::variant`]).
    pub variant: &'static str,
    /// The entry point called.
    pub callee: Function,
    /// The function making the call.
    pub caller: String,
    /// The probed instruction: the `call rel32` ([`Placement::Call`]), or the one it returns
    /// to ([`Placement::AfterCall`]).
    pub site: ProbeSite,
    /// The call instruction's address.
    pub call: u64,
}

impl MapCall {
    /// The length of the call instruction: the return address is `site.addr + LEN`.
    pub const LEN: u64 = DirectCall::LEN;

    /// The call's displacement: the callee is at `call + LEN + rel32()`.
    pub fn rel32(&self) -> i32 {
        let next = self.call.wrapping_add(Self::LEN);
        self.callee.addr.wrapping_sub(next) as i64 as i32
    }
}

impl GoBinary {
    /// Every direct call to a map entry point in code that operates on its callers' maps,
    /// sorted by address. A creation whose return address is also a jump target is left out:
    /// a probe there would fire for the jump too.
    pub fn map_call_sites(&self) -> Vec<MapCall> {
        let entries: HashMap<u64, (MapOp, &'static str, Function)> = self
            .map_probe_plan()
            .into_iter()
            .map(|p| (p.function.addr, (p.op, p.variant, p.function)))
            .collect();
        let mut out = Vec::new();
        for caller in self.functions_where(crate::operates_on_callers_maps) {
            let Some(code) = self.elf.read(caller.addr, caller.size as usize) else {
                continue;
            };
            let mut jump_targets = None;
            for call in prologue::direct_calls(code, caller.addr) {
                let Some((op, variant, callee)) = entries.get(&call.target) else {
                    continue;
                };
                let (addr, placement) = if *op == MapOp::Make {
                    let Some(after) = call.at.checked_add(DirectCall::LEN) else {
                        continue;
                    };
                    let targets = jump_targets
                        .get_or_insert_with(|| prologue::jump_targets(code, caller.addr));
                    if targets.contains(&after) {
                        continue;
                    }
                    let callee = callee.addr;
                    (after, Placement::AfterCall { callee })
                } else {
                    let callee = callee.addr;
                    (call.at, Placement::Call { callee })
                };
                let Some(file_offset) = self.file_offset(addr) else {
                    continue;
                };
                out.push(MapCall {
                    op: *op,
                    variant,
                    callee: callee.clone(),
                    caller: caller.name.clone(),
                    site: ProbeSite {
                        addr,
                        file_offset,
                        emulated: matches!(placement, Placement::Call { .. }),
                        placement,
                        instruction: format!("call {}", callee.name),
                    },
                    call: call.at,
                });
            }
        }
        out.sort_by_key(|c| c.site.addr);
        out
    }
}

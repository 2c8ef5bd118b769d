//! Field offsets the BPF programs read from Go runtime structures.

use crate::dwarf::DwarfIndex;
use crate::version::GoVersion;
use crate::MapAbi;

/// Where a map's "write in progress" flag lives and how to test it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteFlag {
    /// Byte offset of the flag byte in the map header.
    pub offset: u32,
    /// Bits that mean "writing": `4` (`hashWriting` in `hmap.flags`) for classic maps; `0xff`
    /// for Swiss maps, whose `Map.writing` byte is toggled by XOR (non-zero = writing).
    pub mask: u8,
}

/// Where offsets came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSource {
    /// Struct member offsets from the binary's own DWARF.
    Dwarf,
    /// The built-in per-version table (stripped binaries).
    Table,
}

/// Offsets into Go runtime structures, for the BPF side.
///
/// ```no_run
/// # fn main() -> Result<(), gotarget::InspectError> {
/// let bin = gotarget::GoBinary::open(std::path::Path::new("./server"))?;
/// let off = bin.runtime_offsets();
/// println!("goid at g+{}, writing flag at map+{} mask {:#x}", off.goid, off.write_flag.offset, off.write_flag.mask);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeOffsets {
    /// `runtime.g.goid`.
    pub goid: u32,
    /// `runtime.g.parentGoid` (the goroutine that started this one).
    pub parent_goid: u32,
    /// `runtime.g.m`.
    pub m: u32,
    /// The map header's write-in-progress flag.
    pub write_flag: WriteFlag,
    /// Offset of the map pointer in the iterator (`hiter.h` / `maps.Iter.m`).
    pub iter_map_offset: u32,
    /// DWARF or the built-in table.
    pub source: OffsetSource,
}

/// The latest Go minor version the table was measured on.
pub(crate) const LATEST_TESTED_MINOR: u32 = 27;

/// Built-in offsets (measured from DWARF of Go 1.21.13 ... 1.27.3). Versions after the last
/// measured one reuse its values (and the caller reports a degradation).
pub(crate) fn table(version: &GoVersion, abi: MapAbi) -> RuntimeOffsets {
    let (goid, parent_goid) = match version.minor.min(LATEST_TESTED_MINOR) {
        ..=22 => (152, 272),
        23 | 24 => (160, 280),
        25 => (152, 272),
        _ => (152, 280),
    };
    RuntimeOffsets {
        goid,
        parent_goid,
        m: 48,
        write_flag: default_write_flag(abi),
        iter_map_offset: 24,
        source: OffsetSource::Table,
    }
}

fn default_write_flag(abi: MapAbi) -> WriteFlag {
    match abi {
        MapAbi::Classic => WriteFlag { offset: 8, mask: 4 },
        MapAbi::Swiss => WriteFlag {
            offset: 34,
            mask: 0xff,
        },
    }
}

/// DWARF structs read for the offsets.
pub(crate) const DWARF_STRUCTS: &[&str] = &[
    "runtime.g",
    "runtime.hmap",
    "runtime.hiter",
    "internal/runtime/maps.Map",
    "internal/runtime/maps.Iter",
    "runtime.moduledata",
    "internal/abi.Type",
    "sync.RWMutex",
    "sync.Once",
];

/// Offsets from DWARF, or the names of the members DWARF lacks.
pub(crate) fn from_dwarf(idx: &DwarfIndex, abi: MapAbi) -> Result<RuntimeOffsets, Vec<String>> {
    let (map_struct, flag_member, iter_struct, iter_member) = match abi {
        MapAbi::Classic => ("runtime.hmap", "flags", "runtime.hiter", "h"),
        MapAbi::Swiss => (
            "internal/runtime/maps.Map",
            "writing",
            "internal/runtime/maps.Iter",
            "m",
        ),
    };
    let mut missing = Vec::new();
    let mut get = |s: &str, m: &str| -> u32 {
        match idx.member(s, m).and_then(|v| u32::try_from(v).ok()) {
            Some(v) => v,
            None => {
                missing.push(format!("{s}.{m}"));
                0
            }
        }
    };
    let goid = get("runtime.g", "goid");
    let parent_goid = get("runtime.g", "parentGoid");
    let m = get("runtime.g", "m");
    let flag = get(map_struct, flag_member);
    let iter_map_offset = get(iter_struct, iter_member);
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(RuntimeOffsets {
        goid,
        parent_goid,
        m,
        write_flag: WriteFlag {
            offset: flag,
            mask: default_write_flag(abi).mask,
        },
        iter_map_offset,
        source: OffsetSource::Dwarf,
    })
}

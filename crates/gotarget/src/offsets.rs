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

/// Where the map header keeps its hash seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSeed {
    /// Offset in the header.
    pub offset: u32,
    /// Size in bytes (4: `uint32` on classic maps; 8: `uintptr` on Swiss maps).
    pub size: u32,
}

impl MapSeed {
    fn of(abi: MapAbi) -> MapSeed {
        match abi {
            MapAbi::Classic => MapSeed {
                offset: 12,
                size: 4,
            },
            MapAbi::Swiss => MapSeed { offset: 8, size: 8 },
        }
    }
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
    /// `runtime.g.coroarg` (the coroutine a switch is about; Go 1.22+).
    pub coroarg: Option<u32>,
    /// The map header's write-in-progress flag.
    pub write_flag: WriteFlag,
    /// The map header's hash seed, random per map (`hmap.hash0` / `maps.Map.seed`): a map
    /// made at a reused address has another one, so (address, seed) names a map.
    pub seed: MapSeed,
    /// Offset of the map pointer in the iterator (`hiter.h` / `maps.Iter.m`).
    pub iter_map_offset: u32,
    /// Channel header (`runtime.hchan`) fields.
    pub chan: ChanLayout,
    /// DWARF or the built-in table.
    pub source: OffsetSource,
}

/// Byte offsets of the `runtime.hchan` fields that say which buffer slot a channel operation
/// uses. Read with the channel's lock held, where they are exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChanLayout {
    /// `qcount`: elements in the buffer.
    pub qcount: u32,
    /// `dataqsiz`: the capacity (0: unbuffered).
    pub dataqsiz: u32,
    /// `elemsize` (a u16).
    pub elemsize: u32,
    /// `closed` (a u32).
    pub closed: u32,
    /// `sendx`: the slot the next buffered send fills.
    pub sendx: u32,
    /// `recvx`: the slot the next buffered receive takes.
    pub recvx: u32,
    /// `recvq.first`: the first waiting receiver (nil: none).
    pub recvq_first: u32,
    /// `sendq.first`: the first waiting sender (nil: none).
    pub sendq_first: u32,
}

impl ChanLayout {
    /// The layout of Go 1.`minor` (measured from DWARF of 1.21.13 ... 1.27.3: 1.23 added
    /// `timer` before `elemtype`; 1.24's `synctest` byte and 1.25's `bubble` moved nothing
    /// read here).
    pub(crate) fn of_minor(minor: u32) -> ChanLayout {
        let shift = if minor >= 23 { 8 } else { 0 };
        ChanLayout {
            qcount: 0,
            dataqsiz: 8,
            elemsize: 24,
            closed: 28,
            sendx: 40 + shift,
            recvx: 48 + shift,
            recvq_first: 56 + shift,
            sendq_first: 72 + shift,
        }
    }
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
    let coroarg = match version.minor.min(LATEST_TESTED_MINOR) {
        ..=21 => None,
        22 => Some(368),
        25 => Some(376),
        _ => Some(384),
    };
    RuntimeOffsets {
        goid,
        parent_goid,
        m: 48,
        coroarg,
        write_flag: default_write_flag(abi),
        seed: MapSeed::of(abi),
        iter_map_offset: 24,
        chan: ChanLayout::of_minor(version.minor.min(LATEST_TESTED_MINOR)),
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
    "runtime.hchan",
    "runtime.waitq",
];

/// Offsets from DWARF, or the names of the members DWARF lacks. The channel layout comes
/// from the table when DWARF has no `runtime.hchan` (a program that makes no channel).
pub(crate) fn from_dwarf(
    idx: &DwarfIndex,
    abi: MapAbi,
    version: &GoVersion,
) -> Result<RuntimeOffsets, Vec<String>> {
    let (map_struct, flag_member, seed_member, iter_struct, iter_member) = match abi {
        MapAbi::Classic => ("runtime.hmap", "flags", "hash0", "runtime.hiter", "h"),
        MapAbi::Swiss => (
            "internal/runtime/maps.Map",
            "writing",
            "seed",
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
    let coroarg = idx
        .member("runtime.g", "coroarg")
        .and_then(|v| u32::try_from(v).ok());
    let flag = get(map_struct, flag_member);
    let seed = get(map_struct, seed_member);
    let iter_map_offset = get(iter_struct, iter_member);
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(RuntimeOffsets {
        goid,
        parent_goid,
        m,
        coroarg,
        write_flag: WriteFlag {
            offset: flag,
            mask: default_write_flag(abi).mask,
        },
        seed: MapSeed {
            offset: seed,
            size: MapSeed::of(abi).size,
        },
        iter_map_offset,
        chan: chan_from_dwarf(idx)
            .unwrap_or_else(|| ChanLayout::of_minor(version.minor.min(LATEST_TESTED_MINOR))),
        source: OffsetSource::Dwarf,
    })
}

/// `runtime.hchan`'s layout from DWARF, if it describes every field read.
fn chan_from_dwarf(idx: &DwarfIndex) -> Option<ChanLayout> {
    let get = |s: &str, m: &str| idx.member(s, m).and_then(|v| u32::try_from(v).ok());
    let field = |m: &str| get("runtime.hchan", m);
    let first = get("runtime.waitq", "first")?;
    Some(ChanLayout {
        qcount: field("qcount")?,
        dataqsiz: field("dataqsiz")?,
        elemsize: field("elemsize")?,
        closed: field("closed")?,
        sendx: field("sendx")?,
        recvx: field("recvx")?,
        recvq_first: field("recvq")? + first,
        sendq_first: field("sendq")? + first,
    })
}

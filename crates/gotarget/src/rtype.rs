//! Type names from runtime type descriptors (`internal/abi.Type`), for binaries without DWARF.
//!
//! `abi.Type` (Go 1.21+, amd64): Size_ 0, PtrBytes 8, Hash 16, TFlag 20, Align_ 21,
//! FieldAlign_ 22, Kind_ 23, Equal 24, GCData 32, Str 40 (`NameOff`, int32 from
//! moduledata.types), PtrToThis 44. A name is a flag byte, a varint length and the bytes.
//! With `TFlagExtraStar` the stored string has a leading `*` that is not part of the name.

use crate::buildinfo::read_uvarint;
use crate::elf::Elf;
use crate::moduledata::ModuleData;

const OFF_TFLAG: u64 = 20;
const OFF_STR: u64 = 40;
const TFLAG_EXTRA_STAR: u8 = 1 << 1;
/// Longest name we accept (Go names of real map types stay far below this).
const MAX_NAME: usize = 4096;

/// The name of the type whose descriptor is at `addr`, e.g. `map[string]int`.
pub(crate) fn type_name(elf: &Elf, md: &ModuleData, addr: u64) -> Option<String> {
    // A descriptor lives in the types area; anything else is not a type address.
    if addr < md.types || addr.checked_add(48)? > md.etypes {
        return None;
    }
    let tflag = *elf.read(addr + OFF_TFLAG, 1)?.first()?;
    let str_off = i32::from_le_bytes(elf.read(addr + OFF_STR, 4)?.try_into().ok()?);
    let name_addr = md.types.checked_add_signed(i64::from(str_off))?;
    if name_addr >= md.etypes {
        return None;
    }
    let mut p = elf.read_to_end(name_addr.checked_add(1)?)?;
    let len = usize::try_from(read_uvarint(&mut p)?).ok()?;
    if len > MAX_NAME {
        return None;
    }
    let bytes = p.get(..len)?;
    let name = std::str::from_utf8(bytes).ok()?;
    let name = if tflag & TFLAG_EXTRA_STAR != 0 {
        name.strip_prefix('*').unwrap_or(name)
    } else {
        name
    };
    Some(name.to_string())
}

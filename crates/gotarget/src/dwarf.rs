//! DWARF queries: struct member offsets, runtime type descriptor names, inlined call sites.
//!
//! Go emits DWARF 4 (1.21-1.24) or 5 (1.25+), zlib-compressed; `elf.rs` hands us the
//! decompressed sections. Readers share the bytes through `Arc`, so `gimli::Dwarf` is owned
//! and `Send + Sync`.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use gimli::{AttributeValue, LittleEndian, Reader as _};

use crate::elf::Elf;

/// The gimli reader used throughout: an owned, shareable slice.
pub(crate) type Reader = gimli::EndianArcSlice<LittleEndian>;

/// Go's `DW_AT_go_runtime_type`: address of a type's runtime descriptor.
const DW_AT_GO_RUNTIME_TYPE: gimli::DwAt = gimli::DwAt(0x2904);

/// Builds a `gimli::Dwarf` over the (decompressed) sections; missing sections read as empty.
pub(crate) fn load(elf: &Elf) -> Result<gimli::Dwarf<Reader>, gimli::Error> {
    let empty: Arc<[u8]> = Arc::from(&[][..]);
    gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
        let bytes = elf
            .dwarf_sections
            .get(id.name())
            .cloned()
            .unwrap_or_else(|| empty.clone());
        Ok(Reader::new(bytes, LittleEndian))
    })
}

/// What one pass over `.debug_info` found.
#[derive(Default)]
pub(crate) struct DwarfIndex {
    /// struct name -> member name -> byte offset, for the structs asked for.
    pub structs: HashMap<String, HashMap<String, u64>>,
    /// runtime type descriptor address -> Go type name.
    pub type_names: HashMap<u64, String>,
}

impl DwarfIndex {
    /// Offset of `member` in struct `strukt`, if DWARF describes both.
    pub fn member(&self, strukt: &str, member: &str) -> Option<u64> {
        self.structs.get(strukt)?.get(member).copied()
    }
}

/// One pass over all DIEs: member offsets of `wanted` structs and all runtime type names.
pub(crate) fn index(dwarf: &gimli::Dwarf<Reader>, wanted: &[&str]) -> gimli::Result<DwarfIndex> {
    let mut out = DwarfIndex::default();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut cursor = unit.entries();
        let mut depth: isize = 0;
        // (depth of the struct DIE, its name) while inside a wanted struct.
        let mut current: Option<(isize, String)> = None;
        while let Some((delta, entry)) = cursor.next_dfs()? {
            depth += delta;
            if matches!(&current, Some((d, _)) if depth <= *d) {
                current = None;
            }
            let tag = entry.tag();
            // Address 0: a type with no runtime descriptor in this binary.
            if let Some(AttributeValue::Addr(addr @ 1..)) =
                entry.attr_value(DW_AT_GO_RUNTIME_TYPE)?
            {
                if let Some(name) = name_of(dwarf, &unit, entry.attr_value(gimli::DW_AT_name)?) {
                    out.type_names.entry(addr).or_insert(name);
                }
            }
            if tag == gimli::DW_TAG_structure_type {
                if let Some(name) = name_of(dwarf, &unit, entry.attr_value(gimli::DW_AT_name)?) {
                    if wanted.contains(&name.as_str()) && !out.structs.contains_key(&name) {
                        current = Some((depth, name));
                    }
                }
            } else if tag == gimli::DW_TAG_member {
                if let Some((d, sname)) = &current {
                    if depth == d + 1 {
                        let member = name_of(dwarf, &unit, entry.attr_value(gimli::DW_AT_name)?);
                        let loc = entry
                            .attr(gimli::DW_AT_data_member_location)?
                            .and_then(|a| a.udata_value());
                        if let (Some(member), Some(loc)) = (member, loc) {
                            out.structs
                                .entry(sname.clone())
                                .or_default()
                                .insert(member, loc);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One place where a function was inlined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlinedSite {
    /// Lowest address of the inlined code.
    pub low_pc: u64,
    /// One past the highest address of the inlined code.
    pub high_pc: u64,
    /// The exact address ranges (inlined code can be split; `low_pc..high_pc` is their hull).
    pub ranges: Vec<Range<u64>>,
    /// Source file of the call (in the caller).
    pub call_file: String,
    /// Source line of the call.
    pub call_line: u32,
    /// The function the call is written in (itself possibly inlined), e.g. `main.main`.
    pub caller: String,
}

/// Names of all subprogram DIEs by `.debug_info` offset: the targets of `DW_AT_abstract_origin`.
/// Go puts a function's abstract DIE in its own package's unit, so inlining across packages
/// refers to it with `DW_FORM_ref_addr` (another unit), which one global map resolves.
pub(crate) fn subprogram_names(
    dwarf: &gimli::Dwarf<Reader>,
) -> gimli::Result<HashMap<usize, String>> {
    let mut out = HashMap::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut cursor = unit.entries();
        while let Some((_, entry)) = cursor.next_dfs()? {
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            let Some(off) = entry.offset().to_debug_info_offset(&unit.header) else {
                continue;
            };
            if let Some(name) = name_of(dwarf, &unit, entry.attr_value(gimli::DW_AT_name)?) {
                out.insert(off.0, name);
            }
        }
    }
    Ok(out)
}

/// Every `DW_TAG_inlined_subroutine` whose abstract origin's name is `wanted`, with that name,
/// in one pass over the units.
pub(crate) fn inlined_sites(
    dwarf: &gimli::Dwarf<Reader>,
    origins: &HashMap<usize, String>,
    wanted: impl Fn(&str) -> bool,
) -> gimli::Result<Vec<(String, InlinedSite)>> {
    let mut out = Vec::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut cursor = unit.entries();
        let mut depth: isize = 0;
        // Enclosing function scopes: (depth, name).
        let mut scopes: Vec<(isize, String)> = Vec::new();
        while let Some((delta, entry)) = cursor.next_dfs()? {
            depth += delta;
            while scopes.last().is_some_and(|(d, _)| *d >= depth) {
                scopes.pop();
            }
            let tag = entry.tag();
            if tag != gimli::DW_TAG_subprogram && tag != gimli::DW_TAG_inlined_subroutine {
                continue;
            }
            let mut name = name_of(dwarf, &unit, entry.attr_value(gimli::DW_AT_name)?);
            if name.is_none() {
                let origin = match entry.attr_value(gimli::DW_AT_abstract_origin)? {
                    Some(AttributeValue::UnitRef(off)) => off.to_debug_info_offset(&unit.header),
                    Some(AttributeValue::DebugInfoRef(off)) => Some(off),
                    _ => None,
                };
                name = origin.and_then(|o| origins.get(&o.0).cloned());
            }
            let Some(name) = name else { continue };
            if tag == gimli::DW_TAG_inlined_subroutine && wanted(&name) {
                if let Some(site) = site(dwarf, &unit, entry, &scopes)? {
                    out.push((name.clone(), site));
                }
            }
            scopes.push((depth, name));
        }
    }
    out.sort_by_key(|(_, s)| s.low_pc);
    Ok(out)
}

/// The site described by an inlined-subroutine DIE (`None` if it covers no code).
fn site(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
    scopes: &[(isize, String)],
) -> gimli::Result<Option<InlinedSite>> {
    let mut ranges = Vec::new();
    let mut iter = dwarf.die_ranges(unit, entry)?;
    while let Some(r) = iter.next()? {
        if r.begin < r.end {
            ranges.push(r.begin..r.end);
        }
    }
    let (Some(lo), Some(hi)) = (
        ranges.iter().map(|r| r.start).min(),
        ranges.iter().map(|r| r.end).max(),
    ) else {
        return Ok(None);
    };
    let call_file = match entry.attr_value(gimli::DW_AT_call_file)? {
        Some(AttributeValue::FileIndex(i)) => file_name(dwarf, unit, i),
        Some(v) => v.udata_value().and_then(|i| file_name(dwarf, unit, i)),
        None => None,
    };
    let call_line = entry
        .attr(gimli::DW_AT_call_line)?
        .and_then(|a| a.udata_value())
        .unwrap_or(0);
    Ok(Some(InlinedSite {
        low_pc: lo,
        high_pc: hi,
        ranges,
        call_file: call_file.unwrap_or_default(),
        call_line: u32::try_from(call_line).unwrap_or(0),
        caller: scopes.last().map(|(_, n)| n.clone()).unwrap_or_default(),
    }))
}

/// A DIE attribute's string value.
fn name_of(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    value: Option<AttributeValue<Reader>>,
) -> Option<String> {
    let s = dwarf.attr_string(unit, value?).ok()?;
    Some(s.to_string_lossy().ok()?.into_owned())
}

/// The path of file `index` in the unit's line program (directory joined when relative).
fn file_name(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    index: u64,
) -> Option<String> {
    let header = unit.line_program.as_ref()?.header();
    let file = header.file(index)?;
    let name = name_of(dwarf, unit, Some(file.path_name()))?;
    if name.starts_with('/') {
        return Some(name);
    }
    match file
        .directory(header)
        .and_then(|d| name_of(dwarf, unit, Some(d)))
    {
        Some(dir) if !dir.is_empty() => Some(format!("{dir}/{name}")),
        _ => Some(name),
    }
}

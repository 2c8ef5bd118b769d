//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off by default; not a
//! stable API). Each runs one of the crate's parsers of untrusted input on raw bytes, the way
//! [`GoBinary::from_bytes`](crate::GoBinary::from_bytes) runs it on a file, then the queries
//! that read through what it parsed. [`seeds`] cuts the matching inputs out of a real binary.
//!
//! Targets that read through an ELF view take an *image*: loose sections, each
//! `name_len: u8, name: [u8; name_len], addr: u64le, len: u32le, bytes: [u8; len]`, mapped at
//! their addresses (a short last record is dropped).

use std::path::Path;

use crate::elf::Elf;
use crate::moduledata::{self, ModuleData};
use crate::pclntab::{le_u64, Pclntab, FUNCDATA_INL_TREE, PCDATA_INL_TREE_INDEX};
use crate::syncsite::{FunctionCode, KeyInstruction};
use crate::{buildinfo, prologue, rtype, symbolize, GoBinary, InspectError};

/// Where [`pclntab`] maps the table (and, as `moduledata.gofunc`, its inline trees).
const PCLNTAB_ADDR: u64 = 0x4c_0000;
/// The text start [`pclntab`] assumes when the header leaves it 0 (as Go 1.26+ does).
const TEXT_ADDR: u64 = 0x40_1000;
/// Functions of a table [`pclntab`] walks.
const MAX_FUNCS: usize = 4096;
/// Functions in a `.gopclntab` seed (a whole table is large, and slow to walk).
const PCLNTAB_SEED_FUNCS: usize = 256;
/// Type descriptor addresses [`type_names`] queries.
const MAX_TYPES: usize = 64;

/// A little-endian reader over the fixed header of a target's input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        let v = le_u64(self.0, 0)?;
        self.0 = &self.0[8..];
        Some(v)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.0.get(..n)?;
        self.0 = &self.0[n..];
        Some(b)
    }
}

/// The sections of an image (see the module documentation).
pub fn parse_image(image: &[u8]) -> Vec<(String, u64, &[u8])> {
    let mut input = Input(image);
    let mut out = Vec::new();
    let mut next = || {
        let name_len = usize::from(input.u8()?);
        let name = String::from_utf8_lossy(input.bytes(name_len)?).into_owned();
        let addr = input.u64()?;
        let len = u32::from_le_bytes(input.bytes(4)?.try_into().ok()?) as usize;
        Some((name, addr, input.bytes(len)?))
    };
    while let Some(section) = next() {
        out.push(section);
    }
    out
}

/// Encodes sections as an image (names are cut to 255 bytes, contents to 4 GiB).
pub fn encode_image(sections: &[(&str, u64, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(name, addr, bytes) in sections {
        let name = &name.as_bytes()[..name.len().min(255)];
        let bytes = &bytes[..bytes.len().min(u32::MAX as usize)];
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&addr.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

fn elf_of(image: &[u8]) -> Elf {
    Elf::from_sections(&parse_image(image))
}

/// `.gopclntab` bytes: parses the table, then walks its functions (names, ends, lookups,
/// files and lines) and symbolizes pcs in them, inline trees included (read from the table
/// itself, standing in for `go:func.*`).
pub fn pclntab(data: &[u8]) {
    let Ok(pcln) = Pclntab::parse(data.to_vec(), PCLNTAB_ADDR, TEXT_ADDR) else {
        return;
    };
    let elf = Elf::from_sections(&[(".gopclntab".into(), PCLNTAB_ADDR, data)]);
    let md = ModuleData {
        addr: 0,
        text: TEXT_ADDR,
        types: 0,
        etypes: 0,
        gofunc: PCLNTAB_ADDR,
    };
    for i in 0..pcln.len().min(MAX_FUNCS) {
        let Some(f) = pcln.func(i) else { continue };
        let _ = pcln.func_name(&f);
        let _ = pcln.funcdata(&f, FUNCDATA_INL_TREE);
        let _ = pcln.pcdata(&f, PCDATA_INL_TREE_INDEX, f.entry);
        let end = pcln.func_end(&f).unwrap_or(f.entry);
        for pc in [f.entry, f.entry.midpoint(end), end.wrapping_sub(1)] {
            let _ = pcln.find(pc);
            let _ = symbolize::from_pclntab(&pcln, &elf, Some(&md), pc);
        }
    }
    for pc in [0, TEXT_ADDR, u64::MAX] {
        let _ = symbolize::from_pclntab(&pcln, &elf, None, pc);
    }
}

/// An image holding `.go.buildinfo` (the old pointer format reads the strings it points to
/// from the other sections): reads the version and settings as [`GoBinary::from_bytes`] does.
pub fn buildinfo(image: &[u8]) {
    let elf = elf_of(image);
    if let Ok(Some(info)) = buildinfo::read(&elf) {
        let _ = info.version();
        let _ = info.has_experiment("swissmap");
        let _ = info.setting("GOARCH");
    }
}

/// `minor: u8, pcln_addr: u64le, funcname_offset: u64le`, then an image: finds moduledata as
/// [`GoBinary::from_bytes`] does, then names the types at the start of its types area.
pub fn moduledata(input: &[u8]) {
    let mut input = Input(input);
    let (Some(minor), Some(pcln_addr), Some(names)) = (input.u8(), input.u64(), input.u64()) else {
        return;
    };
    let Ok(names) = usize::try_from(names) else {
        return;
    };
    let elf = elf_of(input.0);
    let Some(md) = moduledata::locate(&elf, pcln_addr, names, u32::from(minor)) else {
        return;
    };
    for i in 0..MAX_TYPES as u64 {
        let _ = rtype::type_name(&elf, &md, md.types.wrapping_add(8 * i));
    }
}

/// `types: u64le, etypes: u64le, n: u8, addrs: [u64le; n]`, then an image: the names of the
/// type descriptors at `addrs` in the types area `types..etypes`, as
/// [`GoBinary::type_name`] finds them without DWARF.
pub fn type_names(input: &[u8]) {
    let mut input = Input(input);
    let (Some(types), Some(etypes), Some(n)) = (input.u64(), input.u64(), input.u8()) else {
        return;
    };
    let addrs: Vec<u64> = (0..n).map_while(|_| input.u64()).collect();
    let elf = elf_of(input.0);
    let md = ModuleData {
        addr: 0,
        text: 0,
        types,
        etypes,
        gofunc: 0,
    };
    for addr in addrs {
        let _ = rtype::type_name(&elf, &md, addr);
    }
}

/// `addr: u64le`, then machine code starting at `addr`: the prologue decoder, the call, jump
/// and return listings, and the inlined-operation placement of the sync plan.
pub fn code(input: &[u8]) {
    let mut input = Input(input);
    let Some(addr) = input.u64() else { return };
    let code = input.0;
    let _ = prologue::decode(code, addr);
    let calls = prologue::direct_calls(code, addr);
    let _ = prologue::jump_targets(code, addr);
    let _ = prologue::returns(code, addr);
    let f = FunctionCode::decode(code, addr);
    let end = addr.saturating_add(code.len() as u64);
    let targets: Vec<u64> = calls.iter().map(|c| c.target).collect();
    for key in [
        KeyInstruction::LockCmpxchg,
        KeyInstruction::LockXadd,
        KeyInstruction::Atomic,
        KeyInstruction::FirstLoad,
    ] {
        for at in f.key_instructions(key).into_iter().take(16) {
            let _ = f.is_store(at);
            let _ = f.key_before(at, key);
            let _ = f.place(at..end, key, 8, true);
            let _ = f.place(at..end, key, -8, false);
        }
        let _ = f.has_key(addr..end, key);
    }
    let _ = f.after_lock(&targets, 0x1c);
}

/// Seeds for each target from a real binary: `(target, input)` pairs. `binary` itself is the
/// seed of the whole-binary target; the rest are its tables in the formats above.
pub fn seeds(binary: &Path) -> Result<Vec<(&'static str, Vec<u8>)>, InspectError> {
    let bin = GoBinary::open(binary)?;
    let elf = &bin.elf;
    let mut out = Vec::new();
    let section = |name: &str| elf.section(name).map(|s| (s, elf.section_data(s)));
    if let Some(table) = bin.pcln.shrunk(PCLNTAB_SEED_FUNCS) {
        out.push(("pclntab", table));
    }
    if let Some((s, data)) = section(".go.buildinfo") {
        out.push((
            "buildinfo",
            encode_image(&[(".go.buildinfo", s.addr, data)]),
        ));
    }
    // Tables are addressed: an image of (the part that matters of) each section they lie in.
    let window = |addr: u64, before: u64, len: u64| -> Option<(&str, u64, &[u8])> {
        let s = elf.sections.iter().find(|s| {
            let size = s.file_range.map_or(0, |(_, l)| l);
            addr >= s.addr && addr - s.addr < size
        })?;
        let start = addr.saturating_sub(before).max(s.addr);
        let data = elf.section_data(s);
        let from = (start - s.addr) as usize;
        let to = data.len().min(from.saturating_add(len as usize));
        Some((s.name.as_str(), start, &data[from..to]))
    };
    if let Some(md) = bin.moduledata {
        let mut header = vec![bin.version.minor.min(255) as u8];
        header.extend_from_slice(&bin.pcln.addr.to_le_bytes());
        header.extend_from_slice(&(bin.pcln.funcname_offset() as u64).to_le_bytes());
        let sections: Vec<_> = [
            window(md.addr, 64, 1024),
            window(md.types, 0, 4096),
            window(md.gofunc, 0, 64),
        ]
        .into_iter()
        .flatten()
        .collect();
        header.extend(encode_image(&sections));
        out.push(("moduledata", header));

        // Type descriptors: the map types DWARF names, else the start of the types area.
        let mut addrs: Vec<u64> = bin
            .dwarf
            .as_ref()
            .map(|d| {
                let mut v: Vec<(&u64, &String)> = d.index.type_names.iter().collect();
                v.sort_by_key(|(a, n)| (!n.starts_with("map["), **a));
                v.into_iter().map(|(a, _)| *a).take(MAX_TYPES).collect()
            })
            .unwrap_or_default();
        if addrs.is_empty() {
            addrs.push(md.types);
        }
        let mut header = Vec::new();
        header.extend_from_slice(&md.types.to_le_bytes());
        header.extend_from_slice(&md.etypes.to_le_bytes());
        header.push(addrs.len() as u8);
        for a in &addrs {
            header.extend_from_slice(&a.to_le_bytes());
        }
        if let Some(types) = window(md.types, 0, md.etypes.saturating_sub(md.types)) {
            header.extend(encode_image(&[types]));
            out.push(("type_names", header));
        }
    }
    // Code: the map entry points' and a few user functions'.
    let mut functions: Vec<_> = bin
        .map_probe_plan()
        .into_iter()
        .map(|p| p.function)
        .collect();
    functions.extend(
        bin.functions_where(crate::is_user_function)
            .into_iter()
            .take(8),
    );
    for f in functions {
        if let Some(code) = elf.read(f.addr, f.size.min(4096) as usize) {
            let mut input = f.addr.to_le_bytes().to_vec();
            input.extend_from_slice(code);
            out.push(("code", input));
        }
    }
    Ok(out)
}

/// What the fuzz targets found, each input cut to what makes the point.
#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds are what they stand for: a shrunk `.gopclntab` names, places and bounds its
    /// functions as the binary's does.
    #[test]
    fn shrunk_pclntab_agrees_with_the_binary() {
        let path = gobuild::Build::new("1.25.5", "allops")
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let bin = GoBinary::open(&path).unwrap();
        let seed = bin.pcln.shrunk(PCLNTAB_SEED_FUNCS).unwrap();
        let text = bin.pcln.func(0).unwrap().entry;
        let small = Pclntab::parse(seed, 0, text).unwrap();
        assert_eq!(small.len(), PCLNTAB_SEED_FUNCS);
        for i in 0..small.len() {
            let (f, g) = (bin.pcln.func(i).unwrap(), small.func(i).unwrap());
            assert_eq!(bin.pcln.func_name(&f), small.func_name(&g));
            assert_eq!(bin.pcln.func_end(&f), small.func_end(&g));
            assert_eq!(bin.pcln.line(&f, f.entry), small.line(&g, g.entry));
            assert_eq!(bin.pcln.file(&f, f.entry), small.file(&g, g.entry));
        }
    }

    /// Code that runs off the end of the address space: its instruction addresses wrap.
    #[test]
    fn code_at_the_top_of_the_address_space() {
        // cmp rsp,[r14+0x10]; jbe +2; push rbp; call rel32 0; lock cmpxchg [rsi+8],edi;
        // jne -0x20; jmp +0; ret
        let code = [
            0x49, 0x3b, 0x66, 0x10, 0x76, 0x02, 0x55, 0xe8, 0, 0, 0, 0, 0xf0, 0x0f, 0xb1, 0x7e,
            0x08, 0x75, 0xe0, 0xeb, 0x00, 0xc3,
        ];
        for back in 0..=code.len() as u64 + 40 {
            let mut input = (u64::MAX - back).to_le_bytes().to_vec();
            input.extend_from_slice(&code);
            super::code(&input);
        }
    }

    /// A header word addressed at the end of the address space.
    const TOP: u64 = u64::MAX - 7;

    #[test]
    fn buildinfo_pointer_at_the_top_of_the_address_space() {
        // Pre-1.18 pointer format, its version string header at the last 8 addressable bytes:
        // the length word after it would be at 2^64.
        let mut blob = b"\xff Go buildinf:\x08\x00".to_vec();
        blob.extend_from_slice(&TOP.to_le_bytes());
        blob.resize(32, 0);
        let image = encode_image(&[(".go.buildinfo", 0x1000, &blob), ("x", TOP, &[0; 8])]);
        buildinfo(&image);
    }

    #[test]
    fn moduledata_at_the_top_of_the_address_space() {
        // The pcHeader/funcnametab pair found in a section ending at 2^64: its fields would
        // lie past it.
        let (pcln, names) = (0x4b_0348u64, 0x4b_0390u64);
        let mut input = vec![21];
        input.extend_from_slice(&pcln.to_le_bytes());
        input.extend_from_slice(&(names - pcln).to_le_bytes());
        let mut words = pcln.to_le_bytes().to_vec();
        words.extend_from_slice(&names.to_le_bytes());
        words.resize(24, 0);
        input.extend(encode_image(&[(".go.module", u64::MAX - 23, &words)]));
        moduledata(&input);
    }
}

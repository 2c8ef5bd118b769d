//! The ELF view: sections, loadable segments, function symbols, and reads by virtual address.
//!
//! Everything is copied out of `object`'s borrowed view once at open time, so the rest of the
//! crate works on owned data and `GoBinary` stays `Send + Sync` without self-references.

use std::collections::HashMap;
use std::sync::Arc;

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SectionKind, SymbolKind};

/// Why the ELF layer rejected a file (mapped to `InspectError` by the caller, who knows the path).
pub(crate) enum ElfError {
    NotElf,
    Malformed(String),
    UnsupportedArch(String),
}

/// One section header, owned.
#[derive(Clone, Debug)]
pub(crate) struct Section {
    pub name: String,
    pub addr: u64,
    /// File range, `None` for `SHT_NOBITS` (`.bss`).
    pub file_range: Option<(u64, u64)>,
}

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug)]
struct Segment {
    vaddr: u64,
    offset: u64,
    filesz: u64,
}

/// Owned facts about the ELF file plus its bytes.
pub(crate) struct Elf {
    pub data: Arc<[u8]>,
    pub sections: Vec<Section>,
    segments: Vec<Segment>,
    /// Function symbols from `.symtab`: name -> (address, size).
    pub symbols: HashMap<String, (u64, u64)>,
    /// DWARF sections, decompressed (Go compresses them with zlib: `SHF_COMPRESSED`).
    pub dwarf_sections: HashMap<&'static str, Arc<[u8]>>,
}

/// The DWARF sections gimli may ask for.
const DWARF_SECTIONS: &[&str] = &[
    ".debug_abbrev",
    ".debug_addr",
    ".debug_aranges",
    ".debug_info",
    ".debug_line",
    ".debug_line_str",
    ".debug_loc",
    ".debug_loclists",
    ".debug_ranges",
    ".debug_rnglists",
    ".debug_str",
    ".debug_str_offsets",
    ".debug_types",
];

impl Elf {
    pub fn parse(data: Arc<[u8]>) -> Result<Elf, ElfError> {
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        let file = object::File::parse(&*data).map_err(|e| ElfError::Malformed(e.to_string()))?;
        if file.format() != object::BinaryFormat::Elf {
            return Err(ElfError::NotElf);
        }
        match file.architecture() {
            object::Architecture::X86_64 => {}
            other => return Err(ElfError::UnsupportedArch(arch_name(other))),
        }
        if !file.is_little_endian() || !file.is_64() {
            return Err(ElfError::UnsupportedArch("x86_64 with a 32-bit ABI".into()));
        }

        let mut sections = Vec::new();
        let mut dwarf_sections = HashMap::new();
        for s in file.sections() {
            let name = s.name().map_err(|e| ElfError::Malformed(e.to_string()))?;
            let file_range = match s.kind() {
                SectionKind::UninitializedData | SectionKind::UninitializedTls => None,
                _ => s.file_range(),
            };
            if let Some((off, len)) = file_range {
                if !fits(off, len, data.len()) {
                    return Err(ElfError::Malformed(format!(
                        "section {name} lies past the end of the file (truncated?)"
                    )));
                }
            }
            if let Some(&dname) = DWARF_SECTIONS.iter().find(|&&d| d == name) {
                let bytes = s
                    .uncompressed_data()
                    .map_err(|e| ElfError::Malformed(format!("cannot decompress {name}: {e}")))?;
                dwarf_sections.insert(dname, Arc::from(&*bytes));
            }
            sections.push(Section {
                name: name.to_string(),
                addr: s.address(),
                file_range,
            });
        }

        let mut segments = Vec::new();
        for seg in file.segments() {
            let (offset, filesz) = seg.file_range();
            if !fits(offset, filesz, data.len()) {
                return Err(ElfError::Malformed(
                    "a loadable segment lies past the end of the file (truncated?)".into(),
                ));
            }
            segments.push(Segment {
                vaddr: seg.address(),
                offset,
                filesz,
            });
        }

        let mut symbols = HashMap::new();
        for sym in file.symbols() {
            if sym.kind() != SymbolKind::Text || sym.address() == 0 {
                continue;
            }
            if let Ok(name) = sym.name() {
                symbols.insert(name.to_string(), (sym.address(), sym.size()));
            }
        }

        Ok(Elf {
            data,
            sections,
            segments,
            symbols,
            dwarf_sections,
        })
    }

    /// An ELF view of loose sections, `(name, address, bytes)`, each also a loadable segment:
    /// what the fuzz targets hand the parsers that read through an `Elf`.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn from_sections(sections: &[(String, u64, &[u8])]) -> Elf {
        let mut data = Vec::new();
        let mut headers = Vec::new();
        let mut segments = Vec::new();
        for (name, addr, bytes) in sections {
            let offset = data.len() as u64;
            let len = bytes.len() as u64;
            data.extend_from_slice(bytes);
            headers.push(Section {
                name: name.clone(),
                addr: *addr,
                file_range: Some((offset, len)),
            });
            segments.push(Segment {
                vaddr: *addr,
                offset,
                filesz: len,
            });
        }
        Elf {
            data: Arc::from(data),
            sections: headers,
            segments,
            symbols: HashMap::new(),
            dwarf_sections: HashMap::new(),
        }
    }

    /// The section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The file bytes of a section (empty for `.bss`).
    pub fn section_data(&self, s: &Section) -> &[u8] {
        match s.file_range {
            // Bounds were checked in `parse`.
            Some((off, len)) => &self.data[off as usize..(off + len) as usize],
            None => &[],
        }
    }

    /// File offset of a virtual address backed by file bytes (in a `PT_LOAD` segment).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| {
            let delta = vaddr.checked_sub(s.vaddr)?;
            (delta < s.filesz).then_some(s.offset + delta)
        })
    }

    /// `len` bytes at virtual address `vaddr`, if all of them are backed by the file.
    pub fn read(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        let seg = self.segments.iter().find(|s| {
            vaddr
                .checked_sub(s.vaddr)
                .is_some_and(|d| d.checked_add(len as u64).is_some_and(|e| e <= s.filesz))
        })?;
        let off = (seg.offset + (vaddr - seg.vaddr)) as usize;
        self.data.get(off..off.checked_add(len)?)
    }

    /// Bytes from `vaddr` to the end of its segment (for NUL-terminated or varint data).
    pub fn read_to_end(&self, vaddr: u64) -> Option<&[u8]> {
        let seg = self
            .segments
            .iter()
            .find(|s| vaddr.checked_sub(s.vaddr).is_some_and(|d| d < s.filesz))?;
        let off = seg.offset + (vaddr - seg.vaddr);
        self.data
            .get(off as usize..(seg.offset + seg.filesz) as usize)
    }

    pub fn read_u64(&self, vaddr: u64) -> Option<u64> {
        Some(u64::from_le_bytes(self.read(vaddr, 8)?.try_into().ok()?))
    }

    pub fn has_dwarf(&self) -> bool {
        self.dwarf_sections.contains_key(".debug_info")
    }
}

/// Whether `len` bytes at file offset `off` lie inside a file of `total` bytes.
fn fits(off: u64, len: u64, total: usize) -> bool {
    matches!(off.checked_add(len), Some(end) if end <= total as u64)
}

/// Go's name for an architecture, as users know it from `GOARCH`.
fn arch_name(a: object::Architecture) -> String {
    use object::Architecture::*;
    match a {
        Aarch64 => "arm64".into(),
        Arm => "arm".into(),
        I386 => "386".into(),
        Riscv64 => "riscv64".into(),
        PowerPc64 => "ppc64".into(),
        S390x => "s390x".into(),
        Mips | Mips64 => "mips".into(),
        LoongArch64 => "loong64".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

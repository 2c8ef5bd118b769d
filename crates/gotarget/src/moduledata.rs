//! Locating `runtime.firstmoduledata` without symbols, for the two fields stripped binaries
//! need: `gofunc` (base of FUNCDATA offsets, e.g. the inline tree) and `types`/`etypes`
//! (base of type name offsets).
//!
//! moduledata starts with `pcHeader *pcHeader` (the `.gopclntab` address) followed by the
//! `funcnametab` slice (pointing `funcnameOffset` bytes further), a pair distinctive enough to
//! find it by scanning the data sections (Go 1.26+ gives it its own section, `.go.module`).
//! Field offsets (amd64) are the same in Go 1.21-1.26; 1.27 inserts `typedesclen` after
//! `types` and `itaboffset`/`itabsize` after `etypes`. The tests check them against DWARF's
//! `runtime.moduledata` for every version.

use crate::elf::Elf;
use crate::pclntab::le_u64;

/// Offsets of moduledata fields (amd64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub text: u64,
    pub types: u64,
    pub etypes: u64,
    pub gofunc: u64,
}

/// The moduledata layout of Go 1.`minor` (later versions: the latest known one).
pub(crate) fn layout(minor: u32) -> Layout {
    if minor >= 27 {
        Layout {
            text: 176,
            types: 296,
            etypes: 312,
            gofunc: 344,
        }
    } else {
        Layout {
            text: 176,
            types: 296,
            etypes: 304,
            gofunc: 320,
        }
    }
}

/// The moduledata fields this crate uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ModuleData {
    /// Address of `runtime.firstmoduledata`.
    #[allow(dead_code)] // checked by the tests against the symbol table
    pub addr: u64,
    /// `moduledata.text`: start of the text (pcHeader.textStart is 0 since Go 1.26).
    pub text: u64,
    /// `moduledata.types`: base for `abi.Type.Str` name offsets.
    pub types: u64,
    /// `moduledata.etypes`.
    pub etypes: u64,
    /// `moduledata.gofunc`: base for FUNCDATA offsets.
    pub gofunc: u64,
}

/// Finds moduledata by its first two words, the address of `.gopclntab` (`pcln_addr`) and of
/// its function names (`funcname_offset` bytes further); `None` if not found or implausible.
pub(crate) fn locate(
    elf: &Elf,
    pcln_addr: u64,
    funcname_offset: usize,
    minor: u32,
) -> Option<ModuleData> {
    let l = layout(minor);
    let want_names = pcln_addr.checked_add(u64::try_from(funcname_offset).ok()?)?;
    const LIKELY: [&str; 3] = [".go.module", ".noptrdata", ".data"];
    // Likely sections first, then any other (a relinked or unusual layout).
    let likely = LIKELY.iter().filter_map(|n| elf.section(n));
    let others = elf
        .sections
        .iter()
        .filter(|s| !LIKELY.contains(&s.name.as_str()));
    for sec in likely.chain(others) {
        let bytes = elf.section_data(sec);
        let found = (0..bytes.len().saturating_sub(16)).step_by(8).find(|&off| {
            le_u64(bytes, off) == Some(pcln_addr) && le_u64(bytes, off + 8) == Some(want_names)
        });
        if let Some(off) = found {
            let addr = sec.addr.checked_add(off as u64)?;
            let field = |at: u64| elf.read_u64(addr.checked_add(at)?);
            let md = ModuleData {
                addr,
                text: field(l.text)?,
                types: field(l.types)?,
                etypes: field(l.etypes)?,
                gofunc: field(l.gofunc)?,
            };
            // types..etypes and gofunc lie in read-only data backed by the file.
            let sane = md.types < md.etypes
                && elf.read(md.types, 1).is_some()
                && elf.read(md.gofunc, 1).is_some();
            return sane.then_some(md);
        }
    }
    None
}

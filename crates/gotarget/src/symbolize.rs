//! Program counter -> source frames, from DWARF (addr2line) or from `.gopclntab`.

use crate::dwarf::Reader;
use crate::elf::Elf;
use crate::moduledata::ModuleData;
use crate::pclntab::{Pclntab, FUNCDATA_INL_TREE, PCDATA_INL_TREE_INDEX};

/// One source frame of a stack.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Go function name, e.g. `main.main` or `sync.(*Mutex).Lock`.
    pub function: String,
    /// Source file path as recorded at build time (`?` when unknown).
    pub file: String,
    /// Source line (0 when unknown).
    pub line: u32,
}

/// Size of `runtime.inlinedCall` (Go 1.20+): funcID u8, _ [3]u8, nameOff i32, parentPc i32,
/// startLine i32.
const INLINED_CALL_SIZE: u64 = 16;
/// Guard against cycles in a damaged inline tree.
const MAX_INLINE_DEPTH: usize = 64;

/// Frames at `pc` from `.gopclntab`, innermost first, with inlined frames when the inline
/// tree can be read (needs moduledata.gofunc).
pub(crate) fn from_pclntab(
    pcln: &Pclntab,
    elf: &Elf,
    md: Option<&ModuleData>,
    pc: u64,
) -> Vec<Frame> {
    let Some(f) = pcln.find(pc) else {
        return Vec::new();
    };
    let outer_name = pcln.func_name(&f).unwrap_or("?").to_string();
    let at = |pc: u64| {
        (
            pcln.file(&f, pc).unwrap_or("?").to_string(),
            pcln.line(&f, pc).unwrap_or(0),
        )
    };
    let mut frames = Vec::new();
    // runtime.inlineUnwinder: the file/line at pc belong to the innermost inlined function;
    // its tree entry names it and gives parentPc, a pc in the caller whose file/line is the
    // call site.
    let tree = md.and_then(|md| {
        let off = pcln.funcdata(&f, FUNCDATA_INL_TREE)?;
        md.gofunc.checked_add(u64::from(off))
    });
    let mut pc = pc;
    if let Some(tree) = tree {
        for _ in 0..MAX_INLINE_DEPTH {
            let Some(ix) = pcln.pcdata(&f, PCDATA_INL_TREE_INDEX, pc) else {
                break;
            };
            let Ok(ix) = u64::try_from(ix) else { break };
            let Some(entry) = ix
                .checked_mul(INLINED_CALL_SIZE)
                .and_then(|o| tree.checked_add(o))
                .and_then(|a| elf.read(a, INLINED_CALL_SIZE as usize))
            else {
                break;
            };
            let name_off = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
            let parent_pc = i32::from_le_bytes([entry[8], entry[9], entry[10], entry[11]]);
            let (file, line) = at(pc);
            frames.push(Frame {
                function: pcln.name_at(name_off).unwrap_or("?").to_string(),
                file,
                line,
            });
            let Some(next) = f.entry.checked_add_signed(i64::from(parent_pc)) else {
                break;
            };
            pc = next;
        }
    }
    let (file, line) = at(pc);
    frames.push(Frame {
        function: outer_name,
        file,
        line,
    });
    frames
}

/// Frames at `pc` from DWARF, innermost first; `None` when DWARF does not cover `pc`.
pub(crate) fn from_dwarf(ctx: &addr2line::Context<Reader>, pc: u64) -> Option<Vec<Frame>> {
    let mut iter = ctx.find_frames(pc).skip_all_loads().ok()?;
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = iter.next() {
        let function = frame
            .function
            .as_ref()
            .and_then(|f| f.raw_name().ok().map(|n| n.into_owned()));
        let (file, line) = match &frame.location {
            Some(loc) => (loc.file.unwrap_or("?").to_string(), loc.line.unwrap_or(0)),
            None => ("?".to_string(), 0),
        };
        frames.push(Frame {
            function: function.unwrap_or_else(|| "?".to_string()),
            file,
            line,
        });
    }
    (!frames.is_empty() && frames.iter().all(|f| f.function != "?")).then_some(frames)
}

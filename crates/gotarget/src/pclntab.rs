//! `.gopclntab` (Go 1.20+ format, magic `0xfffffff1`): function table, names, files, lines,
//! and the pc-value tables (including `PCDATA_InlTreeIndex` for inlined frames).
//!
//! Layout (runtime/symtab.go `pcHeader`, `_func`; cmd/link/internal/ld/pcln.go):
//!
//! ```text
//! pcHeader: magic u32, pad u8 u8, minLC u8, ptrSize u8, nfunc int, nfiles uint,
//!           textStart, funcnameOffset, cuOffset, filetabOffset, pctabOffset, pclnOffset
//! functab (at pclnOffset): (nfunc+1) x { entryoff u32 (from textStart), funcoff u32 }
//! _func (at pclnOffset+funcoff): entryOff u32, nameOff i32, args i32, deferreturn u32,
//!           pcsp u32, pcfile u32, pcln u32, npcdata u32, cuOffset u32, startLine i32,
//!           funcID u8, flag u8, _ u8, nfuncdata u8, pcdata [npcdata]u32, funcdata [nfuncdata]u32
//! ```
//!
//! Every read is bounds-checked: a damaged table yields `None`, never a panic.

use crate::buildinfo::read_uvarint;

/// The only pclntab format mapwatch supports (Go 1.20 and later).
pub(crate) const MAGIC_GO120: u32 = 0xffff_fff1;
/// `_func` fixed part size, before the pcdata offsets.
const FUNC_FIXED: usize = 44;
/// runtime.PCDATA_InlTreeIndex.
pub(crate) const PCDATA_INL_TREE_INDEX: u32 = 2;
/// runtime.FUNCDATA_InlTree.
pub(crate) const FUNCDATA_INL_TREE: u32 = 3;

/// A parsed `.gopclntab`.
pub(crate) struct Pclntab {
    data: Vec<u8>,
    /// Virtual address of the section (moduledata.pcHeader points here).
    pub addr: u64,
    quantum: u64,
    nfunc: usize,
    text_start: u64,
    header_text_start_unset: bool,
    funcname_off: usize,
    cu_off: usize,
    filetab_off: usize,
    pctab_off: usize,
    pcln_off: usize,
}

/// One function's `_func` record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FuncRecord {
    /// Index in the function table.
    pub index: usize,
    /// Offset of `_func` inside the section.
    off: usize,
    pub entry: u64,
}

impl Pclntab {
    /// Parses the header and checks that the tables it points to lie inside the section.
    pub fn parse(data: Vec<u8>, addr: u64, text_fallback: u64) -> Result<Pclntab, String> {
        let magic = le_u32(&data, 0).ok_or("truncated .gopclntab header")?;
        if magic != MAGIC_GO120 {
            return Err(format!(
                "unknown .gopclntab magic {magic:#x} (Go 1.20+ uses {MAGIC_GO120:#x})"
            ));
        }
        let quantum = u64::from(data.get(6).copied().ok_or("truncated .gopclntab")?);
        let ptr_size = data.get(7).copied().ok_or("truncated .gopclntab")?;
        if ptr_size != 8 || !(1..=4).contains(&quantum) {
            return Err(format!(
                "unexpected .gopclntab pointer size {ptr_size} / pc quantum {quantum}"
            ));
        }
        let word = |i: usize| le_u64(&data, 8 + 8 * i).ok_or("truncated .gopclntab header");
        let size = |i: usize| -> Result<usize, String> {
            let v = word(i)?;
            usize::try_from(v)
                .ok()
                .filter(|&v| v <= data.len())
                .ok_or_else(|| format!(".gopclntab header field {i} out of range ({v:#x})"))
        };
        let nfunc = usize::try_from(word(0)?).map_err(|_| "bad nfunc")?;
        let mut text_start = word(2)?;
        let header_text_start_unset = text_start == 0;
        // Go 1.26+ leaves textStart 0 (the runtime uses moduledata.text), and PIE binaries
        // carry a relocation instead of the value: start from .text, refined by the caller
        // from moduledata when found.
        if text_start == 0 {
            text_start = text_fallback;
        }
        let t = Pclntab {
            addr,
            quantum,
            nfunc,
            text_start,
            header_text_start_unset,
            funcname_off: size(3)?,
            cu_off: size(4)?,
            filetab_off: size(5)?,
            pctab_off: size(6)?,
            pcln_off: size(7)?,
            data,
        };
        // The function table (nfunc+1 pairs of u32) must fit.
        let ftab_len = nfunc
            .checked_add(1)
            .and_then(|n| n.checked_mul(8))
            .ok_or("bad nfunc")?;
        if !matches!(t.pcln_off.checked_add(ftab_len), Some(end) if end <= t.data.len()) {
            return Err(format!(
                "function table of {nfunc} entries overruns .gopclntab"
            ));
        }
        Ok(t)
    }

    /// Replaces the text start when the header did not record it.
    pub fn set_text_start_if_unset(&mut self, text: u64) {
        if self.header_text_start_unset {
            self.text_start = text;
        }
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// Offset of the pcln table (start of functab) and start of names, for moduledata checks.
    pub fn funcname_offset(&self) -> usize {
        self.funcname_off
    }

    fn ftab_entry(&self, i: usize) -> Option<(u32, u32)> {
        let off = self.pcln_off.checked_add(i.checked_mul(8)?)?;
        Some((le_u32(&self.data, off)?, le_u32(&self.data, off + 4)?))
    }

    /// The function at table index `i`.
    pub fn func(&self, i: usize) -> Option<FuncRecord> {
        if i >= self.nfunc {
            return None;
        }
        let (entryoff, funcoff) = self.ftab_entry(i)?;
        let off = self.pcln_off.checked_add(funcoff as usize)?;
        // The fixed part must be readable; variable parts are checked on use.
        self.data.get(off..off.checked_add(FUNC_FIXED)?)?;
        Some(FuncRecord {
            index: i,
            off,
            entry: self.text_start.checked_add(u64::from(entryoff))?,
        })
    }

    /// End address of function `f` (the next function's entry, or the end of text).
    pub fn func_end(&self, f: &FuncRecord) -> Option<u64> {
        let (entryoff, _) = self.ftab_entry(f.index + 1)?;
        self.text_start.checked_add(u64::from(entryoff))
    }

    /// The function containing `pc`.
    pub fn find(&self, pc: u64) -> Option<FuncRecord> {
        let rel = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        let (first, _) = self.ftab_entry(0)?;
        let (last, _) = self.ftab_entry(self.nfunc)?;
        if rel < first || rel >= last {
            return None;
        }
        // Binary search for the last entry with entryoff <= rel.
        let (mut lo, mut hi) = (0usize, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.ftab_entry(mid)?.0 <= rel {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.func(lo)
    }

    /// A table of this one's first `n` functions only, for fuzzing seeds: the name and
    /// pc-value tables cut after what those use (a pc-value table may be cut short), the
    /// compilation unit and file tables kept. Assumes the order Go writes: header, names,
    /// compilation units, files, pc-value tables, function table.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn shrunk(&self, n: usize) -> Option<Vec<u8>> {
        /// Kept past the start of the last pc-value table a function uses.
        const PC_SLACK: usize = 1024;
        let funcs: Vec<FuncRecord> = (0..n.min(self.nfunc)).map_while(|i| self.func(i)).collect();
        let record_len = |f: &FuncRecord| -> Option<usize> {
            let npcdata = self.field_u32(f, 28)? as usize;
            let nfuncdata = usize::from(*self.data.get(f.off + 43)?);
            Some(FUNC_FIXED + 4 * (npcdata + nfuncdata))
        };
        let mut names_end = 0;
        let mut pc_end = 0;
        for f in &funcs {
            let name_off = self.field_u32(f, 4)? as usize;
            names_end = names_end.max(name_off + self.func_name(f)?.len() + 1);
            let npcdata = self.field_u32(f, 28)? as usize;
            let tables = [16, 20, 24]
                .into_iter()
                .chain((0..npcdata).map(|i| FUNC_FIXED + 4 * i));
            for at in tables {
                pc_end = pc_end.max(self.field_u32(f, at)? as usize + PC_SLACK);
            }
        }
        let d = &self.data;
        let names = d.get(self.funcname_off..self.cu_off)?;
        let pctab = d.get(self.pctab_off..self.pcln_off)?;
        let mut out = d.get(..self.funcname_off)?.to_vec();
        let mut put = |bytes: &[u8]| {
            let at = out.len();
            out.extend_from_slice(bytes);
            at
        };
        let funcname_off = put(&names[..names_end.min(names.len())]);
        let cu_off = put(d.get(self.cu_off..self.filetab_off)?);
        let filetab_off = put(d.get(self.filetab_off..self.pctab_off)?);
        let pctab_off = put(&pctab[..pc_end.min(pctab.len())]);
        out.resize(out.len().next_multiple_of(8), 0);
        let pcln_off = out.len();
        let mut records = Vec::new();
        let mut ftab = Vec::new();
        let ftab_len = 8 * (funcs.len() + 1);
        for f in &funcs {
            let (entryoff, _) = self.ftab_entry(f.index)?;
            ftab.extend_from_slice(&entryoff.to_le_bytes());
            ftab.extend_from_slice(&u32::try_from(ftab_len + records.len()).ok()?.to_le_bytes());
            records.extend_from_slice(d.get(f.off..f.off + record_len(f)?)?);
        }
        let (end, _) = self.ftab_entry(funcs.len())?;
        ftab.extend_from_slice(&end.to_le_bytes());
        ftab.extend_from_slice(&0u32.to_le_bytes());
        out.extend(ftab);
        out.extend(records);
        let words = [
            funcs.len(),
            funcname_off,
            cu_off,
            filetab_off,
            pctab_off,
            pcln_off,
        ];
        for (i, v) in [0, 3, 4, 5, 6, 7].into_iter().zip(words) {
            out[8 + 8 * i..16 + 8 * i].copy_from_slice(&(v as u64).to_le_bytes());
        }
        Some(out)
    }

    fn field_u32(&self, f: &FuncRecord, at: usize) -> Option<u32> {
        le_u32(&self.data, f.off + at)
    }

    /// Name at `nameOff` in the function name table.
    pub fn name_at(&self, name_off: u32) -> Option<&str> {
        let start = self.funcname_off.checked_add(name_off as usize)?;
        cstr(&self.data, start)
    }

    /// The function's name, e.g. `runtime.mapaccess2_fast64`.
    pub fn func_name(&self, f: &FuncRecord) -> Option<&str> {
        self.name_at(self.field_u32(f, 4)?)
    }

    /// Source line at `pc` (in the innermost inlined function, if any).
    pub fn line(&self, f: &FuncRecord, pc: u64) -> Option<u32> {
        let v = self.pcvalue(self.field_u32(f, 24)?, f.entry, pc)?;
        u32::try_from(v).ok()
    }

    /// Source file at `pc` (in the innermost inlined function, if any).
    pub fn file(&self, f: &FuncRecord, pc: u64) -> Option<&str> {
        let fileno = self.pcvalue(self.field_u32(f, 20)?, f.entry, pc)?;
        let fileno = u32::try_from(fileno).ok()?;
        let cu = self.field_u32(f, 32)?;
        let idx = (cu as usize).checked_add(fileno as usize)?;
        let file_off = le_u32(&self.data, self.cu_off.checked_add(idx.checked_mul(4)?)?)?;
        if file_off == u32::MAX {
            return None;
        }
        cstr(&self.data, self.filetab_off.checked_add(file_off as usize)?)
    }

    /// The pc-value table offset of `PCDATA` index `table`, if the function has one.
    pub fn pcdata(&self, f: &FuncRecord, table: u32, pc: u64) -> Option<i32> {
        let npcdata = self.field_u32(f, 28)?;
        if table >= npcdata {
            return None;
        }
        let off = self.field_u32(f, FUNC_FIXED + 4 * table as usize)?;
        self.pcvalue(off, f.entry, pc)
    }

    /// `FUNCDATA` slot `index` as an offset from moduledata.gofunc, if present.
    pub fn funcdata(&self, f: &FuncRecord, index: u32) -> Option<u32> {
        let npcdata = self.field_u32(f, 28)? as usize;
        let nfuncdata = u32::from(*self.data.get(f.off + 43)?);
        if index >= nfuncdata {
            return None;
        }
        let at = FUNC_FIXED + 4 * npcdata + 4 * index as usize;
        let off = self.field_u32(f, at)?;
        (off != u32::MAX).then_some(off)
    }

    /// Decodes a pc-value table (runtime.pcvalue): pairs of zig-zag value deltas and pc deltas,
    /// starting from value -1 at the function entry. `None` when `pc` is not covered.
    fn pcvalue(&self, table_off: u32, entry: u64, target: u64) -> Option<i32> {
        if table_off == 0 {
            return None;
        }
        let start = self.pctab_off.checked_add(table_off as usize)?;
        let mut p = self.data.get(start..)?;
        let mut val: i32 = -1;
        let mut pc = entry;
        let mut first = true;
        loop {
            let uvdelta = read_uvarint(&mut p)?;
            if uvdelta == 0 && !first {
                return None;
            }
            first = false;
            let uvdelta = u32::try_from(uvdelta).ok()?;
            let vdelta = if uvdelta & 1 != 0 {
                !(uvdelta >> 1) as i32
            } else {
                (uvdelta >> 1) as i32
            };
            val = val.wrapping_add(vdelta);
            let pcdelta = read_uvarint(&mut p)?.checked_mul(self.quantum)?;
            pc = pc.checked_add(pcdelta)?;
            if target < pc {
                return Some(val);
            }
        }
    }
}

pub(crate) fn le_u32(data: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(crate) fn le_u64(data: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        data.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// A NUL-terminated UTF-8 string at `start` (Go names are UTF-8).
fn cstr(data: &[u8], start: usize) -> Option<&str> {
    let rest = data.get(start..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

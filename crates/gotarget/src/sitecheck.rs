//! The last check before probes go in. A uprobe writes `int3` over the first byte of the
//! instruction at its address: an address that is not the start of the instruction a probe
//! was planned on (a planning bug, or a binary whose tables lie) would corrupt the target's
//! code. So every site is checked against the code itself, the way a debugger would: inside a
//! function of `.gopclntab` whose entry is sound (where `.symtab` has the function, at the
//! same address; and where the code before it ends: decoding the previous function reaches the
//! entry exactly), at an instruction boundary decoding from that entry, the instruction
//! planned (a call to the right function for call sites, a `ret` for return sites), and at
//! the file offset of its address.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic};

use crate::error::InspectError;
use crate::plan::ProbeSite;
use crate::prologue::{self, DirectCall, Placement};
use crate::{Function, GoBinary};

/// Instructions of one function, by address.
type Decoded = HashMap<u64, Instruction>;

impl GoBinary {
    /// Checks every site as described in this module's documentation; the error names the
    /// first that fails and why.
    ///
    /// ```no_run
    /// # let bin = gotarget::GoBinary::open(std::path::Path::new("./server")).unwrap();
    /// let calls = bin.map_call_sites();
    /// bin.check_probe_sites(calls.iter().map(|c| &c.site)).expect("every site is sound");
    /// ```
    pub fn check_probe_sites<'a>(
        &self,
        sites: impl IntoIterator<Item = &'a ProbeSite>,
    ) -> Result<(), InspectError> {
        let mut functions: HashMap<u64, (String, Decoded)> = HashMap::new();
        for site in sites {
            let refuse = |why: String| InspectError::Malformed {
                path: self.path().to_path_buf(),
                reason: format!("refusing a probe at {:#x}: {why}", site.addr),
            };
            let f = self
                .function_at(site.addr)
                .ok_or_else(|| refuse("not inside any function of .gopclntab".into()))?;
            let (name, decoded) = match functions.entry(f.addr) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => {
                    self.check_entry(&f).map_err(refuse)?;
                    let code = self.code(&f).ok_or_else(|| {
                        refuse(format!("the code of {} is not in the file", f.name))
                    })?;
                    new.insert((f.name.clone(), decode(code, f.addr)))
                }
            };
            let at = |addr: u64| {
                decoded.get(&addr).ok_or_else(|| {
                    refuse(format!(
                        "{addr:#x} is not at an instruction boundary in {name}"
                    ))
                })
            };
            let ins = at(site.addr)?;
            match &site.placement {
                Placement::Call { callee } => expect_call(ins, *callee).map_err(refuse)?,
                Placement::AfterCall { callee } => {
                    let call = site.addr.saturating_sub(DirectCall::LEN);
                    expect_call(at(call)?, *callee).map_err(refuse)?;
                }
                Placement::Return if ins.flow_control() != FlowControl::Return => {
                    return Err(refuse(format!(
                        "`{}` is not a return",
                        prologue::format(ins)
                    )));
                }
                _ => {
                    let planned = site.instruction.split_whitespace().next();
                    let text = prologue::format(ins);
                    let found = text.split_whitespace().next();
                    if planned.is_some() && planned != found {
                        return Err(refuse(format!(
                            "planned on `{}`, the code there is `{text}`",
                            site.instruction
                        )));
                    }
                }
            }
            if self.file_offset(site.addr) != Some(site.file_offset) {
                return Err(refuse(format!(
                    "file offset {:#x} is not the address's",
                    site.file_offset
                )));
            }
        }
        Ok(())
    }
}

impl GoBinary {
    /// Whether `f`'s entry (from `.gopclntab`) agrees with `.symtab` and with the code
    /// before it.
    fn check_entry(&self, f: &Function) -> Result<(), String> {
        if let Some(&(addr, _)) = self.elf.symbols.get(&f.name) {
            if addr != f.addr {
                return Err(format!(
                    ".gopclntab puts {} at {:#x}, .symtab at {addr:#x}",
                    f.name, f.addr
                ));
            }
        }
        let before = self
            .pcln
            .find(f.addr)
            .and_then(|r| r.index.checked_sub(1))
            .and_then(|i| self.pcln.func(i));
        let Some(before) = before else {
            return Ok(());
        };
        let len = f
            .addr
            .checked_sub(before.entry)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| format!(".gopclntab puts the function before {} after it", f.name))?;
        let code = self
            .elf
            .read(before.entry, len)
            .ok_or_else(|| format!("the code before {} is not in the file", f.name))?;
        let mut decoder = Decoder::with_ip(64, code, before.entry, DecoderOptions::NONE);
        while decoder.can_decode() {
            if decoder.decode().code() == Code::INVALID {
                return Err(format!(
                    "the code before {} does not end at its entry {:#x}",
                    f.name, f.addr
                ));
            }
        }
        Ok(())
    }
}

fn decode(code: &[u8], addr: u64) -> Decoded {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut out = HashMap::new();
    while decoder.can_decode() {
        let ins = decoder.decode();
        out.insert(ins.ip(), ins);
    }
    out
}

/// `ins` is a `call rel32` to `callee`.
fn expect_call(ins: &Instruction, callee: u64) -> Result<(), String> {
    let direct = ins.mnemonic() == Mnemonic::Call && ins.len() == DirectCall::LEN as usize;
    if direct && ins.near_branch_target() == callee {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a call to {callee:#x}",
            prologue::format(ins)
        ))
    }
}

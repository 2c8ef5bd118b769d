//! Inspect a Go binary (x86_64 ELF) for the eBPF map watcher: Go version and map ABI, map
//! entry points with cheap uprobe sites, runtime struct offsets, and stack symbolization.
//!
//! Works on stripped binaries (`-ldflags=-s -w`) too, using Go's own tables (`.gopclntab`,
//! `.go.buildinfo`, runtime type descriptors) and a built-in offset table; what that costs is
//! listed by [`GoBinary::degradations`].
//!
//! ```no_run
//! use gotarget::{GoBinary, Placement};
//! # fn main() -> Result<(), gotarget::InspectError> {
//! let bin = GoBinary::open(std::path::Path::new("./server"))?;
//! println!("{} ({:?} maps)", bin.go_version(), bin.map_abi());
//! for note in bin.degradations() {
//!     eprintln!("degraded: {note}");
//! }
//! for p in bin.map_probe_plan().iter().filter(|p| p.skip.is_none()) {
//!     assert_eq!(p.site.placement, Placement::AfterStackCheck);
//!     println!("{} {} at file offset {:#x}", p.op, p.function.name, p.site.file_offset);
//! }
//! for frame in bin.symbolize(0x4a1234 - 1) {
//!     println!("{} {}:{}", frame.function, frame.file, frame.line);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod abi;
mod buildinfo;
mod dwarf;
mod elf;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod moduledata;
mod offsets;
mod pclntab;
mod plan;
mod prologue;
mod rtype;
mod sitecheck;
mod stdlib;
mod symbolize;
mod sync;
mod syncsite;
mod version;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

pub use abi::MapAbi;
pub use dwarf::InlinedSite;
pub use error::InspectError;
pub use offsets::{ChanLayout, MapSeed, OffsetSource, RuntimeOffsets, WriteFlag};
pub use plan::{MapCall, MapOp, MapProbe, ProbeSite};
pub use prologue::Placement;
pub use stdlib::{is_user_function, operates_on_callers_maps};
pub use symbolize::Frame;
pub use sync::{SyncKind, SyncObject, SyncPlan, SyncProbe};
pub use syncsite::{ObjectAddr, Reg};
pub use version::GoVersion;

use buildinfo::BuildInfo;
use elf::{Elf, ElfError};
use moduledata::ModuleData;
use pclntab::Pclntab;

/// A function of the binary.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Function {
    /// Full Go name, e.g. `runtime.mapassign_faststr`.
    pub name: String,
    /// Entry address.
    pub addr: u64,
    /// Size in bytes (from `.symtab`; from `.gopclntab` it includes alignment padding).
    pub size: u64,
}

/// Oldest supported Go minor version.
const MIN_MINOR: u32 = 21;
/// Bound on the symbolization cache; cleared when full (pcs of one binary rarely reach it).
const SYMBOL_CACHE_LIMIT: usize = 1 << 16;

/// An opened Go binary. Cheap to query, `Send + Sync`; share it behind an `Arc`.
pub struct GoBinary {
    path: PathBuf,
    elf: Elf,
    version: GoVersion,
    build: BuildInfo,
    map_abi: MapAbi,
    pcln: Pclntab,
    moduledata: Option<ModuleData>,
    offsets: RuntimeOffsets,
    degradations: Vec<String>,
    dwarf: Option<DwarfState>,
    names: OnceLock<HashMap<String, usize>>,
    symbol_cache: RwLock<HashMap<u64, Arc<[Frame]>>>,
}

struct DwarfState {
    dwarf: gimli::Dwarf<dwarf::Reader>,
    index: dwarf::DwarfIndex,
    // addr2line's context fills lazy caches through `&self` and is not `Sync`.
    lines: Mutex<addr2line::Context<dwarf::Reader>>,
    /// Abstract-origin names, built on the first `inlined_sites` call.
    origins: OnceLock<HashMap<usize, String>>,
}

impl std::fmt::Debug for GoBinary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoBinary")
            .field("path", &self.path)
            .field("version", &self.version.raw)
            .field("map_abi", &self.map_abi)
            .field("degradations", &self.degradations)
            .finish_non_exhaustive()
    }
}

impl GoBinary {
    /// Reads and checks `path`: an x86_64 ELF built by Go 1.21 or later.
    ///
    /// Everything needed later is parsed here, so later queries cannot fail on I/O.
    pub fn open(path: &Path) -> Result<GoBinary, InspectError> {
        let data = std::fs::read(path).map_err(|source| InspectError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path, Arc::from(data))
    }

    /// Like [`open`](Self::open), for a binary already in memory: `data` is the whole file
    /// and `path` names it in errors and [`path`](Self::path) (nothing is read from it).
    /// Any bytes are accepted: what is not an x86_64 Go ELF of Go 1.21 or later is an error.
    ///
    /// ```no_run
    /// # let bytes: Vec<u8> = std::fs::read("./server").unwrap();
    /// let bin = gotarget::GoBinary::from_bytes(std::path::Path::new("server"), bytes.into())?;
    /// # Ok::<(), gotarget::InspectError>(())
    /// ```
    pub fn from_bytes(path: &Path, data: Arc<[u8]>) -> Result<GoBinary, InspectError> {
        let p = || path.to_path_buf();
        let malformed = |reason: String| InspectError::Malformed { path: p(), reason };
        let elf = Elf::parse(data).map_err(|e| match e {
            ElfError::NotElf => InspectError::NotElf { path: p() },
            ElfError::Malformed(reason) => malformed(reason),
            ElfError::UnsupportedArch(arch) => InspectError::UnsupportedArch { path: p(), arch },
        })?;
        // PIE builds before Go 1.26 put it in .data.rel.ro.gopclntab.
        let pcln_section = elf
            .section(".gopclntab")
            .or_else(|| elf.section(".data.rel.ro.gopclntab"))
            .cloned();
        let build = match buildinfo::read(&elf).map_err(malformed)? {
            Some(b) => b,
            None if pcln_section.is_none() => return Err(InspectError::NotGo { path: p() }),
            None => return Err(malformed("Go binary without .go.buildinfo".into())),
        };
        let version = build.version().ok_or_else(|| {
            malformed(format!(
                "unrecognised Go version {:?}",
                build.version_string
            ))
        })?;
        if version.major != 1 || version.minor < MIN_MINOR {
            return Err(InspectError::UnsupportedGoVersion { path: p(), version });
        }
        let mut degradations = Vec::new();
        if version.minor > offsets::LATEST_TESTED_MINOR {
            degradations.push(format!(
                "untested Go version {version}: assuming Go 1.{} layouts",
                offsets::LATEST_TESTED_MINOR
            ));
        }

        let pcln_section = pcln_section.ok_or_else(|| malformed("no .gopclntab section".into()))?;
        let text_addr = elf.section(".text").map_or(0, |s| s.addr);
        let mut pcln = Pclntab::parse(
            elf.section_data(&pcln_section).to_vec(),
            pcln_section.addr,
            text_addr,
        )
        .map_err(malformed)?;
        let moduledata = moduledata::locate(&elf, pcln.addr, pcln.funcname_offset(), version.minor);
        // Go 1.26+ leaves pcHeader.textStart 0: take moduledata.text (PIE files may hold 0
        // there too, relocated at load time: keep .text then).
        if let Some(md) = moduledata.as_ref().filter(|md| md.text != 0) {
            pcln.set_text_start_if_unset(md.text);
        }

        let mut bin = GoBinary {
            path: p(),
            map_abi: MapAbi::Swiss,
            offsets: offsets::table(&version, MapAbi::Swiss),
            elf,
            version,
            build,
            pcln,
            moduledata,
            degradations,
            dwarf: None,
            names: OnceLock::new(),
            symbol_cache: RwLock::new(HashMap::new()),
        };
        if bin.elf.symbols.is_empty() {
            bin.degradations
                .push("no symbol table: function addresses from .gopclntab".into());
        }
        bin.map_abi = bin.detect_map_abi();
        bin.load_dwarf();
        bin.offsets = bin.compute_offsets();
        Ok(bin)
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Go release that built the binary.
    pub fn go_version(&self) -> &GoVersion {
        &self.version
    }

    /// The map implementation in the binary's runtime.
    pub fn map_abi(&self) -> MapAbi {
        self.map_abi
    }

    /// The `build` settings recorded by the Go toolchain (`GOARCH`, `GOEXPERIMENT`,
    /// `-ldflags`, `vcs.revision`, ...), in recorded order.
    pub fn build_settings(&self) -> &[(String, String)] {
        &self.build.settings
    }

    /// What works less well for this binary than for one with symbols and DWARF, one
    /// sentence each (empty for a normal build of a tested Go version).
    pub fn degradations(&self) -> &[String] {
        &self.degradations
    }

    /// The function called `name` (exact Go name), from `.symtab`, else from `.gopclntab`.
    ///
    /// ```no_run
    /// # let bin = gotarget::GoBinary::open(std::path::Path::new("./server")).unwrap();
    /// let f = bin.function("runtime.mapassign_faststr").expect("uses map[string]T");
    /// println!("{:#x}+{}", f.addr, f.size);
    /// ```
    pub fn function(&self, name: &str) -> Option<Function> {
        if let Some(&(addr, size)) = self.elf.symbols.get(name) {
            return Some(Function {
                name: name.to_string(),
                addr,
                size,
            });
        }
        let f = self.pcln.func(*self.name_index().get(name)?)?;
        let end = self.pcln.func_end(&f)?;
        Some(Function {
            name: name.to_string(),
            addr: f.entry,
            size: end.checked_sub(f.entry)?,
        })
    }

    /// Every function whose name `pred` accepts (from `.gopclntab`: stripped binaries too),
    /// sorted by address. For generic instantiations, whose names carry their shapes.
    pub fn functions_where(&self, pred: impl Fn(&str) -> bool) -> Vec<Function> {
        let mut out: Vec<Function> = self
            .name_index()
            .keys()
            .filter(|n| pred(n))
            .filter_map(|n| self.function(n))
            .collect();
        out.sort_by_key(|f| f.addr);
        out
    }

    fn name_index(&self) -> &HashMap<String, usize> {
        self.names.get_or_init(|| {
            (0..self.pcln.len())
                .filter_map(|i| {
                    let f = self.pcln.func(i)?;
                    Some((self.pcln.func_name(&f)?.to_string(), i))
                })
                .collect()
        })
    }

    /// The ELF file offset of virtual address `vaddr` (uprobes attach by file offset).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.elf.file_offset(vaddr)
    }

    /// Where to probe `f`: the `push rbp` after Go's stack check, found by decoding the
    /// prologue; the entry when there is no such instruction (with the reason).
    pub fn probe_site(&self, f: &Function) -> Result<ProbeSite, InspectError> {
        // The prologue is at most ~20 bytes; don't read past the function.
        let len = f.size.clamp(1, 64) as usize;
        let code = self
            .elf
            .read(f.addr, len)
            .ok_or_else(|| InspectError::Malformed {
                path: self.path.clone(),
                reason: format!("code of {} at {:#x} is not in the file", f.name, f.addr),
            })?;
        let d = prologue::decode(code, f.addr);
        let addr = f
            .addr
            .checked_add(d.offset)
            .ok_or_else(|| InspectError::Malformed {
                path: self.path.clone(),
                reason: format!("code of {} runs past the end of the address space", f.name),
            })?;
        let file_offset = self
            .file_offset(addr)
            .ok_or_else(|| InspectError::Malformed {
                path: self.path.clone(),
                reason: format!("{:#x} is not in a loadable segment", addr),
            })?;
        Ok(ProbeSite {
            addr,
            file_offset,
            // After the stack check, or the entry of a function without one: `push rbp`.
            emulated: d.placement == Placement::AfterStackCheck || d.instruction == "push rbp",
            placement: d.placement,
            instruction: d.instruction,
        })
    }

    /// The `ret` instructions of `f`, as probe sites: where a probe sees the function's results
    /// (in AX) without a uretprobe. Each hit is single-stepped (~16 µs here): use it only on
    /// rare calls such as `makemap`.
    pub fn return_sites(&self, f: &Function) -> Result<Vec<ProbeSite>, InspectError> {
        let malformed = |reason: String| InspectError::Malformed {
            path: self.path.clone(),
            reason,
        };
        let code = self.elf.read(f.addr, f.size as usize).ok_or_else(|| {
            malformed(format!(
                "code of {} at {:#x} is not in the file",
                f.name, f.addr
            ))
        })?;
        prologue::returns(code, f.addr)
            .into_iter()
            .map(|addr| {
                let file_offset = self
                    .file_offset(addr)
                    .ok_or_else(|| malformed(format!("{addr:#x} is not in a loadable segment")))?;
                Ok(ProbeSite {
                    addr,
                    file_offset,
                    placement: Placement::Return,
                    instruction: "ret".into(),
                    emulated: false,
                })
            })
            .collect()
    }

    /// Every map entry point the binary contains, with its probe site. Entry points that only
    /// forward to another probed entry point of the same operation (found by decoding their
    /// calls) carry `skip`, so no operation is counted twice.
    pub fn map_probe_plan(&self) -> Vec<MapProbe> {
        let mut plan: Vec<MapProbe> = plan::ENTRY_POINTS
            .iter()
            .filter_map(|&(name, op, variant)| {
                let function = if name.contains('.') {
                    self.function(name)?
                } else {
                    self.function(&format!("runtime.{name}"))?
                };
                let site = self.probe_site(&function).unwrap_or_else(|e| ProbeSite {
                    addr: function.addr,
                    file_offset: self.file_offset(function.addr).unwrap_or(0),
                    placement: Placement::Entry {
                        reason: e.to_string(),
                    },
                    instruction: String::new(),
                    emulated: false,
                });
                Some(MapProbe {
                    op,
                    variant,
                    function,
                    site,
                    skip: None,
                })
            })
            .collect();
        let entries: Vec<(u64, MapOp, String)> = plan
            .iter()
            .map(|p| (p.function.addr, p.op, p.function.name.clone()))
            .collect();
        for p in &mut plan {
            p.skip = self.wrapper_reason(&p.function, p.op, &entries);
        }
        plan
    }

    /// `Some(reason)` if every real call `f` makes goes to another entry point of `op`.
    fn wrapper_reason(
        &self,
        f: &Function,
        op: MapOp,
        entries: &[(u64, MapOp, String)],
    ) -> Option<String> {
        let code = self.elf.read(f.addr, usize::try_from(f.size).ok()?)?;
        let mut callees = Vec::new();
        for target in prologue::direct_calls(code, f.addr)
            .into_iter()
            .map(|c| c.target)
        {
            let name = self
                .pcln
                .find(target)
                .and_then(|c| self.pcln.func_name(&c))
                .unwrap_or("?");
            // The stack-growth path is not part of the operation.
            if name.starts_with("runtime.morestack") {
                continue;
            }
            match entries.iter().find(|(a, o, _)| *a == target && *o == op) {
                Some((_, _, callee)) if *callee != f.name => callees.push(callee.clone()),
                _ => return None,
            }
        }
        callees.dedup();
        (!callees.is_empty()).then(|| {
            format!(
                "{} only forwards to {} (probed there; counting both would double-count)",
                f.name,
                callees.join(", ")
            )
        })
    }

    /// Offsets into runtime structures for the BPF side (DWARF, else the built-in table).
    pub fn runtime_offsets(&self) -> RuntimeOffsets {
        self.offsets
    }

    /// Source frames at `pc`, innermost (inlined) first; empty if `pc` is not Go code.
    /// Pass return addresses minus 1. Results are cached; safe to call from many threads.
    pub fn symbolize(&self, pc: u64) -> Vec<Frame> {
        if let Ok(cache) = self.symbol_cache.read() {
            if let Some(frames) = cache.get(&pc) {
                return frames.to_vec();
            }
        }
        // Only Go code has frames; this also keeps odd pcs (0, u64::MAX, from bad stack
        // reads) away from addr2line, which overflows on u64::MAX.
        if self.pcln.find(pc).is_none() {
            return Vec::new();
        }
        let frames = self
            .dwarf
            .as_ref()
            .and_then(|d| {
                let ctx = d.lines.lock().ok()?;
                symbolize::from_dwarf(&ctx, pc)
            })
            .unwrap_or_else(|| {
                symbolize::from_pclntab(&self.pcln, &self.elf, self.moduledata.as_ref(), pc)
            });
        if let Ok(mut cache) = self.symbol_cache.write() {
            if cache.len() >= SYMBOL_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(pc, Arc::from(frames.as_slice()));
        }
        frames
    }

    /// The Go type whose runtime descriptor is at `type_addr` (the first argument of the map
    /// entry points), e.g. `map[string]int`. From DWARF's `DW_AT_go_runtime_type`, else from
    /// the descriptor's own name; `None` if neither knows the address.
    pub fn type_name(&self, type_addr: u64) -> Option<String> {
        if let Some(name) = self
            .dwarf
            .as_ref()
            .and_then(|d| d.index.type_names.get(&type_addr))
        {
            return Some(name.clone());
        }
        rtype::type_name(&self.elf, self.moduledata.as_ref()?, type_addr)
    }

    /// Every place `function` (e.g. `sync.(*Mutex).Lock`) was inlined, from DWARF. Empty
    /// without DWARF (see [`degradations`](Self::degradations)).
    pub fn inlined_sites(&self, function: &str) -> Vec<InlinedSite> {
        self.inlined_sites_where(|name| name == function)
            .into_iter()
            .map(|(_, site)| site)
            .collect()
    }

    /// Every place a function whose name is `wanted` was inlined, with that name, in one
    /// pass over DWARF (lowest address first). Empty without DWARF.
    pub(crate) fn inlined_sites_where(
        &self,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<(String, InlinedSite)> {
        let Some(d) = &self.dwarf else {
            return Vec::new();
        };
        let origins = d
            .origins
            .get_or_init(|| dwarf::subprogram_names(&d.dwarf).unwrap_or_default());
        dwarf::inlined_sites(&d.dwarf, origins, wanted).unwrap_or_default()
    }

    /// Whether DWARF is there to list inlined call sites.
    pub(crate) fn has_dwarf_inlining(&self) -> bool {
        self.dwarf.is_some()
    }

    /// Offset of `member` in struct `strukt`, from DWARF (structs in `DWARF_STRUCTS`).
    pub(crate) fn struct_member(&self, strukt: &str, member: &str) -> Option<u64> {
        self.dwarf.as_ref()?.index.member(strukt, member)
    }

    /// The function containing `pc`, bounds from `.gopclntab`.
    pub(crate) fn function_at(&self, pc: u64) -> Option<Function> {
        let f = self.pcln.find(pc)?;
        let name = self.pcln.func_name(&f)?.to_string();
        let end = self.pcln.func_end(&f)?;
        Some(Function {
            name,
            addr: f.entry,
            size: end.checked_sub(f.entry)?,
        })
    }

    /// The machine code of `f`.
    pub(crate) fn code(&self, f: &Function) -> Option<&[u8]> {
        self.elf.read(f.addr, usize::try_from(f.size).ok()?)
    }

    fn detect_map_abi(&mut self) -> MapAbi {
        let has = |n: &str| self.function(n).is_some();
        let (abi, note) = abi::detect(&self.version, &self.build, has);
        self.degradations.extend(note);
        abi
    }

    fn load_dwarf(&mut self) {
        let no_dwarf = |bin: &mut GoBinary, why: &str| {
            let how_inline = if bin.moduledata.is_some() {
                "with inlined frames from its inline tree"
            } else {
                "outermost function only (runtime.firstmoduledata not found)"
            };
            let types = if bin.moduledata.is_some() {
                "from runtime type descriptors"
            } else {
                "unavailable"
            };
            bin.degradations.extend([
                format!("{why}: stacks from .gopclntab, {how_inline}"),
                format!("{why}: type names {types}"),
                format!("{why}: inlined call sites (inlined_sites) unavailable"),
            ]);
        };
        if !self.elf.has_dwarf() {
            no_dwarf(self, "no DWARF");
            return;
        }
        let loaded = dwarf::load(&self.elf).and_then(|d| {
            let index = dwarf::index(&d, offsets::DWARF_STRUCTS)?;
            let lines = addr2line::Context::from_dwarf(dwarf::load(&self.elf)?)?;
            Ok(DwarfState {
                dwarf: d,
                index,
                lines: Mutex::new(lines),
                origins: OnceLock::new(),
            })
        });
        match loaded {
            Ok(state) => self.dwarf = Some(state),
            Err(e) => no_dwarf(self, &format!("unreadable DWARF ({e})")),
        }
    }

    fn compute_offsets(&mut self) -> RuntimeOffsets {
        let table = offsets::table(&self.version, self.map_abi);
        let why = match &self.dwarf {
            Some(d) => match offsets::from_dwarf(&d.index, self.map_abi, &self.version) {
                Ok(o) => return o,
                Err(missing) => format!("DWARF lacks {}", missing.join(", ")),
            },
            None => "no DWARF".to_string(),
        };
        let minor = self.version.minor.min(offsets::LATEST_TESTED_MINOR);
        self.degradations.push(format!(
            "{why}: runtime.g and map offsets from the built-in table for Go 1.{minor}"
        ));
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn go_binary_is_send_sync() {
        assert_send_sync::<GoBinary>();
    }

    /// The moduledata field offsets used for stripped binaries, and the scan that finds
    /// `runtime.firstmoduledata`, checked against DWARF and the symbol table of every version.
    #[test]
    fn moduledata_layout_matches_dwarf() {
        use object::{Object, ObjectSymbol};
        for version in gobuild::ALL_VERSIONS {
            let path = gobuild::Build::new(version, "allops")
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            let bin = GoBinary::open(&path).unwrap();
            let idx = &bin.dwarf.as_ref().unwrap().index;
            let member = |m: &str| idx.member("runtime.moduledata", m);
            let minor = bin.go_version().minor;
            let l = moduledata::layout(minor);
            let from_dwarf = moduledata::Layout {
                text: member("text").unwrap(),
                types: member("types").unwrap(),
                etypes: member("etypes").unwrap(),
                gofunc: member("gofunc").unwrap(),
            };
            assert_eq!(l, from_dwarf, "go{version}");
            assert_eq!(member("pcHeader"), Some(0), "go{version}");
            assert_eq!(member("funcnametab"), Some(8), "go{version}");
            // abi.Type fields read by rtype.rs.
            let ty = |m: &str| idx.member("internal/abi.Type", m);
            assert_eq!(
                (ty("TFlag"), ty("Str")),
                (Some(20), Some(40)),
                "go{version}"
            );
            let bytes = std::fs::read(&path).unwrap();
            let elf = object::File::parse(&*bytes).unwrap();
            let sym = elf
                .symbols()
                .find(|s| s.name() == Ok("runtime.firstmoduledata"))
                .unwrap();
            let md = bin
                .moduledata
                .unwrap_or_else(|| panic!("go{version}: moduledata not found"));
            assert_eq!(md.addr, sym.address(), "go{version}");
        }
    }

    #[test]
    fn garbage_is_not_elf_and_never_panics() {
        let p = Path::new("mem");
        let r = GoBinary::from_bytes(p, Arc::from(vec![0u8; 100]));
        assert!(matches!(r, Err(InspectError::NotElf { .. })));
        let r = GoBinary::from_bytes(p, Arc::from(&b"\x7fELF\x02\x01\x01"[..]));
        assert!(
            matches!(r, Err(InspectError::Malformed { .. })),
            "{:?}",
            r.err()
        );
    }
}

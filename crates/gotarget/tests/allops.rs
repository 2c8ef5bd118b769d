//! gotarget against allops built by every supported Go version, with and without symbols.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::{allops, expected_g_offsets, Fixture};
use gotarget::{GoBinary, MapAbi, MapOp, OffsetSource, Placement};
use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};
use object::{Object, ObjectSection};

fn open(f: &Fixture) -> GoBinary {
    GoBinary::open(&f.path).unwrap_or_else(|e| panic!("{}: {e}", f.label()))
}

#[test]
fn version_abi_and_degradations() {
    for f in allops() {
        let bin = open(f);
        let v = bin.go_version();
        assert_eq!(v.raw, format!("go{}", f.version), "{}", f.label());
        assert_eq!((v.major, v.minor), (1, f.minor()));
        assert_eq!(bin.map_abi(), f.expected_abi(), "{}", f.label());
        let d = bin.degradations().join("\n");
        if f.stripped {
            assert!(d.contains("no symbol table"), "{}: {d}", f.label());
            assert!(
                d.contains("no DWARF: stacks from .gopclntab"),
                "{}: {d}",
                f.label()
            );
            assert!(d.contains("inline tree"), "{}: {d}", f.label());
            assert!(d.contains(&format!("table for Go 1.{}", f.minor())), "{d}");
        } else {
            assert!(d.is_empty(), "{}: unexpected degradations: {d}", f.label());
        }
    }
}

/// The entry points allops makes the compiler call (present in every version's build).
fn expected_entry_points(f: &Fixture) -> Vec<&'static str> {
    let mut want = vec![
        "runtime.mapaccess1",
        "runtime.mapaccess2",
        "runtime.mapaccess1_fast32",
        "runtime.mapaccess1_fast64",
        "runtime.mapaccess2_fast64",
        "runtime.mapaccess1_faststr",
        "runtime.mapaccess1_fat",
        "runtime.mapassign",
        "runtime.mapassign_fast32",
        "runtime.mapassign_fast64",
        "runtime.mapassign_fast64ptr",
        "runtime.mapassign_faststr",
        "runtime.mapdelete",
        "runtime.mapdelete_fast32",
        "runtime.mapdelete_fast64",
        "runtime.mapdelete_faststr",
        "runtime.mapclear",
        "runtime.makemap",
        "runtime.makemap_small",
    ];
    match f.expected_abi() {
        MapAbi::Classic => want.extend(["runtime.mapiterinit", "runtime.mapiternext"]),
        MapAbi::Swiss => want.extend(["runtime.mapIterStart", "runtime.mapIterNext"]),
    }
    want
}

#[test]
fn map_probe_plan_per_version() {
    for f in allops() {
        let bin = open(f);
        let plan = bin.map_probe_plan();
        let by_name: HashMap<&str, &gotarget::MapProbe> =
            plan.iter().map(|p| (p.function.name.as_str(), p)).collect();
        for name in expected_entry_points(f) {
            assert!(
                by_name.contains_key(name),
                "{}: no {name} in plan",
                f.label()
            );
        }
        // No entry point of the other ABI.
        let foreign = match f.expected_abi() {
            MapAbi::Classic => "runtime.mapIterStart",
            MapAbi::Swiss => "runtime.mapiterinit",
        };
        assert!(
            !by_name.contains_key(foreign),
            "{}: has {foreign}",
            f.label()
        );
        // Every op class allops uses has at least one counted probe.
        for op in MapOp::ALL {
            assert!(
                plan.iter().any(|p| p.op == op && p.skip.is_none()),
                "{}: nothing counts {op}",
                f.label()
            );
        }
        // Wrappers: mapaccess1_fat always forwards; 1.27's mapaccess1* forward to mapaccess2*.
        for p in &plan {
            let name = p.function.name.as_str();
            let wrapper = name == "runtime.mapaccess1_fat"
                || (f.minor() >= 27 && name.starts_with("runtime.mapaccess1"));
            assert_eq!(
                p.skip.is_some(),
                wrapper,
                "{}: {name}: {:?}",
                f.label(),
                p.skip
            );
            if let Some(reason) = &p.skip {
                assert!(reason.contains("runtime.mapaccess"), "{reason}");
            }
        }
        // Stripped and normal builds agree on addresses of the same functions.
        assert!(plan.iter().all(|p| p.function.size > 0));
    }
}

#[test]
fn probe_sites_are_push_rbp_after_the_stack_check() {
    let mut seen_offsets = BTreeSet::new();
    for f in allops() {
        let bin = open(f);
        let bytes = std::fs::read(&f.path).unwrap();
        let elf = object::File::parse(&*bytes).unwrap();
        let text = elf.section_by_name(".text").unwrap();
        let (text_off, _) = text.file_range().unwrap();
        for p in bin.map_probe_plan() {
            let s = &p.site;
            let what = format!("{} {}", f.label(), p.function.name);
            assert_eq!(s.placement, Placement::AfterStackCheck, "{what}");
            assert_eq!(s.instruction, "push rbp", "{what}");
            let off = s.addr - p.function.addr;
            seen_offsets.insert(off);
            // The push follows a short (2-byte) or near (6-byte) JBE after a 4-byte
            // `cmp rsp,[r14+0x10]`, or after `lea r12,[rsp-N]` + `cmp r12,[r14+0x10]`.
            assert!([0x6, 0xa, 0xf].contains(&off), "{what}: push at +{off:#x}");

            // file_offset agrees with the .text section header's own mapping.
            let expect = text_off + (s.addr - text.address());
            assert_eq!(s.file_offset, expect, "{what}");
            assert_eq!(bin.file_offset(s.addr), Some(expect));
            assert_eq!(bytes[s.file_offset as usize], 0x55, "{what}: not push rbp");
            let entry = (text_off + (p.function.addr - text.address())) as usize;
            let cmp_rsp = [0x49, 0x3b, 0x66, 0x10];
            let cmp_r12 = [0x4d, 0x3b, 0x66, 0x10];
            let prologue = &bytes[entry..entry + off as usize];
            assert!(
                prologue.starts_with(&cmp_rsp)
                    || (prologue.starts_with(&[0x4c, 0x8d]) && prologue[5..9] == cmp_r12),
                "{what}: unexpected prologue {prologue:02x?}"
            );
        }
    }
    eprintln!("push rbp offsets seen: {seen_offsets:x?}");
}

/// Every site mapwatch plans (map entry points and their returns, calls from the program,
/// synchronisation) passes the check made before anything is attached.
#[test]
fn every_planned_site_checks_out_against_the_code() {
    for f in allops() {
        let bin = open(f);
        let mut sites = Vec::new();
        for p in bin.map_probe_plan() {
            if p.op == MapOp::Make {
                sites.extend(bin.return_sites(&p.function).unwrap());
            }
            sites.push(p.site);
        }
        let calls = bin.map_call_sites();
        assert!(!calls.is_empty(), "{}", f.label());
        sites.extend(calls.into_iter().map(|c| c.site));
        sites.extend(bin.sync_probe_plan().probes.into_iter().map(|p| p.site));
        bin.check_probe_sites(&sites)
            .unwrap_or_else(|e| panic!("{}: {e}", f.label()));
    }
}

#[test]
fn runtime_offsets_match_the_table() {
    for f in allops() {
        let bin = open(f);
        let o = bin.runtime_offsets();
        let (goid, parent, m) = expected_g_offsets(f.minor());
        assert_eq!(
            (o.goid, o.parent_goid, o.m),
            (goid, parent, m),
            "{}",
            f.label()
        );
        let source = if f.stripped {
            OffsetSource::Table
        } else {
            OffsetSource::Dwarf
        };
        assert_eq!(o.source, source, "{}", f.label());
        let flag = (o.write_flag.offset, o.write_flag.mask);
        match f.expected_abi() {
            MapAbi::Classic => assert_eq!(flag, (8, 4), "{}", f.label()),
            MapAbi::Swiss => assert_eq!(flag, (34, 0xff), "{}", f.label()),
        }
        let seed = (o.seed.offset, o.seed.size);
        match f.expected_abi() {
            MapAbi::Classic => assert_eq!(seed, (12, 4), "{}", f.label()),
            MapAbi::Swiss => assert_eq!(seed, (8, 8), "{}", f.label()),
        }
        assert_eq!(o.iter_map_offset, 24, "{}", f.label());
    }
}

#[test]
fn symbolize_main_with_and_without_dwarf() {
    for f in allops() {
        let bin = open(f);
        let main = bin.function("main.main").expect("main.main");
        for pc in [main.addr + 0x10, main.addr + main.size / 2] {
            let frames = bin.symbolize(pc);
            let outer = frames
                .last()
                .unwrap_or_else(|| panic!("{}: {pc:#x}", f.label()));
            assert_eq!(outer.function, "main.main", "{}: {frames:?}", f.label());
            assert!(
                outer.file.ends_with("testdata/go/allops/main.go"),
                "{frames:?}"
            );
            // main() spans lines 23..=85 of allops/main.go.
            assert!((23..=85).contains(&outer.line), "{}: {frames:?}", f.label());
        }
        assert!(bin.symbolize(0).is_empty());
        assert!(bin.symbolize(u64::MAX).is_empty());
    }
}

/// Return addresses (minus 1) of the calls in `main.main`, with the map type loaded into AX
/// (`lea rax,[rip+X]`) before calls to map entry points.
fn main_calls(bin: &GoBinary, bytes: &[u8]) -> (Vec<u64>, Vec<u64>) {
    let main = bin.function("main.main").unwrap();
    let off = bin.file_offset(main.addr).unwrap() as usize;
    let code = &bytes[off..off + main.size as usize];
    let mut dec = Decoder::with_ip(64, code, main.addr, DecoderOptions::NONE);
    let (mut rets, mut types) = (Vec::new(), Vec::new());
    let mut last_rax = None;
    for ins in &mut dec {
        if ins.mnemonic() == Mnemonic::Lea && ins.op0_register() == Register::RAX {
            last_rax = ins
                .is_ip_rel_memory_operand()
                .then(|| ins.ip_rel_memory_address());
        }
        if ins.mnemonic() == Mnemonic::Call && ins.op0_kind() == OpKind::NearBranch64 {
            rets.push(ins.next_ip() - 1);
            let callee = bin.symbolize(ins.near_branch_target());
            let is_map = callee.last().is_some_and(|c| {
                c.function.starts_with("runtime.map") || c.function.starts_with("runtime.makemap")
            });
            if let (true, Some(t)) = (is_map, last_rax) {
                types.push(t);
            }
            last_rax = None;
        }
    }
    (rets, types)
}

#[test]
fn stripped_symbolization_and_type_names_match_dwarf() {
    let all = allops();
    for full in all.iter().filter(|f| !f.stripped) {
        let stripped = all
            .iter()
            .find(|s| s.stripped && s.version == full.version && s.noswissmap == full.noswissmap)
            .unwrap();
        let a = open(full);
        let b = open(stripped);
        let (abytes, bbytes) = (
            std::fs::read(&full.path).unwrap(),
            std::fs::read(&stripped.path).unwrap(),
        );
        let (rets, types_a) = main_calls(&a, &abytes);
        let (rets_b, types_b) = main_calls(&b, &bbytes);
        assert_eq!(
            rets,
            rets_b,
            "{}: code differs between builds",
            full.label()
        );
        assert!(rets.len() > 20);
        let mut inlined = 0;
        for pc in rets {
            let fa = a.symbolize(pc);
            let fb = b.symbolize(pc);
            assert_eq!(fa, fb, "{}: DWARF vs .gopclntab at {pc:#x}", full.label());
            inlined += usize::from(fa.len() > 1);
        }
        assert!(inlined > 0, "{}: no inlined frames seen", full.label());

        let names_a: BTreeSet<String> = types_a
            .iter()
            .map(|&t| {
                a.type_name(t)
                    .unwrap_or_else(|| panic!("{}: {t:#x}", full.label()))
            })
            .collect();
        let names_b: BTreeSet<String> = types_b
            .iter()
            .map(|&t| {
                b.type_name(t)
                    .unwrap_or_else(|| panic!("{}: {t:#x}", full.label()))
            })
            .collect();
        assert_eq!(names_a, names_b, "{}", full.label());
        for want in [
            "map[int]int",
            "map[string]int",
            "map[int32]int",
            "map[[2]int]int",
            "map[*int]int",
            "map[int]main.big",
        ] {
            assert!(
                names_a.contains(want),
                "{}: {want} not in {names_a:?}",
                full.label()
            );
        }
        assert_eq!(a.type_name(0), None);
        assert_eq!(b.type_name(1), None);
    }
}

#[test]
fn type_name_of_a_dwarf_type_descriptor() {
    // Find map[string]int's descriptor through DWARF's DW_AT_go_runtime_type directly.
    let f = allops().iter().find(|f| !f.stripped).unwrap();
    let bytes = std::fs::read(&f.path).unwrap();
    let elf = object::File::parse(&*bytes).unwrap();
    let load = |id: gimli::SectionId| -> Result<std::borrow::Cow<[u8]>, gimli::Error> {
        Ok(elf
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
            .unwrap_or_default())
    };
    let cow = gimli::DwarfSections::load(load).unwrap();
    let dwarf = cow.borrow(|s| gimli::EndianSlice::new(s, gimli::LittleEndian));
    let mut units = dwarf.units();
    let mut found = None;
    while let (None, Some(h)) = (found, units.next().unwrap()) {
        let unit = dwarf.unit(h).unwrap();
        let mut entries = unit.entries();
        while let Some((_, e)) = entries.next_dfs().unwrap() {
            let Some(name) = e.attr_value(gimli::DW_AT_name).unwrap() else {
                continue;
            };
            let name = dwarf.attr_string(&unit, name).unwrap();
            if name.slice() == b"map[string]int" {
                if let Some(gimli::AttributeValue::Addr(a)) =
                    e.attr_value(gimli::DwAt(0x2904)).unwrap()
                {
                    found = Some(a);
                    break;
                }
            }
        }
    }
    let addr = found.expect("DWARF names map[string]int's runtime type");
    let bin = open(f);
    assert_eq!(bin.type_name(addr).as_deref(), Some("map[string]int"));
}

#[test]
fn symbolize_is_cached_and_thread_safe() {
    let f = allops().iter().find(|f| !f.stripped).unwrap();
    let bin = std::sync::Arc::new(open(f));
    let main = bin.function("main.main").unwrap();
    let pcs: Vec<u64> = (0..main.size).step_by(7).map(|o| main.addr + o).collect();
    let expect: Vec<_> = pcs.iter().map(|&pc| bin.symbolize(pc)).collect();
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (bin, pcs, expect) = (bin.clone(), &pcs, &expect);
            s.spawn(move || {
                for _ in 0..50 {
                    for (pc, e) in pcs.iter().zip(expect) {
                        assert_eq!(&bin.symbolize(*pc), e);
                    }
                }
            });
        }
    });
    let n = 4 * 50 * pcs.len();
    let per = start.elapsed() / n as u32;
    eprintln!("cached symbolize: {per:?} per call ({n} calls)");
    assert!(
        per < std::time::Duration::from_micros(50),
        "{per:?} per cached call"
    );
}

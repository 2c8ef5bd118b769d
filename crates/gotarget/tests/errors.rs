//! gotarget's refusals: each a clear one-line error naming the file, never a panic.

mod common;

use common::{build, scratch};
use gotarget::{GoBinary, InspectError};
use std::path::Path;

fn one_line(e: &InspectError, path: &Path) -> String {
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line error: {msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    msg
}

#[test]
fn non_go_elf_is_not_go() {
    let ls = Path::new("/bin/ls");
    let e = GoBinary::open(ls).expect_err("ls is not Go");
    assert!(matches!(e, InspectError::NotGo { .. }), "{e:?}");
    assert!(one_line(&e, ls).contains("not a Go binary: no .go.buildinfo / .gopclntab"));
}

#[test]
fn missing_file_is_io() {
    let p = Path::new("/nonexistent/gotarget");
    let e = GoBinary::open(p).err().unwrap();
    assert!(matches!(e, InspectError::Io { .. }), "{e:?}");
    one_line(&e, p);
}

#[test]
fn garbage_and_truncated_files_are_rejected() {
    let garbage = scratch("garbage");
    let noise: Vec<u8> = (0u32..10_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, &noise).unwrap();
    let e = GoBinary::open(&garbage).err().unwrap();
    assert!(matches!(e, InspectError::NotElf { .. }), "{e:?}");
    one_line(&e, &garbage);
    let empty = scratch("empty");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        GoBinary::open(&empty),
        Err(InspectError::NotElf { .. })
    ));

    let f = build("1.25.5", "allops", false, false);
    let bytes = std::fs::read(&f.path).unwrap();
    for keep in [20, 64, 0x200, 0x1000, bytes.len() / 2, bytes.len() - 100] {
        let cut = scratch(&format!("truncated-{keep}"));
        std::fs::write(&cut, &bytes[..keep]).unwrap();
        let e = GoBinary::open(&cut)
            .err()
            .unwrap_or_else(|| panic!("{keep}: accepted"));
        assert!(matches!(e, InspectError::Malformed { .. }), "{keep}: {e:?}");
        one_line(&e, &cut);
    }
}

/// Corrupted Go tables may make answers wrong, but must never panic.
#[test]
fn corrupted_tables_never_panic() {
    let f = build("1.25.5", "allops", true, false);
    let bytes = std::fs::read(&f.path).unwrap();
    let elf = object::File::parse(&*bytes).unwrap();
    use object::{Object, ObjectSection};
    let ranges: Vec<(u64, u64)> = [".gopclntab", ".go.buildinfo", ".noptrdata", ".text"]
        .iter()
        .filter_map(|n| elf.section_by_name(n)?.file_range())
        .collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let path = scratch("corrupt");
    for round in 0..40 {
        let mut b = bytes.clone();
        let (off, len) = ranges[round % ranges.len()];
        // Damage the header area as well as random places inside the section.
        for i in 0..64 {
            let at = if i < 16 && round % 3 == 0 {
                off + (rand() % 128.min(len))
            } else {
                off + rand() % len
            };
            b[at as usize] = rand() as u8;
        }
        std::fs::write(&path, &b).unwrap();
        if let Ok(bin) = GoBinary::open(&path) {
            for p in bin.map_probe_plan() {
                let _ = bin.symbolize(p.site.addr);
            }
            let text = elf.section_by_name(".text").unwrap();
            for i in 0..2000 {
                let _ = bin.symbolize(text.address() + (rand() % text.size()));
                let _ = bin.type_name(text.address() + i * 8);
            }
            let _ = bin.function("main.main");
            let _ = bin.runtime_offsets();
        }
    }
}

#[test]
fn arm64_binary_is_unsupported_arch() {
    let out = common::build_custom(
        "1.25.5",
        "allops",
        &[("GOOS", "linux"), ("GOARCH", "arm64")],
        &[],
        "allops-arm64",
    );
    let e = GoBinary::open(&out).expect_err("arm64 accepted");
    assert!(
        matches!(&e, InspectError::UnsupportedArch { arch, .. } if arch == "arm64"),
        "{e:?}"
    );
    assert!(one_line(&e, &out).ends_with("binary is arm64; mapwatch supports x86_64 only"));
}

/// Replaces `from` with `to` (same length) inside the build info of a copy of `src`.
fn patch_version(src: &Path, name: &str, from: &str, to: &str) -> std::path::PathBuf {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(src).unwrap();
    let (off, len) = {
        use object::{Object, ObjectSection};
        let elf = object::File::parse(&*bytes).unwrap();
        elf.section_by_name(".go.buildinfo")
            .unwrap()
            .file_range()
            .unwrap()
    };
    let section = &mut bytes[off as usize..(off + len) as usize];
    let at = section
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("version string in .go.buildinfo");
    section[at..at + to.len()].copy_from_slice(to.as_bytes());
    let out = scratch(name);
    std::fs::write(&out, &bytes).unwrap();
    out
}

#[test]
fn old_go_version_is_rejected() {
    let f = build("1.21.13", "allops", false, false);
    let old = patch_version(&f.path, "allops-go1.19", "go1.21.13", "go1.19.13");
    let e = GoBinary::open(&old).expect_err("go1.19 accepted");
    match &e {
        InspectError::UnsupportedGoVersion { version, .. } => {
            assert_eq!((version.major, version.minor, version.patch), (1, 19, 13))
        }
        other => panic!("{other:?}"),
    }
    assert!(one_line(&e, &old).ends_with("built with go1.19.13; mapwatch supports Go 1.21 to 1.27"));
}

#[test]
fn future_go_version_is_accepted_with_a_degradation() {
    let f = build("1.27.3", "allops", false, false);
    let new = patch_version(&f.path, "allops-go1.28", "go1.27.3", "go1.28.3");
    let bin = GoBinary::open(&new).expect("future Go accepted");
    assert_eq!(bin.go_version().minor, 28);
    assert!(
        bin.degradations()
            .iter()
            .any(|d| d.contains("untested Go version go1.28.3")),
        "{:?}",
        bin.degradations()
    );
    assert!(!bin.map_probe_plan().is_empty());
}

#[test]
fn no_such_function() {
    let f = build("1.25.5", "allops", true, false);
    let bin = GoBinary::open(&f.path).unwrap();
    assert!(bin.function("main.nope").is_none());
    assert!(bin.function("main.main").is_some());
    let e = InspectError::NoSuchFunction {
        path: f.path.clone(),
        name: "main.nope".into(),
    };
    assert!(one_line(&e, &f.path).ends_with("no function main.nope"));
}

/// A copy of stripped allops (Go 1.25) whose `.gopclntab` puts `function` one byte past its
/// real entry, and that entry.
fn shift_entry_in_pclntab(function: &str) -> (std::path::PathBuf, u64) {
    use object::{Object, ObjectSection};
    let f = build("1.25.5", "allops", true, false);
    let entry = GoBinary::open(&f.path)
        .unwrap()
        .function(function)
        .unwrap()
        .addr;
    let mut bytes = std::fs::read(&f.path).unwrap();
    let (off, _) = object::File::parse(&*bytes)
        .unwrap()
        .section_by_name(".gopclntab")
        .unwrap()
        .file_range()
        .unwrap();
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    // Go 1.20+ header: nfunc at 8, textStart at 24, the function table's offset at 64; the
    // table holds (entry offset, _func offset) u32 pairs.
    let pcln = off as usize;
    let (nfunc, text) = (word(&bytes, pcln + 8), word(&bytes, pcln + 24));
    let ftab = pcln + word(&bytes, pcln + 64) as usize;
    let target = u32::try_from(entry - text).unwrap();
    let slot = (0..nfunc as usize)
        .map(|i| ftab + i * 8)
        .find(|&at| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) == target)
        .expect("the function's entry in the table");
    bytes[slot..slot + 4].copy_from_slice(&(target + 1).to_le_bytes());
    let out = scratch(&format!("shifted-{function}"));
    std::fs::write(&out, &bytes).unwrap();
    (out, entry)
}

/// A probe is never planned off the code: sites are checked against the instructions before
/// anything is attached.
#[test]
fn probe_sites_off_the_code_are_refused() {
    let f = build("1.25.5", "allops", false, false);
    let bin = GoBinary::open(&f.path).unwrap();
    let plan = bin.map_probe_plan();
    let push = plan[0].site.clone();
    bin.check_probe_sites([&push]).unwrap();
    // `push rbp` (1 byte), then `mov rbp,rsp` (3): one byte on is another instruction, two
    // bytes on the middle of one.
    let moved = |by: u64| gotarget::ProbeSite {
        addr: push.addr + by,
        file_offset: push.file_offset + by,
        ..push.clone()
    };
    let msg = one_line(&bin.check_probe_sites([&moved(1)]).unwrap_err(), &f.path);
    assert!(msg.contains("the code there is `mov rbp,rsp`"), "{msg}");
    let msg = one_line(&bin.check_probe_sites([&moved(2)]).unwrap_err(), &f.path);
    assert!(msg.contains("not at an instruction boundary"), "{msg}");
    let wrong_offset = gotarget::ProbeSite {
        file_offset: push.file_offset + 1,
        ..push.clone()
    };
    let msg = one_line(
        &bin.check_probe_sites([&wrong_offset]).unwrap_err(),
        &f.path,
    );
    assert!(msg.contains("file offset"), "{msg}");

    let call = bin.map_call_sites().remove(0).site;
    bin.check_probe_sites([&call]).unwrap();
    let elsewhere = gotarget::ProbeSite {
        placement: gotarget::Placement::Call { callee: push.addr },
        ..call
    };
    let msg = one_line(&bin.check_probe_sites([&elsewhere]).unwrap_err(), &f.path);
    assert!(msg.contains("is not a call to"), "{msg}");

    // A table that lies about where a function starts: its sites are refused.
    let (path, entry) = shift_entry_in_pclntab("runtime.mapaccess2_fast64");
    let bin = GoBinary::open(&path).unwrap();
    let lied = bin
        .map_probe_plan()
        .into_iter()
        .find(|p| p.function.name == "runtime.mapaccess2_fast64")
        .unwrap();
    assert_eq!(lied.function.addr, entry + 1);
    let msg = one_line(&bin.check_probe_sites([&lied.site]).unwrap_err(), &path);
    assert!(msg.contains("does not end at its entry"), "{msg}");
}

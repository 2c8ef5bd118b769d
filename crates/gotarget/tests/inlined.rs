//! Inlined call sites from DWARF, for the race detector's lock tracking.

mod common;

use common::build;
use gotarget::GoBinary;

#[test]
fn mutex_lock_inlined_sites() {
    let src = gobuild::repo_root().join("testdata/go/gotarget_mutex/main.go");
    let text = std::fs::read_to_string(&src).unwrap();
    let lock_line = text
        .lines()
        .position(|l| l.contains("LOCK-SITE"))
        .expect("marker") as u32
        + 1;
    for version in gobuild::ALL_VERSIONS {
        let f = build(version, "gotarget_mutex", false, false);
        let bin = GoBinary::open(&f.path).unwrap();
        let sites = bin.inlined_sites("sync.(*Mutex).Lock");
        let site = sites
            .iter()
            .find(|s| s.caller == "main.bump")
            .unwrap_or_else(|| panic!("go{version}: no Lock inlined into main.bump: {sites:?}"));
        assert!(
            site.call_file
                .ends_with("testdata/go/gotarget_mutex/main.go"),
            "go{version}: {site:?}"
        );
        assert_eq!(site.call_line, lock_line, "go{version}: {site:?}");
        assert!(site.low_pc < site.high_pc && !site.ranges.is_empty());
        let bump = bin.function("main.bump").unwrap();
        assert!(
            site.low_pc >= bump.addr && site.high_pc <= bump.addr + bump.size,
            "go{version}: {site:?} outside main.bump {bump:?}"
        );
        // The code at the site symbolizes to the inlined Lock inside main.bump.
        let frames = bin.symbolize(site.low_pc);
        assert_eq!(
            frames.first().map(|f| f.function.as_str()),
            Some("sync.(*Mutex).Lock")
        );
        assert_eq!(
            frames.last().map(|f| f.function.as_str()),
            Some("main.bump")
        );

        assert!(!bin.inlined_sites("sync.(*Mutex).Unlock").is_empty());
        assert!(bin.inlined_sites("no.such.function").is_empty());

        let stripped = build(version, "gotarget_mutex", true, false);
        let bin = GoBinary::open(&stripped.path).unwrap();
        assert!(bin.inlined_sites("sync.(*Mutex).Lock").is_empty());
        assert!(bin
            .degradations()
            .iter()
            .any(|d| d.contains("inlined_sites")));
    }
}

/// The inlined `mu.Lock()` / `mu.Unlock()` of a global mutex become sync probes on an emulated
/// instruction before the locked one, and the address they compute is `main.mu`'s, in every
/// supported Go version.
#[test]
fn global_mutex_sync_probes_compute_the_mutex_address() {
    use gotarget::{ObjectAddr, SyncKind, SyncObject};
    use object::{Object, ObjectSymbol};
    for version in gobuild::ALL_VERSIONS {
        let f = build(version, "gotarget_mutex", false, false);
        let bin = GoBinary::open(&f.path).unwrap();
        let bytes = std::fs::read(&f.path).unwrap();
        let elf = object::File::parse(&*bytes).unwrap();
        let mu = elf
            .symbols()
            .find(|s| s.name() == Ok("main.mu"))
            .unwrap()
            .address();
        let plan = bin.sync_probe_plan();
        assert!(plan.inlined_known, "go{version}");
        for kind in [SyncKind::MutexLock, SyncKind::MutexUnlock] {
            let p = plan
                .probes
                .iter()
                .find(|p| p.kind == kind && p.function == "main.bump")
                .unwrap_or_else(|| panic!("go{version}: no {kind} probe in main.bump"));
            assert!(p.site.emulated, "go{version}: {p:?}");
            let SyncObject::At(ObjectAddr::FromProbe { delta }) = p.object else {
                panic!("go{version}: a global's address is fixed: {p:?}");
            };
            assert_eq!(
                p.site.addr.wrapping_add(delta as u64),
                mu,
                "go{version}: {p:?}"
            );
        }
        let stripped = build(version, "gotarget_mutex", true, false);
        assert!(
            !GoBinary::open(&stripped.path)
                .unwrap()
                .sync_probe_plan()
                .inlined_known
        );
    }
}

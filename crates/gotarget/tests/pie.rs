//! Position-independent builds: `.gopclntab` is `.data.rel.ro.gopclntab` before Go 1.26.

mod common;

use gotarget::{GoBinary, Placement};

#[test]
fn pie_builds_are_inspected_like_exe_builds() {
    for version in ["1.21.13", "1.26.6"] {
        for stripped in [false, true] {
            let mut flags = vec!["-buildmode=pie"];
            if stripped {
                flags.push("-ldflags=-s -w");
            }
            let name = format!("allops-pie-{version}{}", if stripped { "-s" } else { "" });
            let path = common::build_custom(version, "allops", &[], &flags, &name);
            let bin = GoBinary::open(&path).unwrap_or_else(|e| panic!("{e}"));
            let plan = bin.map_probe_plan();
            assert!(plan.len() > 20, "{name}: {plan:?}");
            assert!(plan
                .iter()
                .all(|p| p.site.placement == Placement::AfterStackCheck));
            let main = bin.function("main.main").unwrap();
            let frames = bin.symbolize(main.addr + 0x10);
            assert_eq!(frames.last().unwrap().function, "main.main", "{name}");
            assert!(frames.last().unwrap().file.ends_with("allops/main.go"));
        }
    }
}

//! Channel operations for the race detector: where they are probed with the channel's lock
//! held, and the `runtime.hchan` layout read there, in every supported Go version.

mod common;

use common::build;
use gotarget::{GoBinary, ObjectAddr, Placement, SyncKind, SyncObject};

#[test]
fn channel_operations_are_probed_with_the_lock_held() {
    for version in gobuild::ALL_VERSIONS {
        for stripped in [false, true] {
            let f = build(version, "racecorpus", stripped, false);
            let bin = GoBinary::open(&f.path).unwrap();
            let plan = bin.sync_probe_plan();
            let what = f.label();
            for (kind, function) in [
                (SyncKind::ChanSend, "runtime.chansend"),
                (SyncKind::ChanRecv, "runtime.chanrecv"),
            ] {
                let probes: Vec<_> = plan.probes.iter().filter(|p| p.kind == kind).collect();
                let inside = probes
                    .iter()
                    .find(|p| p.function == function)
                    .unwrap_or_else(|| panic!("{what}: no {kind} probe in {function}: {probes:?}"));
                // The branch on `c.closed` right after `lock(&c.lock)`: emulated, the channel
                // in a register.
                assert!(inside.site.emulated, "{what}: {inside:?}");
                assert!(
                    matches!(inside.site.placement, Placement::Locked { .. }),
                    "{what}: {inside:?}"
                );
                assert!(
                    matches!(
                        inside.object,
                        SyncObject::LockedChannel(ObjectAddr::Registers {
                            index: None,
                            disp: 0,
                            ..
                        })
                    ),
                    "{what}: {inside:?}"
                );
                let chansend = bin.function(function).unwrap();
                assert!(
                    (chansend.addr..chansend.addr + chansend.size).contains(&inside.site.addr),
                    "{what}: {inside:?}"
                );
            }
            // The entry points call those: not probed twice, but for a non-blocking receive,
            // which can see a closed channel without the lock.
            for entry in [
                "runtime.chansend1",
                "runtime.chanrecv1",
                "runtime.chanrecv2",
                "runtime.selectnbsend",
            ] {
                assert!(
                    plan.probes.iter().all(|p| p.function != entry),
                    "{what}: {entry} probed besides the locked site"
                );
            }
            if bin.function("runtime.selectnbrecv").is_some() {
                let poll = plan
                    .probes
                    .iter()
                    .find(|p| p.function == "runtime.selectnbrecv")
                    .unwrap_or_else(|| panic!("{what}: selectnbrecv not probed"));
                assert_eq!(poll.kind, SyncKind::ChanPoll, "{what}");
            }
            let handoff = plan
                .probes
                .iter()
                .find(|p| p.kind == SyncKind::ChanHandoff)
                .unwrap_or_else(|| panic!("{what}: no hand-off probe"));
            assert_eq!(handoff.function, "runtime.send", "{what}");
            assert!(handoff.site.emulated, "{what}: {handoff:?}");
        }
    }
}

/// The `runtime.hchan` offsets from DWARF match the table used for stripped binaries.
#[test]
fn channel_layout_from_dwarf_matches_the_table() {
    for version in gobuild::ALL_VERSIONS {
        let fixture = build(version, "racecorpus", false, false);
        let dwarf = GoBinary::open(&fixture.path).unwrap();
        let table = GoBinary::open(&build(version, "racecorpus", true, false).path).unwrap();
        let (d, t) = (dwarf.runtime_offsets(), table.runtime_offsets());
        assert_eq!(d.source, gotarget::OffsetSource::Dwarf, "go{version}");
        assert_eq!(d.chan, t.chan, "go{version}");
        // Go 1.23 added `timer` before `elemtype`.
        let sendx_after_timer = if fixture.minor() >= 23 { 48 } else { 40 };
        assert_eq!(
            (d.chan.closed, d.chan.sendx),
            (28, sendx_after_timer),
            "go{version}"
        );
    }
}

//! Every op class fires with the right map pointer and goroutine id, on classic (Go 1.22) and
//! Swiss (Go 1.25) maps, probed on the calls in the program's code and in the runtime's entry
//! points: probes on a real Go program, events read from the real kernel.

mod common;

use std::collections::HashMap;
use std::process::Command;

use gotarget::MapOp;
use mapwatch::capture;
use mapwatch::SitePolicy;
use mapwatch::{MapEvent, Record};

const N: u64 = 50;

struct Run {
    events: Vec<MapEvent>,
    /// name -> (map address, goid), as the program printed them.
    maps: HashMap<String, (u64, u64)>,
}

fn watch_allops(version: &str, policy: SitePolicy) -> Run {
    let bin = common::go_binary(version, "allops");
    let mut cmd = Command::new(&bin);
    cmd.arg(N.to_string());
    let run = capture(cmd, policy).unwrap();
    assert!(run.status.success());
    assert_eq!(run.counters.drops, 0);
    assert!(
        run.stdout.contains("done"),
        "allops did not finish:\n{}",
        run.stdout
    );
    let maps = run
        .stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && f[0] == "map").then(|| {
                let addr = u64::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap();
                (f[1].to_string(), (addr, f[4].parse().unwrap()))
            })
        })
        .collect();
    let events = run
        .records
        .into_iter()
        .filter_map(|r| match r {
            Record::Op(e) | Record::OpAtNewSite { access: e, .. } => Some(e),
            Record::Sync(_) => None,
            Record::Conflict { access, .. } => {
                panic!("a single goroutine cannot conflict: {access:?}")
            }
        })
        .collect();
    Run { events, maps }
}

impl Run {
    fn count(&self, name: &str, op: MapOp) -> u64 {
        let (addr, goid) = self.maps[name];
        self.events
            .iter()
            .filter(|e| e.map == addr && e.op == op && e.goid == goid)
            .count() as u64
    }

    fn assert_at_least(&self, name: &str, op: MapOp, n: u64) {
        let got = self.count(name, op);
        assert!(
            got >= n,
            "{name}: {op:?} seen {got} times with its address and goid, expected >= {n}"
        );
    }
}

fn check_all_ops(version: &str, policy: SitePolicy) {
    let run = watch_allops(version, policy);
    for name in ["ints", "strs", "small", "arrays", "ptrs"] {
        run.assert_at_least(name, MapOp::Write, N);
        run.assert_at_least(name, MapOp::Read, N);
    }
    // ints is read twice per round (m[k] and v, ok := m[k]).
    run.assert_at_least("ints", MapOp::Read, 2 * N);
    run.assert_at_least("fat", MapOp::Read, N);
    for name in ["ints", "strs", "small", "arrays"] {
        run.assert_at_least(name, MapOp::Delete, N / 2);
    }
    run.assert_at_least("ints", MapOp::IterStart, 1);
    run.assert_at_least("ints", MapOp::IterNext, N);
    run.assert_at_least("ints", MapOp::Clear, 1);
    run.assert_at_least("other", MapOp::Write, N);
    assert_ne!(
        run.maps["other"].1, run.maps["ints"].1,
        "the other goroutine has its own goid"
    );
    // Goroutines that take over one another's g (each writes its own goid as the key) are
    // told apart.
    let relay = run.maps["relay"].0;
    let relayed: Vec<&MapEvent> = run
        .events
        .iter()
        .filter(|e| e.map == relay && e.op == MapOp::Write)
        .collect();
    assert!(relayed.len() as u64 >= N, "{} relay writes", relayed.len());
    for e in relayed {
        assert_eq!(
            e.goid, e.key,
            "a relay write carries another goroutine's goid"
        );
    }

    // makemap's return (maps.clone's, for a clone) hands over the new map's address.
    for name in ["ints", "strs", "other", "clone"] {
        let addr = run.maps[name].0;
        assert!(
            run.events
                .iter()
                .any(|e| e.op == MapOp::Make && e.map == addr),
            "no make event for {name} at {addr:#x}"
        );
    }
    // Every access names its caller's caller too (main's: runtime.main).
    assert!(run
        .events
        .iter()
        .filter(|e| e.op == MapOp::Read)
        .all(|e| e.caller != 0));
    // Keys: fast64 passes the key itself; faststr's first bytes are "key-".
    let (ints, _) = run.maps["ints"];
    let keys: Vec<u64> = run
        .events
        .iter()
        .filter(|e| e.map == ints && e.op == MapOp::Write)
        .map(|e| e.key)
        .collect();
    assert_eq!(&keys[..N as usize], &(0..N).collect::<Vec<_>>()[..]);
    let (strs, _) = run.maps["strs"];
    assert!(run
        .events
        .iter()
        .filter(|e| e.map == strs && e.op == MapOp::Write)
        .all(|e| e.key.to_le_bytes()[..4] == *b"key-"));
    // Every operation on a map carries its hash seed (the same until a clear draws another).
    let seeds: std::collections::HashSet<u64> = run
        .events
        .iter()
        .filter(|e| e.map == strs)
        .map(|e| e.seed)
        .collect();
    assert_eq!(seeds.len(), 1, "strs: seeds {seeds:x?}");
    assert!(!seeds.contains(&0), "strs: no seed read");
    // Map types come with reads and writes.
    assert!(run
        .events
        .iter()
        .filter(|e| e.op == MapOp::Write)
        .all(|e| e.map_type != 0));
}

#[test]
fn every_op_class_fires_on_classic_maps() {
    check_all_ops("1.22.10", SitePolicy::Calls);
}

#[test]
fn every_op_class_fires_on_swiss_maps() {
    check_all_ops("1.25.5", SitePolicy::Calls);
}

#[test]
fn every_op_class_fires_in_the_entry_points_of_classic_maps() {
    check_all_ops("1.22.10", SitePolicy::Planned);
}

#[test]
fn every_op_class_fires_in_the_entry_points_of_swiss_maps() {
    check_all_ops("1.25.5", SitePolicy::Planned);
}

/// When the runtime itself stops a conflicting operation, its fatal error is tied to the
/// thread's last map operation, so both sides can be named before the process dies.
fn runtime_fatal_names_its_map(version: &str) {
    let bin = common::go_binary(version, "conflict");
    // The overlap is timing-dependent; a few tries make a miss vanishingly unlikely.
    for attempt in 1..=3 {
        let run = capture(Command::new(&bin), SitePolicy::Calls).unwrap();
        if run.status.code() != Some(2) {
            eprintln!("attempt {attempt}: no crash this time");
            continue;
        }
        let fatal: Vec<&MapEvent> = run
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Op(e) | Record::Conflict { access: e, .. } if e.runtime_fatal => Some(e),
                _ => None,
            })
            .collect();
        assert!(
            fatal.iter().any(|e| e.map != 0),
            "the runtime's fatal error was not tied to a map: {fatal:?}"
        );
        return;
    }
    panic!("the racy program never crashed in 3 runs");
}

#[test]
fn the_runtimes_fatal_error_names_its_map_on_classic_maps() {
    runtime_fatal_names_its_map("1.22.10");
}

#[test]
fn the_runtimes_fatal_error_names_its_map_on_swiss_maps() {
    runtime_fatal_names_its_map("1.25.5");
}

//! Map identities. A map is known by its header address while it lives; Go reuses addresses
//! after the GC frees a map, so a map made at an address, or seen there with another hash seed
//! (random per map), starts a new identity. The seed tells maps apart whose making was not
//! seen (the standard library's, or any made while the probes were paused); `clear` draws a
//! new seed for the same map, so after a clear the next seed seen continues it.

use std::collections::HashMap;

use gotarget::MapOp;

use crate::event::MapEvent;

/// What is known of one map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapInfo {
    /// Return address into the code that made it (the caller of makemap), if seen.
    pub made_at: Option<u64>,
    /// Its type descriptor's address, once an access carried it.
    pub type_addr: u64,
    /// Operations seen on it.
    pub ops: u64,
    /// Its hash seed, as last seen.
    pub seed: u64,
    /// The last operation seen on it was a clear (which draws a new seed).
    cleared: bool,
}

/// Every map seen, keyed by (pid, header address).
#[derive(Default)]
pub struct MapRegistry {
    maps: HashMap<(u32, u64), MapInfo>,
}

impl MapRegistry {
    /// Records what `ev` tells about its map; returns what is now known of it, and whether
    /// `ev` showed a new map at an address an earlier one had.
    pub fn observe(&mut self, ev: &MapEvent) -> Option<(&MapInfo, bool)> {
        if ev.map == 0 || ev.runtime_fatal {
            return None;
        }
        let mut renewed = false;
        let info = self
            .maps
            .entry((ev.pid, ev.map))
            .or_insert_with(|| MapInfo {
                seed: ev.seed,
                ..MapInfo::default()
            });
        if ev.op == MapOp::Make {
            *info = MapInfo {
                made_at: Some(ev.ret),
                seed: ev.seed,
                ..MapInfo::default()
            };
            return Some((info, true));
        }
        if info.seed != ev.seed && !info.cleared {
            *info = MapInfo::default();
            renewed = true;
        }
        info.seed = ev.seed;
        info.cleared = ev.op == MapOp::Clear;
        info.ops += 1;
        if info.type_addr == 0 {
            info.type_addr = ev.map_type;
        }
        Some((info, renewed))
    }

    /// What is known of the map at `map` in process `pid`.
    pub fn get(&self, pid: u32, map: u64) -> Option<&MapInfo> {
        self.maps.get(&(pid, map))
    }

    /// Number of distinct maps seen.
    pub fn len(&self) -> usize {
        self.maps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: MapOp, map: u64, seed: u64, ret: u64) -> MapEvent {
        MapEvent {
            ts: 0,
            map,
            map_type: 0x4a0000,
            goid: 1,
            ret,
            key: 0,
            caller: 0,
            seed,
            pid: 10,
            tid: 10,
            cpu: 0,
            op,
            saw_writing: false,
            runtime_fatal: false,
        }
    }

    fn observe(r: &mut MapRegistry, e: MapEvent) -> (Option<u64>, bool) {
        r.observe(&e)
            .map(|(i, renewed)| (i.made_at, renewed))
            .unwrap()
    }

    #[test]
    fn make_starts_a_new_identity() {
        let mut r = MapRegistry::default();
        assert_eq!(
            observe(&mut r, ev(MapOp::Make, 0xc0, 7, 0x401000)),
            (Some(0x401000), true)
        );
        assert_eq!(
            observe(&mut r, ev(MapOp::Write, 0xc0, 7, 0x402000)),
            (Some(0x401000), false)
        );
        assert_eq!(r.get(10, 0xc0).unwrap().ops, 1);
        assert_eq!(r.get(10, 0xc0).unwrap().type_addr, 0x4a0000);
        // The address is reused by a new map made elsewhere.
        assert_eq!(
            observe(&mut r, ev(MapOp::Make, 0xc0, 9, 0x403000)),
            (Some(0x403000), true)
        );
        assert_eq!(r.get(10, 0xc0).unwrap().ops, 0);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn another_seed_at_an_address_is_another_map_unless_a_clear_drew_it() {
        let mut r = MapRegistry::default();
        observe(&mut r, ev(MapOp::Make, 0xc0, 7, 0x401000));
        // Made where the probes did not see it: known by its seed.
        assert_eq!(
            observe(&mut r, ev(MapOp::Read, 0xc0, 8, 0x402000)),
            (None, true)
        );
        assert_eq!(
            observe(&mut r, ev(MapOp::Read, 0xc0, 8, 0x402000)),
            (None, false)
        );
        // clear(m) draws a new seed for the same map.
        r.observe(&ev(MapOp::Make, 0xd0, 1, 0x401000));
        r.observe(&ev(MapOp::Clear, 0xd0, 1, 0x402000));
        assert_eq!(
            observe(&mut r, ev(MapOp::Write, 0xd0, 2, 0x402000)),
            (Some(0x401000), false)
        );
        assert_eq!(r.get(10, 0xd0).unwrap().ops, 2);
        // ...once: another seed after that is another map.
        assert_eq!(
            observe(&mut r, ev(MapOp::Write, 0xd0, 3, 0x402000)),
            (None, true)
        );
    }

    #[test]
    fn maps_made_without_a_runtime_call_are_still_tracked() {
        let mut r = MapRegistry::default();
        assert_eq!(
            observe(&mut r, ev(MapOp::Read, 0xd0, 5, 0x402000)),
            (None, false)
        );
    }
}

//! Map identities. A map is known by its header address while it lives; Go reuses addresses
//! after the GC frees a map, so a `makemap` returning an address starts a new identity.

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
}

/// Every map seen, keyed by (pid, header address).
#[derive(Default)]
pub struct MapRegistry {
    maps: HashMap<(u32, u64), MapInfo>,
}

impl MapRegistry {
    /// Records what `ev` tells about its map; returns what is now known of it.
    pub fn observe(&mut self, ev: &MapEvent) -> Option<&MapInfo> {
        if ev.map == 0 || ev.runtime_fatal {
            return None;
        }
        let info = self.maps.entry((ev.pid, ev.map)).or_default();
        if ev.op == MapOp::Make {
            *info = MapInfo {
                made_at: Some(ev.ret),
                ..MapInfo::default()
            };
        } else {
            info.ops += 1;
            if info.type_addr == 0 {
                info.type_addr = ev.map_type;
            }
        }
        Some(info)
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

    fn ev(op: MapOp, map: u64, map_type: u64, ret: u64) -> MapEvent {
        MapEvent {
            ts: 0,
            map,
            map_type,
            goid: 1,
            ret,
            key: 0,
            caller: 0,
            pid: 10,
            tid: 10,
            cpu: 0,
            op,
            saw_writing: false,
            runtime_fatal: false,
        }
    }

    #[test]
    fn make_starts_a_new_identity() {
        let mut r = MapRegistry::default();
        r.observe(&ev(MapOp::Make, 0xc0, 0, 0x401000));
        r.observe(&ev(MapOp::Write, 0xc0, 0x4a0000, 0x402000));
        assert_eq!(
            r.get(10, 0xc0),
            Some(&MapInfo {
                made_at: Some(0x401000),
                type_addr: 0x4a0000,
                ops: 1
            })
        );
        // The address is reused by a new map made elsewhere.
        r.observe(&ev(MapOp::Make, 0xc0, 0, 0x403000));
        assert_eq!(
            r.get(10, 0xc0),
            Some(&MapInfo {
                made_at: Some(0x403000),
                type_addr: 0,
                ops: 0
            })
        );
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn maps_made_without_a_runtime_call_are_still_tracked() {
        let mut r = MapRegistry::default();
        r.observe(&ev(MapOp::Read, 0xd0, 0x4a0000, 0x402000));
        assert_eq!(r.get(10, 0xd0).unwrap().made_at, None);
    }
}

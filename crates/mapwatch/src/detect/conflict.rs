//! Conflicts: an access that began while another goroutine's write to the same map was in
//! progress. The BPF side sees it (the map's write flag is set and the recorded writer is
//! someone else) and sends both sides; here they become a finding with both stacks.

use gotarget::GoBinary;

use super::maps::MapRegistry;
use crate::event::{InFlightWrite, MapEvent};
use crate::report::{Access, Finding, FindingKind};
use crate::stacks::StackResolver;

/// Everything needed to describe an access and its map in source terms.
pub struct Describer<'a> {
    /// The target binary (type names).
    pub binary: &'a GoBinary,
    /// Symbolizer.
    pub resolver: &'a mut StackResolver,
    /// Map identities.
    pub maps: &'a MapRegistry,
}

impl Describer<'_> {
    /// A finding about `ev`'s map, its identity filled in from what was seen of the map.
    pub fn finding(
        &mut self,
        kind: FindingKind,
        ev: &MapEvent,
        first: Access,
        second: Access,
        go_version: &str,
    ) -> Finding {
        let info = self.maps.get(ev.pid, ev.map);
        let type_addr = info
            .map(|i| i.type_addr)
            .filter(|&a| a != 0)
            .unwrap_or(ev.map_type);
        let map_type = (type_addr != 0)
            .then(|| self.binary.type_name(type_addr))
            .flatten();
        let map_site = info
            .and_then(|i| i.made_at)
            .and_then(|ret| self.resolver.call_site_line(ret));
        Finding {
            kind,
            map: format!("{:#x}", ev.map),
            map_type,
            map_site,
            first,
            second,
            detected_by: if ev.runtime_fatal {
                "go-runtime"
            } else {
                "mapwatch"
            }
            .to_string(),
            count: 1,
            pid: ev.pid,
            go_version: go_version.to_string(),
            notes: Vec::new(),
        }
    }
}

/// The finding for an access `ev` (its stack `ips`) that found `writer`'s write in progress.
pub fn conflict_finding(
    ev: &MapEvent,
    ips: &[u64],
    writer: &InFlightWrite,
    d: &mut Describer<'_>,
    go_version: &str,
) -> Finding {
    let first = Access::new(
        writer.op,
        writer.goid,
        d.resolver.stack(&writer.stack, writer.ret),
        writer.tid,
        writer.ts,
    );
    let second = Access::new(ev.op, ev.goid, d.resolver.stack(ips, ev.ret), ev.tid, ev.ts);
    d.finding(FindingKind::Conflict, ev, first, second, go_version)
}

//! A whole file through `GoBinary::from_bytes` (ELF, build info, pclntab, moduledata, DWARF),
//! then the queries mapwatch makes of an opened binary: probe plans, call sites, the sync
//! plan, the last check of every site, inlined sites, symbolization and type names.
#![no_main]

use std::path::Path;

use gotarget::GoBinary;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bin) = GoBinary::from_bytes(Path::new("fuzz-input"), data.into()) else {
        return;
    };
    let _ = (bin.go_version(), bin.map_abi(), bin.build_settings());
    let _ = (bin.degradations(), bin.runtime_offsets());
    let plan = bin.map_probe_plan();
    for p in &plan {
        let _ = bin.return_sites(&p.function);
    }
    let calls = bin.map_call_sites();
    let sync = bin.sync_probe_plan();
    let sites = plan.iter().map(|p| &p.site);
    let sites = sites.chain(calls.iter().map(|c| &c.site));
    let _ = bin.check_probe_sites(sites.chain(sync.probes.iter().map(|p| &p.site)));
    let _ = bin.inlined_sites("sync.(*Mutex).Lock");
    let pcs = plan.iter().take(8).map(|p| p.site.addr);
    for pc in pcs.chain(calls.iter().take(8).map(|c| c.call)) {
        let _ = bin.symbolize(pc);
        let _ = bin.type_name(pc);
    }
    for pc in [0, u64::MAX] {
        let _ = bin.symbolize(pc);
        let _ = bin.type_name(pc);
    }
});

//! `mapwatch inspect`: the probe plan for a binary, for a person to read.

use std::fmt::Write;

use anyhow::Result;
use gotarget::{GoBinary, MapAbi, MapOp, OffsetSource};

/// Short name of a map implementation.
pub fn abi_name(abi: MapAbi) -> &'static str {
    match abi {
        MapAbi::Classic => "classic (hmap)",
        MapAbi::Swiss => "Swiss",
    }
}

/// The probe plan as text.
pub fn describe(binary: &GoBinary) -> Result<String> {
    let mut s = String::new();
    let o = binary.runtime_offsets();
    writeln!(s, "binary:     {}", binary.path().display())?;
    writeln!(s, "go:         {}", binary.go_version().raw)?;
    writeln!(s, "maps:       {}", abi_name(binary.map_abi()))?;
    let source = match o.source {
        OffsetSource::Dwarf => "DWARF",
        OffsetSource::Table => "built-in table",
    };
    writeln!(
        s,
        "offsets:    g.goid={} g.parentGoid={} g.m={} write flag @{} mask {:#x} iterator->map @{} (from {source})",
        o.goid, o.parent_goid, o.m, o.write_flag.offset, o.write_flag.mask, o.iter_map_offset
    )?;
    for d in binary.degradations() {
        writeln!(s, "degraded:   {d}")?;
    }
    writeln!(s, "probes:")?;
    writeln!(
        s,
        "  {:<10} {:<34} {:>10} {:>10}  placement",
        "op", "function", "entry", "probe"
    )?;
    for p in binary.map_probe_plan() {
        let sites = if p.op == MapOp::Make {
            binary.return_sites(&p.function)?
        } else {
            vec![p.site.clone()]
        };
        for site in sites {
            let placement = match &p.skip {
                Some(why) => format!("skipped: {why}"),
                None => format!("{}: `{}`", site.placement, site.instruction),
            };
            writeln!(
                s,
                "  {:<10} {:<34} {:>#10x} {:>+#10x}  {placement}",
                p.op.as_str(),
                p.function.name,
                p.function.addr,
                site.addr - p.function.addr
            )?;
        }
    }
    let calls = binary.map_call_sites();
    let mut callers: Vec<&str> = calls.iter().map(|c| c.caller.as_str()).collect();
    callers.sort_unstable();
    callers.dedup();
    let per_op: Vec<String> = MapOp::ALL
        .iter()
        .map(|op| (op, calls.iter().filter(|c| c.op == *op).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(op, n)| format!("{op} {n}"))
        .collect();
    writeln!(
        s,
        "map calls:  {} in {} functions of the program, maps and reflect ({}): where map \
         operations are probed (creations where the call returns); --all-maps probes the \
         entry points above instead",
        calls.len(),
        callers.len(),
        per_op.join(", ")
    )?;
    let sync = binary.sync_probe_plan();
    let emulated = sync.probes.iter().filter(|p| p.site.emulated).count();
    writeln!(
        s,
        "sync probes (happens-before, for races): {} ({emulated} on emulated instructions)",
        sync.probes.len()
    )?;
    for p in &sync.probes {
        writeln!(
            s,
            "  {:<12} {:<44} {:>#10x}  {}: `{}` object {:?}",
            p.kind.to_string(),
            p.location(),
            p.site.addr,
            if p.site.emulated {
                "emulated"
            } else {
                "single-stepped"
            },
            p.site.instruction,
            p.object
        )?;
    }
    for why in &sync.unobservable {
        writeln!(s, "unobservable: {why}")?;
    }
    Ok(s)
}

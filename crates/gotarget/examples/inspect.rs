//! Prints what gotarget sees in a Go binary: `cargo run -p gotarget --example inspect -- BIN [PC...]`.

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: inspect BINARY [PC...]");
        std::process::exit(2);
    };
    let bin = match gotarget::GoBinary::open(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!(
        "{}: {} {:?} maps",
        path.display(),
        bin.go_version(),
        bin.map_abi()
    );
    for d in bin.degradations() {
        println!("  degraded: {d}");
    }
    println!("  offsets: {:?}", bin.runtime_offsets());
    for p in bin.map_probe_plan() {
        let place = &p.site.placement;
        println!(
            "  {:<12} {:<9} {:<32} {:#x} +{:#x} file {:#x} `{}` {}{}",
            p.op.as_str(),
            p.variant,
            p.function.name,
            p.function.addr,
            p.site.addr - p.function.addr,
            p.site.file_offset,
            p.site.instruction,
            place,
            p.skip.map(|s| format!(" SKIP: {s}")).unwrap_or_default()
        );
    }
    for pc in args {
        let pc = u64::from_str_radix(pc.trim_start_matches("0x"), 16).unwrap_or(0);
        for f in bin.symbolize(pc) {
            println!("  {pc:#x}: {} {}:{}", f.function, f.file, f.line);
        }
    }
}

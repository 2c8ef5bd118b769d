//! Compiles the BPF programs with clang, generates their libbpf-rs skeleton, and generates the
//! Rust constants of the records' layout from `bpf/event.h` (see `bpf/event_layout.c`).
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/mapwatch.bpf.c";
const LAYOUT_SRC: &str = "src/bpf/event_layout.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    // Kernel UAPI headers (linux/bpf.h) include <asm/...>, which Debian keeps per multiarch triple.
    let arch_include = format!(
        "-I/usr/include/{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into())
    );
    // -mcpu=v3: atomic fetch-and-add, with which concurrent writes claim slots in a map's ring.
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args([arch_include.as_str(), "-mcpu=v3", "-Wall", "-Werror"])
        .build_and_generate(out.join("mapwatch.skel.rs"))
        .unwrap_or_else(|e| {
            panic!("building {SRC} failed (is clang installed? run scripts/setup.sh): {e:#}")
        });
    generate_layout(&out, &arch_include);
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed={LAYOUT_SRC}");
    println!("cargo:rerun-if-changed=src/bpf/event.h");
}

/// Builds and runs the layout printer with the host C compiler; writes `event_layout.rs`.
fn generate_layout(out: &Path, arch_include: &str) {
    let exe = out.join("event_layout");
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([arch_include, "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(LAYOUT_SRC)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?} for {LAYOUT_SRC}: {e}"));
    assert!(status.success(), "compiling {LAYOUT_SRC} failed");
    let printed = Command::new(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    assert!(printed.status.success(), "{} failed", exe.display());
    std::fs::write(out.join("event_layout.rs"), printed.stdout).expect("writing event_layout.rs");
}

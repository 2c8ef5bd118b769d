//! Compiles the BPF programs with clang and generates their libbpf-rs skeleton.
use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/mapwatch.bpf.c";

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
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=src/bpf/event.h");
}

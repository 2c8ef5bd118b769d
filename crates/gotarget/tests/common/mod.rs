//! Shared fixtures: real Go binaries built by real toolchains (via `gobuild`).
#![allow(dead_code)] // each test file uses a different subset

use std::path::PathBuf;
use std::sync::OnceLock;

use gotarget::MapAbi;

/// One build of a test program.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub version: &'static str,
    pub stripped: bool,
    pub noswissmap: bool,
    pub path: PathBuf,
}

impl Fixture {
    pub fn minor(&self) -> u32 {
        self.version.split('.').nth(1).unwrap().parse().unwrap()
    }

    pub fn expected_abi(&self) -> MapAbi {
        if self.minor() < 24 || self.noswissmap {
            MapAbi::Classic
        } else {
            MapAbi::Swiss
        }
    }

    pub fn label(&self) -> String {
        format!(
            "go{}{}{}",
            self.version,
            if self.stripped { " stripped" } else { "" },
            if self.noswissmap { " noswissmap" } else { "" }
        )
    }
}

/// Builds `testdata/go/<package>`, failing with gobuild's message (which says how to install
/// a missing toolchain: scripts/setup.sh --all-go).
pub fn build(version: &'static str, package: &str, stripped: bool, noswissmap: bool) -> Fixture {
    let mut b = gobuild::Build::new(version, package).stripped(stripped);
    if noswissmap {
        b = b.experiment("noswissmap");
    }
    let path = b
        .build()
        .unwrap_or_else(|e| panic!("cannot build {package} with Go {version}: {e}"));
    Fixture {
        version,
        stripped,
        noswissmap,
        path,
    }
}

/// allops for every supported version, normal and stripped, plus noswissmap on 1.24/1.25.
pub fn allops() -> &'static [Fixture] {
    static ALL: OnceLock<Vec<Fixture>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut out = Vec::new();
        for v in gobuild::ALL_VERSIONS {
            for stripped in [false, true] {
                out.push(build(v, "allops", stripped, false));
                if v.starts_with("1.24.") || v.starts_with("1.25.") {
                    out.push(build(v, "allops", stripped, true));
                }
            }
        }
        out
    })
}

/// The `runtime.g` offsets (goid, parentGoid, m) per Go minor version, as measured from DWARF
/// on this machine kind: the independent check of gotarget's built-in table (`offsets.rs`).
pub fn expected_g_offsets(minor: u32) -> (u32, u32, u32) {
    match minor {
        21 | 22 => (152, 272, 48),
        23 | 24 => (160, 280, 48),
        25 => (152, 272, 48),
        26 | 27 => (152, 280, 48),
        _ => panic!("no expectation for Go 1.{minor}"),
    }
}

/// A scratch directory for patched copies.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gotarget");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `go build` with extra environment and flags (what gobuild::Build does not cover: other
/// GOARCH, -buildmode), into the scratch directory.
pub fn build_custom(
    version: &str,
    package: &str,
    env: &[(&str, &str)],
    flags: &[&str],
    out_name: &str,
) -> PathBuf {
    let go = gobuild::go_command(version).unwrap_or_else(|e| panic!("{e}"));
    let out = scratch(out_name);
    let mut cmd = std::process::Command::new(go);
    cmd.current_dir(gobuild::repo_root().join("testdata/go"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0")
        .args(["build", "-o"])
        .arg(&out)
        .args(flags)
        .arg(format!("./{package}"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("run go build");
    assert!(
        output.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

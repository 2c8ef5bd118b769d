//! Turns the instruction pointers a probe recorded into `function file:line` frames.
//!
//! A probe sits on the `push rbp` after the stack check, so RBP is still the caller's frame
//! pointer: a frame-pointer walk from there starts at the caller's caller and misses the
//! direct caller, which the event carries separately (`*RSP`). This module splices it back in.

use std::collections::HashMap;
use std::sync::Arc;

use gotarget::GoBinary;

/// Symbolizes stacks of one target binary, caching per address.
pub struct StackResolver {
    binary: Arc<GoBinary>,
    cache: HashMap<u64, Vec<String>>,
}

impl StackResolver {
    /// A resolver for `binary`.
    pub fn new(binary: Arc<GoBinary>) -> StackResolver {
        StackResolver {
            binary,
            cache: HashMap::new(),
        }
    }

    /// Frames (inlined ones first) at `pc`, an exact instruction address.
    fn frames_at(&mut self, pc: u64) -> &[String] {
        let binary = &self.binary;
        self.cache.entry(pc).or_insert_with(|| {
            let frames = binary.symbolize(pc);
            if frames.is_empty() {
                vec![format!("?? {pc:#x}")]
            } else {
                frames
                    .iter()
                    .map(|f| format!("{} {}:{}", f.function, f.file, f.line))
                    .collect()
            }
        })
    }

    /// Frames of the call that returns to `ret` (the call instruction is just before it).
    pub fn call_site(&mut self, ret: u64) -> &[String] {
        self.frames_at(ret.saturating_sub(1))
    }

    /// The innermost frame of the call that returns to `ret`: `function file:line`.
    pub fn call_site_line(&mut self, ret: u64) -> Option<String> {
        self.call_site(ret).first().cloned()
    }

    /// The full stack of a probed access: `ips` from the kernel's walk (the probe address
    /// first, then return addresses), with the direct caller `ret` spliced in when missing.
    pub fn stack(&mut self, ips: &[u64], ret: u64) -> Vec<String> {
        let mut out = Vec::new();
        let Some((&probe_ip, callers)) = ips.split_first() else {
            // No stack was taken: the direct caller is all there is.
            out.extend_from_slice(self.call_site(ret));
            return out;
        };
        out.extend_from_slice(self.frames_at(probe_ip));
        // Newer kernels already add the caller of a probe on `push rbp`; don't list it twice.
        if callers.first() != Some(&ret) && ret != 0 {
            out.extend_from_slice(self.call_site(ret));
        }
        for &r in callers {
            out.extend_from_slice(self.call_site(r));
        }
        out
    }
}

/// The first frame outside the Go runtime: the line of user code a finding is about.
pub fn user_frame(stack: &[String]) -> Option<&str> {
    stack
        .iter()
        .map(String::as_str)
        .find(|f| !f.starts_with("runtime.") && !f.starts_with("internal/runtime/"))
}

/// The top-level directories of Go's standard library from Go 1.21 to 1.27 (`go list std`),
/// with the GOEXPERIMENT-only `arena` and `simd`.
const STD_ROOTS: &[&str] = &[
    "archive",
    "arena",
    "bufio",
    "bytes",
    "cmp",
    "compress",
    "container",
    "context",
    "crypto",
    "database",
    "debug",
    "embed",
    "encoding",
    "errors",
    "expvar",
    "flag",
    "fmt",
    "go",
    "hash",
    "html",
    "image",
    "index",
    "internal",
    "io",
    "iter",
    "log",
    "maps",
    "math",
    "mime",
    "net",
    "os",
    "path",
    "plugin",
    "reflect",
    "regexp",
    "runtime",
    "simd",
    "slices",
    "sort",
    "strconv",
    "strings",
    "structs",
    "sync",
    "syscall",
    "testing",
    "text",
    "time",
    "unicode",
    "unique",
    "unsafe",
    "uuid",
    "vendor",
    "weak",
];

/// The package path of a Go function symbol: `net/http.(*conn).serve` -> `net/http`,
/// `main.Cache[go.shape.string].Get` -> `main` (type arguments may hold paths of their own).
fn package_of(function: &str) -> &str {
    let head = function.split('[').next().unwrap_or(function);
    let last_element = head.rfind('/').map_or(0, |i| i + 1);
    let end = head[last_element..]
        .find('.')
        .map_or(head.len(), |i| last_element + i);
    &function[..end]
}

/// Whether `function` (a Go symbol name, e.g. `main.(*Store).Set`, `net/http.(*conn).serve`,
/// `github.com/x/y.F`) is outside Go's standard library: package `main`, any module's package
/// (with or without a dot in its path), `command-line-arguments` (`go build file.go`), and the
/// Go tools' own `cmd/...` packages. Races are reported on maps of such code; the standard
/// library's own maps are guarded by synchronisation mapwatch does not all see. Compiler-made
/// functions (`type:.eq.T`, `go:...`) are not user code.
pub fn is_user_function(function: &str) -> bool {
    let package = package_of(function);
    let root = package.split('/').next().unwrap_or(package);
    !(STD_ROOTS.contains(&root) || root.starts_with("type:") || root.starts_with("go:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_functions_are_main_or_module_paths() {
        assert!(is_user_function("main.(*Store).SetStatus"));
        assert!(is_user_function("main.main.func1"));
        assert!(is_user_function("github.com/acme/svc/store.(*S).Get"));
        assert!(is_user_function("mapguard.test/internal/goid.Get"));
        assert!(is_user_function("command-line-arguments.(*store).get"));
        assert!(is_user_function("myapp/internal/store.(*S).Get"));
        assert!(is_user_function(
            "main.SafeMap[go.shape.string,go.shape.int].Load"
        ));
        assert!(is_user_function("main.main.func1.deferwrap1"));
        assert!(is_user_function("cmd/go/internal/modload.loadFromRoots"));
        assert!(!is_user_function(
            "sync.(*Map[go.shape.string,main.T]).Load"
        ));
        assert!(!is_user_function("type:.eq.main.T"));
        assert!(!is_user_function(
            "internal/sync.(*HashTrieMap[go.shape.string,go.shape.int]).Load"
        ));
        assert!(!is_user_function("sync.(*Map).Load"));
        assert!(!is_user_function("net/http.(*conn).serve"));
        assert!(!is_user_function("runtime.mapassign_fast64"));
        assert!(!is_user_function("vendor/golang.org/x/net/http2.F"));
    }
}

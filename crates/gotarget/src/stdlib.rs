//! Which Go code is the program's own: everything outside Go's standard library.

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

/// Whether the map operations `function` makes are on maps its callers hand it, so that they
/// are watched where the caller's are: user code, and the standard library's code that
/// operates on maps passed to it (the `maps` package's generic functions, `reflect`, which
/// `fmt` and `encoding/json` go through, and the runtime's functions linked into `reflect`).
pub fn operates_on_callers_maps(function: &str) -> bool {
    is_user_function(function)
        || ["maps", "reflect"].contains(&package_of(function))
        || function.starts_with("runtime.reflect_")
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

    #[test]
    fn callers_maps_are_user_code_and_map_generic_library_code() {
        assert!(operates_on_callers_maps("main.main.func1"));
        assert!(operates_on_callers_maps(
            "maps.Copy[go.shape.map[string]int]"
        ));
        assert!(operates_on_callers_maps("reflect.(*MapIter).Next"));
        assert!(operates_on_callers_maps("reflect.mapaccess"));
        assert!(operates_on_callers_maps("runtime.reflect_mapassign"));
        assert!(!operates_on_callers_maps("net/http.Header.Get"));
        assert!(!operates_on_callers_maps("runtime.mapassign_faststr"));
        assert!(!operates_on_callers_maps("internal/reflectlite.TypeOf"));
    }
}

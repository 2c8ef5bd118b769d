//! Which map implementation a binary's runtime uses.

use crate::buildinfo::BuildInfo;
use crate::version::GoVersion;

/// Which map implementation the binary's runtime uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapAbi {
    /// Bucketed `runtime.hmap`: Go 1.21-1.23, and 1.24/1.25 built with
    /// `GOEXPERIMENT=noswissmap`.
    Classic,
    /// Swiss tables (`internal/runtime/maps.Map`): default in 1.24/1.25, the only kind since 1.26.
    Swiss,
}

/// Build settings say which map ABI a 1.24/1.25 binary has; the runtime's own functions
/// (`has(name)`) confirm it, and win if they disagree (with a note for the degradations).
pub(crate) fn detect(
    version: &GoVersion,
    build: &BuildInfo,
    has: impl Fn(&str) -> bool,
) -> (MapAbi, Option<String>) {
    let by_build = if !version.at_least(1, 24) {
        MapAbi::Classic
    } else if version.at_least(1, 26) || !build.has_experiment("noswissmap") {
        MapAbi::Swiss
    } else {
        MapAbi::Classic
    };
    // Functions only one implementation has (hashGrow: any classic map write).
    let classic = has("runtime.hashGrow") || has("runtime.mapiterinit");
    let swiss = has("runtime.mapIterStart") || has("internal/runtime/maps.(*Map).Delete");
    match (classic, swiss) {
        (true, false) if by_build != MapAbi::Classic => {
            (MapAbi::Classic, Some(disagree(by_build, MapAbi::Classic)))
        }
        (false, true) if by_build != MapAbi::Swiss => {
            (MapAbi::Swiss, Some(disagree(by_build, MapAbi::Swiss)))
        }
        _ => (by_build, None),
    }
}

fn disagree(by_build: MapAbi, by_code: MapAbi) -> String {
    format!(
        "map ABI: build info suggests {by_build:?} but the runtime's functions are {by_code:?}; \
         using {by_code:?}"
    )
}

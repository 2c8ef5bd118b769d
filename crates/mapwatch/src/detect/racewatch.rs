//! Race detection as one watch runs it: which maps are looked at, the detector, what limited
//! the watch (attached to every race finding), and which pairs of code locations already made
//! a finding (a racy loop repeats one pair thousands of times a second: those are counted
//! without symbolizing them again).

use std::collections::HashMap;

use gotarget::MapOp;

use super::conflict::Describer;
use super::race::{race_finding, Race, RaceDetector};
use crate::event::{MapEvent, SyncEvent};
use crate::report::Finding;
use crate::stacks::StackResolver;
use gotarget::is_user_function;

/// (map site or type, earlier access's caller, later access's caller).
pub type RaceSite = (u64, u64, u64);

/// What one race found at an access amounts to.
pub enum RaceOccurrence {
    /// Another occurrence of the finding at this index of the watch's finding log.
    Repeat(usize),
    /// A pair of code locations not seen before: the finding, to be logged and then
    /// [`remembered`](RaceWatch::remember) under `site`.
    New {
        /// The finding, described.
        finding: Box<Finding>,
        /// Its key for later repeats.
        site: RaceSite,
    },
}

/// What the user asked of race watching.
#[derive(Clone, Debug, Default)]
pub struct RaceScope {
    /// Only maps made at these source positions (`file.go:LINE`, matched as a suffix).
    pub map_sites: Vec<String>,
    /// What limited the watch (sampling, unobservable synchronisation), for the findings.
    pub notes: Vec<String>,
}

/// The race side of a watch.
pub struct RaceWatch {
    detector: RaceDetector,
    scope: RaceScope,
    found: Vec<Race>,
    sites: HashMap<RaceSite, usize>,
    /// Whose code a pc (a map's creator, or its accessor) is in, cached.
    code: HashMap<u64, Code>,
    /// Whether each map (pid, address) is watched, decided at its first access.
    watched_maps: HashMap<(u32, u64), bool>,
}

impl RaceWatch {
    /// Race watching within `scope`.
    pub fn new(scope: RaceScope) -> RaceWatch {
        RaceWatch {
            detector: RaceDetector::new(),
            scope,
            found: Vec::new(),
            sites: HashMap::new(),
            code: HashMap::new(),
            watched_maps: HashMap::new(),
        }
    }

    /// The watch began on a running process (see [`RaceDetector::joined_late`]).
    pub fn joined_late(&mut self) {
        self.detector.joined_late();
    }

    /// Applies a synchronisation operation.
    pub fn sync(&mut self, ev: &SyncEvent) {
        self.detector.sync(ev);
    }

    /// Runs the detector over the map access `ev` (its map made at `made_at`, if seen) and
    /// appends what each race found amounts to.
    pub fn access(
        &mut self,
        ev: &MapEvent,
        made_at: Option<u64>,
        d: &mut Describer<'_>,
        out: &mut Vec<RaceOccurrence>,
    ) {
        let in_scope = self.watched(ev, made_at, d.resolver);
        let mut found = std::mem::take(&mut self.found);
        self.detector.access(ev, in_scope, &mut found);
        for race in found.drain(..) {
            let site = (
                made_at.unwrap_or(ev.map_type),
                race.earlier.ret,
                race.later.ret,
            );
            if let Some(&i) = self.sites.get(&site) {
                out.push(RaceOccurrence::Repeat(i));
                continue;
            }
            let mut finding = race_finding(&race, ev, d, &d.binary.go_version().raw);
            finding.notes = self.scope.notes.clone();
            out.push(RaceOccurrence::New {
                finding: Box::new(finding),
                site,
            });
        }
        self.found = found;
    }

    /// Forgets the map at `map` in process `pid`: another map now has the address.
    pub fn forget_map(&mut self, pid: u32, map: u64) {
        self.watched_maps.remove(&(pid, map));
        self.detector.forget_map(pid, map);
    }

    /// See [`RaceDetector::barrier`].
    pub fn barrier(&mut self) {
        self.detector.barrier();
    }

    /// What the detector holds now (its memory).
    pub fn size(&self) -> super::race::DetectorSize {
        self.detector.size()
    }

    /// Records that `site`'s finding sits at `index` of the finding log.
    pub fn remember(&mut self, site: RaceSite, index: usize) {
        self.sites.insert(site, index);
    }

    /// Whether `ev`'s map is one races are looked for on: made by user code (or, when its
    /// making was not seen, first used by user code), and at a chosen site if any were given.
    fn watched(&mut self, ev: &MapEvent, made_at: Option<u64>, r: &mut StackResolver) -> bool {
        if ev.op == MapOp::Make {
            self.watched_maps.remove(&(ev.pid, ev.map));
            return false;
        }
        if let Some(&watched) = self.watched_maps.get(&(ev.pid, ev.map)) {
            return watched;
        }
        let user = match made_at.map(|pc| self.code_at(pc, r)) {
            Some(Code::User) => true,
            Some(Code::Library) => false,
            // A map made on the caller's behalf (maps.Clone), or before the watch: whose it is
            // shows in who uses it first.
            Some(Code::MapMaker) | None => self.code_at(ev.ret, r) == Code::User,
        };
        let sites = &self.scope.map_sites;
        let chosen = sites.is_empty()
            || made_at
                .and_then(|ret| r.call_site_line(ret))
                .is_some_and(|line| sites.iter().any(|s| line.ends_with(s.as_str())));
        let watched = user && chosen;
        self.watched_maps.insert((ev.pid, ev.map), watched);
        watched
    }

    /// Whose code the call returning to `pc` is in.
    fn code_at(&mut self, pc: u64, r: &mut StackResolver) -> Code {
        *self.code.entry(pc).or_insert_with(|| {
            let function = r
                .call_site(pc)
                .first()
                .and_then(|frame| frame.split(' ').next())
                .unwrap_or_default();
            if is_user_function(function) {
                Code::User
            } else if MAP_MAKERS.iter().any(|p| function.starts_with(p)) {
                Code::MapMaker
            } else {
                Code::Library
            }
        })
    }
}

/// Whose code a map operation or a map's making returned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Code {
    /// Outside the standard library.
    User,
    /// The runtime and the `maps` package, which make maps for their callers (`maps.Clone`
    /// goes through `runtime.mapclone2` on classic maps).
    MapMaker,
    /// The rest of the standard library.
    Library,
}

/// Where the [`Code::MapMaker`]s live.
const MAP_MAKERS: [&str; 3] = ["runtime.", "internal/runtime/", "maps."];

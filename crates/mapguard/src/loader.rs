//! Single-flight loading, shared by every engine.
//!
//! For each missing key at most one caller (the *loader*) runs the user's load
//! function; every other caller that arrives meanwhile (*waiters*) parks on the
//! key's [`Flight`] and gets the loader's outcome, value or error. No map lock is
//! held while the load function runs, so it may use the map (other keys) freely.
//!
//! The protocol, with `table` the per-map mutex of flights in progress:
//!
//! 1. Look the key up in the map; a hit returns.
//! 2. Lock `table`. A flight for the key exists: clone it, unlock, wait.
//!    None exists: register a new flight (and count it in `in_flight`), unlock.
//! 3. The new loader looks the map up *again*, under the engine's lock: a
//!    loader fills the map before it removes its flight, so "no flight when we
//!    registered" means any earlier loader's value is visible now. A hit ends
//!    the flight with that value; a miss runs the load function.
//! 4. The loader fills the map, unless the flight was *invalidated* (below),
//!    then removes its flight from `table` (adding a negative-cache entry in the
//!    same critical section when the load found nothing and the flight was not
//!    invalidated), then publishes the outcome in the flight and wakes the
//!    waiters. Removing before publishing means a waiter told to retry can never
//!    find the finished flight still registered (no spinning).
//! 5. If the load function panics, a drop guard does step 4 with the outcome
//!    `Abandoned`: waiters wake and start over, one of them becoming the new
//!    loader; the panic continues in the loading caller. Nothing is poisoned.
//!
//! ## Invalidation: no stale fill
//!
//! A load may read its source before a concurrent writer changes the source and
//! then writes the map ("update the database, then invalidate the cache"). Filling
//! the map with such a value afterwards would resurrect stale data, possibly for
//! good. So every write to a key calls [`SingleFlight::invalidate`] (whole-map
//! writes: [`SingleFlight::invalidate_all`]) *inside the engine's write critical
//! section* (the shard's write lock, the snapshot writer mutex), which marks the
//! key's flight, if any; the loader's fill checks the mark inside the same lock
//! and, when set, hands its value to its caller and the waiters without storing
//! it (and caches no miss). Why no stale value can be stored:
//!
//! * The fill and the mark are in critical sections of one lock, so they are
//!   ordered: a write whose critical section comes first has marked the flight
//!   when the fill looks; a write that comes after the fill overwrites or
//!   removes the filled value itself.
//! * The writer sees the flight whenever the load might predate the write. The
//!   loader registers (and increments `in_flight`, under `table`) *before* its
//!   re-check in step 3, which takes the engine lock. If that re-check comes
//!   before the write in the lock's order, the increment happens-before the
//!   writer's read of `in_flight`, and the registration before the writer's
//!   `table` lookup, so the flight is found and marked. If the re-check comes
//!   after the write, the writer's change of the source happens-before the
//!   load, which therefore reads it: not stale. This holds even for a source
//!   that does not synchronise by itself (the loom model uses a Relaxed atomic).
//!
//! Writes stay cheap when nothing is loading: `invalidate` reads the
//! `in_flight` count (Relaxed is enough: the happens-before edge comes from the
//! lock, as argued above) and takes `table` only when it is non-zero. A write
//! that skips the engine's write (the snapshot engine's `remove` or `update` of
//! an absent key, which copies nothing) still takes the engine lock to
//! invalidate. The `try_*` writes give up with `WouldBlock` when `table` is
//! busy, before changing anything.
//!
//! Conservative corners: a flight registered just before a write's critical
//! section whose re-check comes after it reads the new source but is marked
//! all the same (its value is then merely not stored); and a miss cached before
//! a write stays cached for its TTL, as negative caching promises (writes do not
//! forget misses: `forget_miss` does).
//!
//! Lock order: an engine lock before `table` (writers), never the reverse (no
//! loader holds `table` while taking an engine lock), and a flight's own mutex is
//! never held with either. The loom models in `tests/loom.rs` check this
//! protocol, including a loader racing a remover.

use std::any::Any;
use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use crate::api::WouldBlock;
use crate::sync::{current_thread_id, AtomicUsize, Condvar, Mutex};

/// The map operations the protocol needs from an engine.
pub(crate) trait Backing<K, V> {
    /// The value stored for `key`, cloned.
    fn lookup(&self, key: &K) -> Option<V>;
    /// [`lookup`](Self::lookup) under the lock that orders the engine's writes
    /// (and that [`fill`](Self::fill) takes): the loader's re-check, which the
    /// invalidation argument needs ordered against every write.
    fn recheck(&self, key: &K) -> Option<V>;
    /// Stores `value` unless the key got a value meanwhile (which is returned
    /// instead) or `invalidated` is set when checked inside the write critical
    /// section (`value` is then returned without being stored).
    fn fill(&self, key: K, value: V, invalidated: &AtomicBool) -> V;
}

#[cfg(loom)]
type LoaderId = loom::thread::ThreadId;
#[cfg(not(loom))]
type LoaderId = std::thread::ThreadId;

enum State<V> {
    Loading,
    /// `None`: the load found nothing (`Ok(None)`).
    Loaded(Option<V>),
    /// The load's error, type-erased because each call picks its error type.
    Failed(Arc<dyn Any + Send + Sync>),
    /// The loader panicked: waiters start over.
    Abandoned,
}

struct Flight<V> {
    state: Mutex<State<V>>,
    done: Condvar,
    /// Lets a load function that asks for its own key fail loudly instead of
    /// waiting for itself forever.
    loader: LoaderId,
    /// Set when the key was written while the flight was in progress: the
    /// loaded value may predate that write and must not be stored. Written and
    /// read under the engine's write lock (or `table`), so Relaxed suffices.
    invalidated: AtomicBool,
}

impl<V> Flight<V> {
    fn new() -> Self {
        Flight {
            state: Mutex::new(State::Loading),
            done: Condvar::new(),
            loader: current_thread_id(),
            invalidated: AtomicBool::new(false),
        }
    }
}

struct Table<K, V> {
    flights: HashMap<K, Arc<Flight<V>>>,
    /// Keys whose last load found nothing, with the instant that stops being true.
    misses: HashMap<K, Instant>,
    /// Expired misses are swept when `misses` reaches this size (amortised O(1)).
    sweep_at: usize,
}

/// The single-flight state of one map.
pub(crate) struct SingleFlight<K, V> {
    table: Mutex<Table<K, V>>,
    /// Flights registered in `table`, readable without its lock: writers take
    /// `table` to invalidate only when this is non-zero.
    in_flight: AtomicUsize,
    negative_ttl: Option<Duration>,
}

const FIRST_SWEEP: usize = 64;

impl<K, V> SingleFlight<K, V> {
    pub(crate) fn new(negative_ttl: Option<Duration>) -> Self {
        SingleFlight {
            table: Mutex::new(Table {
                flights: HashMap::new(),
                misses: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
            in_flight: AtomicUsize::new(0),
            negative_ttl,
        }
    }

    /// Forgets all cached misses (the map was cleared).
    pub(crate) fn forget_misses(&self) {
        self.table.lock().misses.clear();
    }

    /// Whether no flight is registered: the writers' fast path (Relaxed: the
    /// engine lock orders what matters, see the module docs).
    #[inline]
    fn is_idle(&self) -> bool {
        self.in_flight.load(Relaxed) == 0
    }

    /// Marks every flight in progress invalidated (a whole-map write). Call it
    /// inside the write critical section (see the module docs).
    pub(crate) fn invalidate_all(&self) {
        if self.is_idle() {
            return;
        }
        for flight in self.table.lock().flights.values() {
            flight.invalidated.store(true, Relaxed);
        }
    }

    /// [`invalidate_all`](Self::invalidate_all) for the `try_*` writes:
    /// [`WouldBlock`] instead of waiting for the flights table.
    pub(crate) fn try_invalidate_all(&self) -> Result<(), WouldBlock> {
        if self.is_idle() {
            return Ok(());
        }
        let table = self.table.try_lock().ok_or(WouldBlock)?;
        for flight in table.flights.values() {
            flight.invalidated.store(true, Relaxed);
        }
        Ok(())
    }
}

impl<K: Hash + Eq, V> SingleFlight<K, V> {
    /// Marks the flight loading `key`, if any, invalidated: the write in whose
    /// critical section this is called may postdate what the load read. One
    /// atomic load when nothing is loading.
    #[inline]
    pub(crate) fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.is_idle() {
            self.invalidate_in_flight(key);
        }
    }

    /// [`invalidate`](Self::invalidate) while a load is in flight: out of
    /// line, so that every write inlines only the idle check (as a call, the
    /// check would cost a write ~10 instructions, callgrind).
    #[cold]
    fn invalidate_in_flight<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(flight) = self.table.lock().flights.get(key) {
            flight.invalidated.store(true, Relaxed);
        }
    }

    /// [`invalidate`](Self::invalidate) for a write that owns its key: the key
    /// goes in and out by value, so that a write that inlines this need not
    /// keep the key in memory for the rare call.
    #[inline]
    pub(crate) fn invalidate_owned(&self, key: K) -> K {
        if self.is_idle() {
            key
        } else {
            self.invalidate_in_flight_owned(key)
        }
    }

    #[cold]
    fn invalidate_in_flight_owned(&self, key: K) -> K {
        self.invalidate_in_flight(&key);
        key
    }

    /// [`invalidate`](Self::invalidate) for the `try_*` writes: [`WouldBlock`]
    /// instead of waiting for the flights table.
    pub(crate) fn try_invalidate<Q>(&self, key: &Q) -> Result<(), WouldBlock>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.is_idle() {
            return Ok(());
        }
        let table = self.table.try_lock().ok_or(WouldBlock)?;
        if let Some(flight) = table.flights.get(key) {
            flight.invalidated.store(true, Relaxed);
        }
        Ok(())
    }
}

enum Role<V> {
    Wait(Arc<Flight<V>>),
    Load(Arc<Flight<V>>),
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// [`SingleFlight::load`] for a loader that always finds a value (`get_or_load`).
    pub(crate) fn load_value<B, E, F>(&self, backing: &B, key: K, load: F) -> Result<V, Arc<E>>
    where
        B: Backing<K, V>,
        E: Send + Sync + 'static,
        F: FnOnce(&K) -> Result<V, E>,
    {
        match self.load(backing, key, false, |k| load(k).map(Some)) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => unreachable!("a value load never ends in Ok(None)"),
            Err(error) => Err(error),
        }
    }

    /// Forgets a cached miss for `key`.
    pub(crate) fn forget_miss(&self, key: &K) {
        self.table.lock().misses.remove(key);
    }

    /// The whole protocol. `cache_miss`: whether an `Ok(None)` outcome is
    /// remembered for the negative TTL (and a remembered one honoured).
    pub(crate) fn load<B, E, F>(
        &self,
        backing: &B,
        key: K,
        cache_miss: bool,
        load: F,
    ) -> Result<Option<V>, Arc<E>>
    where
        B: Backing<K, V>,
        E: Send + Sync + 'static,
        F: FnOnce(&K) -> Result<Option<V>, E>,
    {
        let mut load = Some(load);
        loop {
            if let Some(value) = backing.lookup(&key) {
                return Ok(Some(value));
            }
            let role = {
                let mut table = self.table.lock();
                if cache_miss {
                    if let Some(&until) = table.misses.get(&key) {
                        if Instant::now() < until {
                            return Ok(None);
                        }
                        table.misses.remove(&key);
                    }
                }
                match table.flights.get(&key) {
                    Some(flight) => Role::Wait(Arc::clone(flight)),
                    None => {
                        let flight = Arc::new(Flight::new());
                        table.flights.insert(key.clone(), Arc::clone(&flight));
                        // Under `table`, before the re-check in `run_load`: the
                        // order the invalidation argument relies on.
                        self.in_flight.fetch_add(1, Relaxed);
                        Role::Load(flight)
                    }
                }
            };
            match role {
                Role::Wait(flight) => {
                    if let Some(outcome) = Self::wait(&flight) {
                        return outcome;
                    }
                    // Abandoned (or failed with another error type): start over.
                }
                Role::Load(flight) => {
                    let load = load.take().expect("a caller loads at most once");
                    return self.run_load(backing, key, cache_miss, flight, load);
                }
            }
        }
    }

    /// Parks until the flight is over. `None`: the caller must start over.
    fn wait<E: Send + Sync + 'static>(flight: &Flight<V>) -> Option<Result<Option<V>, Arc<E>>> {
        if flight.loader == current_thread_id() {
            panic!(
                "mapguard: re-entrant `get_or_load`: the load function asked for the very key it \
                 is loading, which would wait for itself forever"
            );
        }
        let mut state = flight.state.lock();
        while matches!(*state, State::Loading) {
            flight.done.wait(&mut state);
        }
        match &*state {
            State::Loading => unreachable!("loop exits only when loading ended"),
            State::Loaded(value) => Some(Ok(value.clone())),
            State::Failed(error) => Arc::clone(error).downcast::<E>().ok().map(Err),
            State::Abandoned => None,
        }
    }

    fn run_load<B, E, F>(
        &self,
        backing: &B,
        key: K,
        cache_miss: bool,
        flight: Arc<Flight<V>>,
        load: F,
    ) -> Result<Option<V>, Arc<E>>
    where
        B: Backing<K, V>,
        E: Send + Sync + 'static,
        F: FnOnce(&K) -> Result<Option<V>, E>,
    {
        let mut landing = Landing {
            owner: self,
            key: &key,
            flight: &flight,
            landed: false,
        };
        // The re-check (step 3): a value filled by a loader that landed before
        // we registered is visible here.
        let outcome = match backing.recheck(&key) {
            Some(value) => Ok(Some(value)),
            None => match load(&key) {
                Ok(Some(value)) => Ok(Some(backing.fill(key.clone(), value, &flight.invalidated))),
                Ok(None) => Ok(None),
                Err(error) => Err(Arc::new(error)),
            },
        };
        let state = match &outcome {
            Ok(value) => State::Loaded(value.clone()),
            Err(error) => State::Failed(Arc::clone(error) as Arc<dyn Any + Send + Sync>),
        };
        landing.land(state, cache_miss && matches!(outcome, Ok(None)));
        outcome
    }
}

/// Ends a flight exactly once: with the outcome, or as `Abandoned` when dropped
/// unlanded, i.e. on unwinding out of a panicking load function (or `fill`).
struct Landing<'a, K: Hash + Eq + Clone, V> {
    owner: &'a SingleFlight<K, V>,
    key: &'a K,
    flight: &'a Arc<Flight<V>>,
    landed: bool,
}

impl<K: Hash + Eq + Clone, V> Landing<'_, K, V> {
    fn land(&mut self, outcome: State<V>, remember_miss: bool) {
        self.landed = true;
        {
            let mut table = self.owner.table.lock();
            if let Some(registered) = table.flights.get(self.key) {
                if Arc::ptr_eq(registered, self.flight) {
                    table.flights.remove(self.key);
                    self.owner.in_flight.fetch_sub(1, Relaxed);
                }
            }
            // Writers mark under `table` too, so this read sees every mark made
            // before the flight left the table; a later write finds no flight
            // to mark, and this miss is then just an ordinary cached miss.
            let invalidated = self.flight.invalidated.load(Relaxed);
            if let (true, false, Some(ttl)) = (remember_miss, invalidated, self.owner.negative_ttl)
            {
                let now = Instant::now();
                if table.misses.len() >= table.sweep_at {
                    table.misses.retain(|_, until| *until > now);
                    table.sweep_at = (table.misses.len() * 2).max(FIRST_SWEEP);
                }
                table.misses.insert(self.key.clone(), now + ttl);
            }
        }
        *self.flight.state.lock() = outcome;
        self.flight.done.notify_all();
    }
}

impl<K: Hash + Eq + Clone, V> Drop for Landing<'_, K, V> {
    fn drop(&mut self) {
        if !self.landed {
            self.land(State::Abandoned, false);
        }
    }
}

//! Single-flight loading, shared by both engines.
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
//!    None exists: look the map up *again* (a loader fills the map before it
//!    removes its flight, both in order, so "no flight and not in the map" means
//!    nobody has a value to give us), then register a new flight, unlock, load.
//! 3. The loader fills the map, then removes its flight from `table` (adding a
//!    negative-cache entry in the same critical section when the load found
//!    nothing), then publishes the outcome in the flight and wakes the waiters.
//!    Removing before publishing means a waiter told to retry can never find the
//!    finished flight still registered (no spinning).
//! 4. If the load function panics, a drop guard does step 3 with the outcome
//!    `Abandoned`: waiters wake and start over, one of them becoming the new
//!    loader; the panic continues in the loading caller. Nothing is poisoned.
//!
//! Lock order: `table` before a shard lock (the re-check in step 2), never the
//! reverse, and a flight's own mutex is never held with either. The loom model
//! in `tests/loom.rs` checks this protocol.

use std::any::Any;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use crate::sync::{current_thread_id, Condvar, Mutex};

/// The map operations the protocol needs from an engine.
pub(crate) trait Backing<K, V> {
    /// The value stored for `key`, cloned.
    fn lookup(&self, key: &K) -> Option<V>;
    /// Stores `value` unless the key got a value meanwhile; returns what is stored.
    fn fill(&self, key: K, value: V) -> V;
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
            negative_ttl,
        }
    }

    /// Forgets all cached misses (the map was cleared).
    pub(crate) fn forget_misses(&self) {
        self.table.lock().misses.clear();
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
                        if let Some(value) = backing.lookup(&key) {
                            return Ok(Some(value));
                        }
                        let flight = Arc::new(Flight {
                            state: Mutex::new(State::Loading),
                            done: Condvar::new(),
                            loader: current_thread_id(),
                        });
                        table.flights.insert(key.clone(), Arc::clone(&flight));
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
        let outcome = match load(&key) {
            Ok(Some(value)) => Ok(Some(backing.fill(key.clone(), value))),
            Ok(None) => Ok(None),
            Err(error) => Err(Arc::new(error)),
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
                }
            }
            if let (true, Some(ttl)) = (remember_miss, self.owner.negative_ttl) {
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

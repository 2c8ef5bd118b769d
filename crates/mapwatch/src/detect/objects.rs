//! The clocks of synchronisation objects, in bounded memory.
//!
//! A service makes locks, contexts and channels per request and never says when they die, so
//! the table cannot grow with them. Past [`MAX_OBJECTS`] the least recently used objects are
//! retired: their clocks are joined into the process's retired clock, which every object not
//! in the table stands for (a new one starts from it, an acquire of an unknown one takes it).
//! That only adds edges, so retiring may hide a race whose accesses lie further apart than the
//! retired objects' last use, and never invents one.

use std::collections::HashMap;
use std::hash::Hash;

use super::clock::{Tick, VectorClock};

type Hasher = foldhash::fast::RandomState;

/// Objects kept with their own clocks; past this, the older half is retired.
pub const MAX_OBJECTS: usize = 1 << 16;

/// An object's key: process, kind of clock, address.
pub type Key<C> = (u32, C, u64);

struct Object {
    clock: VectorClock,
    /// When it was last released or acquired, in [`Objects::now`] steps.
    used: u64,
}

/// Object clocks, keyed by process, kind of clock (`C`) and address.
pub struct Objects<C> {
    table: HashMap<Key<C>, Object, Hasher>,
    /// Per process: the join of every retired object's clock.
    retired: HashMap<u32, VectorClock, Hasher>,
    /// Releases and acquires so far.
    now: u64,
}

impl<C> Default for Objects<C> {
    fn default() -> Self {
        Objects {
            table: HashMap::default(),
            retired: HashMap::default(),
            now: 0,
        }
    }
}

impl<C: Copy + Eq + Hash> Objects<C> {
    /// The clock an acquire of `key` takes: its own, or the retired one if it has none.
    pub fn acquire(&mut self, key: Key<C>) -> Option<&VectorClock> {
        self.now += 1;
        match self.table.get_mut(&key) {
            Some(o) => {
                o.used = self.now;
                Some(&o.clock)
            }
            None => self.retired.get(&key.0),
        }
    }

    /// The clock of `key` as it stands, without using it.
    pub fn get(&self, key: Key<C>) -> Option<&VectorClock> {
        match self.table.get(&key) {
            Some(o) => Some(&o.clock),
            None => self.retired.get(&key.0),
        }
    }

    /// Joins `clock` into `key`'s.
    pub fn release(&mut self, key: Key<C>, clock: &VectorClock) {
        self.now += 1;
        let retired = &self.retired;
        let o = self.table.entry(key).or_insert_with(|| Object {
            clock: retired.get(&key.0).cloned().unwrap_or_default(),
            used: 0,
        });
        o.clock.join(clock);
        o.used = self.now;
    }

    /// Every clock of process `pid`, the retired one included.
    pub fn of_process(&self, pid: u32) -> impl Iterator<Item = &VectorClock> {
        let own = self
            .table
            .iter()
            .filter(move |(k, _)| k.0 == pid)
            .map(|(_, o)| &o.clock);
        own.chain(self.retired.get(&pid))
    }

    /// Objects with a clock of their own.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Clock entries held.
    pub fn entries(&self) -> usize {
        let own: usize = self.table.values().map(|o| o.clock.len()).sum();
        own + self.retired.values().map(VectorClock::len).sum::<usize>()
    }

    /// Keeps the entries (process, goroutine, tick) `useful` accepts, drops the objects left
    /// with none (they stand for nothing more than an unknown object), and retires the older
    /// half of the table if it is past [`MAX_OBJECTS`].
    pub fn prune(&mut self, useful: impl Fn(u32, u64, Tick) -> bool) {
        self.table.retain(|&(pid, _, _), o| {
            o.clock.retain(|g, t| useful(pid, g, t));
            !o.clock.is_empty()
        });
        for (&pid, c) in self.retired.iter_mut() {
            c.retain(|g, t| useful(pid, g, t));
        }
        if self.table.len() <= MAX_OBJECTS {
            return;
        }
        let mut used: Vec<u64> = self.table.values().map(|o| o.used).collect();
        let keep = MAX_OBJECTS / 2;
        let cut = used.len() - keep;
        let (_, &mut oldest_kept, _) = used.select_nth_unstable(cut);
        let retired = &mut self.retired;
        self.table.retain(|&(pid, _, _), o| {
            let keep = o.used >= oldest_kept;
            if !keep {
                retired.entry(pid).or_default().join(&o.clock);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(g: u64, t: Tick) -> VectorClock {
        let mut c = VectorClock::default();
        c.observe(g, t);
        c
    }

    #[test]
    fn retired_objects_are_what_unknown_ones_stand_for() {
        let mut objects: Objects<()> = Objects::default();
        for addr in 0..=MAX_OBJECTS as u64 {
            objects.release((1, (), addr), &clock(addr + 10, 1));
        }
        objects.prune(|_, _, _| true);
        assert!(objects.len() <= MAX_OBJECTS / 2 + 1, "{}", objects.len());
        // The first object is retired: an acquire of it, or of one never seen, takes its
        // clock, and so does a new object; another process's objects are untouched.
        let first = objects.acquire((1, (), 0)).expect("retired").clone();
        assert_eq!(first.get(10), 1);
        assert_eq!(objects.get((1, (), u64::MAX)), Some(&first));
        objects.release((1, (), u64::MAX), &clock(5, 1));
        assert_eq!(objects.get((1, (), u64::MAX)).unwrap().get(10), 1);
        assert!(objects.get((2, (), 0)).is_none());
        // The most recently used stay as they were.
        let last = objects.get((1, (), MAX_OBJECTS as u64)).unwrap();
        assert_eq!(last.get(MAX_OBJECTS as u64 + 10), 1);
        assert_eq!(last.get(10), 0);
    }

    #[test]
    fn objects_without_useful_entries_go() {
        let mut objects: Objects<()> = Objects::default();
        objects.release((1, (), 1), &clock(7, 3));
        objects.release((1, (), 2), &clock(8, 3));
        objects.prune(|_, g, t| g == 7 && t >= 3);
        assert_eq!(objects.len(), 1);
        assert!(objects.get((1, (), 2)).is_none());
        assert_eq!(objects.get((1, (), 1)).unwrap().get(7), 3);
    }
}

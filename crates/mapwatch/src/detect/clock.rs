//! Vector clocks over goroutine ids.
//!
//! Sparse: a goroutine's clock holds entries only for the goroutines whose work it has
//! synchronised with, which in real programs is a few, not all of them.

use std::collections::HashMap;

/// Logical time of one goroutine.
pub type Tick = u32;

/// goroutine id -> the latest of its ticks known to happen before.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VectorClock(HashMap<u64, Tick, foldhash::fast::RandomState>);

impl VectorClock {
    /// The clock of a goroutine that has synchronised with nothing yet.
    pub fn start(goid: u64) -> VectorClock {
        let mut c = VectorClock::default();
        c.0.insert(goid, 1);
        c
    }

    /// The latest tick of `goid` this clock knows of (0: none).
    pub fn get(&self, goid: u64) -> Tick {
        self.0.get(&goid).copied().unwrap_or(0)
    }

    /// Advances `goid`'s own entry: what it does next is not covered by earlier releases.
    pub fn tick(&mut self, goid: u64) {
        let t = self.0.entry(goid).or_insert(0);
        *t = t.saturating_add(1);
    }

    /// Sets `goid`'s entry to `tick` if that is later than what is known.
    pub fn observe(&mut self, goid: u64, tick: Tick) {
        let t = self.0.entry(goid).or_insert(0);
        *t = (*t).max(tick);
    }

    /// Pointwise maximum: everything `other` knows happened before, this now knows too.
    pub fn join(&mut self, other: &VectorClock) {
        for (&g, &t) in &other.0 {
            self.observe(g, t);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Drops the entries of goroutines `forget` says can never be compared against again.
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        self.0.retain(|&g, _| keep(g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_takes_the_pointwise_maximum() {
        let mut a = VectorClock::start(1);
        a.tick(1);
        let mut b = VectorClock::start(2);
        b.observe(1, 1);
        b.join(&a);
        assert_eq!((b.get(1), b.get(2), b.get(3)), (2, 1, 0));
        a.retain(|g| g != 1);
        assert!(a.is_empty());
    }
}

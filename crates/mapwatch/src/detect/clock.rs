//! Vector clocks over goroutine ids.
//!
//! Sparse: a goroutine's clock holds entries only for the goroutines whose work it has
//! synchronised with, which in real programs is a few, not all of them.

/// Logical time of one goroutine.
pub type Tick = u32;

/// goroutine id -> the latest of its ticks known to happen before, sorted by goroutine id:
/// joins (the hot operation: every acquire and release) are one linear merge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VectorClock(Vec<(u64, Tick)>);

impl VectorClock {
    /// The clock of a goroutine that has synchronised with nothing yet.
    pub fn start(goid: u64) -> VectorClock {
        VectorClock(vec![(goid, 1)])
    }

    /// The latest tick of `goid` this clock knows of (0: none).
    pub fn get(&self, goid: u64) -> Tick {
        match self.0.binary_search_by_key(&goid, |&(g, _)| g) {
            Ok(i) => self.0[i].1,
            Err(_) => 0,
        }
    }

    /// Advances `goid`'s own entry: what it does next is not covered by earlier releases.
    pub fn tick(&mut self, goid: u64) {
        let next = self.get(goid).saturating_add(1);
        self.observe(goid, next);
    }

    /// Sets `goid`'s entry to `tick` if that is later than what is known.
    pub fn observe(&mut self, goid: u64, tick: Tick) {
        match self.0.binary_search_by_key(&goid, |&(g, _)| g) {
            Ok(i) => self.0[i].1 = self.0[i].1.max(tick),
            Err(i) => self.0.insert(i, (goid, tick)),
        }
    }

    /// Pointwise maximum: everything `other` knows happened before, this now knows too.
    pub fn join(&mut self, other: &VectorClock) {
        let (a, b) = (&self.0, &other.0);
        // Common case: nothing new (an acquire of a clock already known).
        let mut i = 0;
        let mut covered = true;
        for &(g, t) in b {
            while i < a.len() && a[i].0 < g {
                i += 1;
            }
            if i >= a.len() || a[i].0 != g || a[i].1 < t {
                covered = false;
                break;
            }
        }
        if covered {
            return;
        }
        let mut merged = Vec::with_capacity(a.len().max(b.len()) + 4);
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            let (x, y) = (a[i], b[j]);
            match x.0.cmp(&y.0) {
                std::cmp::Ordering::Less => {
                    merged.push(x);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(y);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    merged.push((x.0, x.1.max(y.1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        merged.extend_from_slice(&a[i..]);
        merged.extend_from_slice(&b[j..]);
        self.0 = merged;
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps only the entries (goroutine, tick) `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, Tick) -> bool) {
        self.0.retain(|&(g, t)| keep(g, t));
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
        b.observe(0, 5);
        assert_eq!(b.get(0), 5);
        let before = b.clone();
        b.join(&a);
        assert_eq!(b, before);
        a.retain(|g, _| g != 1);
        assert!(a.is_empty());
    }
}

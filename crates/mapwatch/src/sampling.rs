//! Which share of the time the map-access and synchronisation probes are attached: a fixed
//! duty cycle (`--duty-cycle`), or one that adapts each period to keep what the probes cost
//! the target within a share of its CPU time (`--overhead-budget`). The watch makes every
//! pause a barrier for the race detector, so sampling can miss races but never invent one.

use std::time::{Duration, Instant};

use crate::probe::HitCost;

/// The smallest share of a period an overhead budget leaves the probes on.
pub const MIN_DUTY: f64 = 0.005;

/// The share an overhead budget starts with: its first period measures the cost.
const FIRST_DUTY: f64 = 0.01;

/// How much a budget's duty may grow from one period to the next.
const MAX_GROWTH: f64 = 4.0;

/// What a budgeted watch reads at each period's start: totals since the watch began.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CostReading {
    /// Probe hits of the sampled programs on instructions the kernel emulates.
    pub emulated_hits: u64,
    /// ...and on instructions it single-steps.
    pub stepped_hits: u64,
    /// Time in those programs, ns.
    pub program_ns: u64,
    /// CPU time of mapwatch itself, ns (reading and analysing what the probes record).
    pub mapwatch_cpu_ns: u64,
    /// CPU time of the target, ns (probe hits included: they run in its threads).
    pub target_cpu_ns: u64,
}

/// Keeps the probes' cost within `share` of the target's own CPU time.
#[derive(Clone, Debug)]
pub struct Budget {
    /// The share, e.g. 0.02 for `--overhead-budget 2`.
    pub share: f64,
    /// The kernel's cost of one hit, measured at start.
    pub hit_cost: HitCost,
    last: CostReading,
}

impl Budget {
    /// A budget of `share` with hits costing `hit_cost` in the kernel, from `start` on.
    pub fn new(share: f64, hit_cost: HitCost, start: CostReading) -> Budget {
        Budget {
            share,
            hit_cost,
            last: start,
        }
    }

    /// The duty for the next period, from the period that just ended, during `on_share` of
    /// which the probes were on, and `now` read. Without hits the probes cost nothing: the
    /// duty grows.
    fn next_duty(&mut self, duty: f64, on_share: f64, now: CostReading) -> f64 {
        let last = std::mem::replace(&mut self.last, now);
        let emulated = now.emulated_hits.saturating_sub(last.emulated_hits) as f64;
        let stepped = now.stepped_hits.saturating_sub(last.stepped_hits) as f64;
        let hits = emulated + stepped;
        let in_kernel = emulated * self.hit_cost.emulated.as_nanos() as f64
            + stepped * self.hit_cost.stepped.as_nanos() as f64
            + now.program_ns.saturating_sub(last.program_ns) as f64;
        let cost = in_kernel + now.mapwatch_cpu_ns.saturating_sub(last.mapwatch_cpu_ns) as f64;
        let own_work = now.target_cpu_ns.saturating_sub(last.target_cpu_ns) as f64 - in_kernel;
        let grown = (duty * MAX_GROWTH).min(1.0);
        if hits == 0.0 || cost <= 0.0 {
            return grown;
        }
        if own_work <= 0.0 {
            return duty;
        }
        // What watching the whole period would have cost, as a share of the target's work.
        let full = cost / on_share.max(MIN_DUTY) / own_work;
        (self.share / full).clamp(MIN_DUTY, grown)
    }
}

/// The probes' schedule: on for the first `duty` of every `period`.
#[derive(Clone, Debug)]
pub struct Sampler {
    period: Duration,
    duty: f64,
    period_start: Instant,
    budget: Option<Budget>,
    started: Instant,
    on_since: Option<Instant>,
    on_total: Duration,
    /// `on_total` at the start of the current period.
    on_at_period_start: Duration,
}

impl Sampler {
    /// On `pct` percent of every `period`.
    pub fn fixed(pct: u8, period: Duration) -> Sampler {
        Sampler::new(f64::from(pct.min(100)) / 100.0, period, None)
    }

    /// On as much of every `period` as `budget` allows, starting with a small share.
    pub fn budgeted(budget: Budget, period: Duration) -> Sampler {
        Sampler::new(FIRST_DUTY, period, Some(budget))
    }

    fn new(duty: f64, period: Duration, budget: Option<Budget>) -> Sampler {
        let now = Instant::now();
        Sampler {
            period,
            duty,
            period_start: now,
            budget,
            started: now,
            on_since: Some(now),
            on_total: Duration::ZERO,
            on_at_period_start: Duration::ZERO,
        }
    }

    /// Time the probes were on so far.
    fn on_time(&self) -> Duration {
        self.on_total + self.on_since.map_or(Duration::ZERO, |s| s.elapsed())
    }

    /// Whether the probes should be on now. At a period's start a budget first sets the duty
    /// from what `read` returns.
    pub fn on_now<E>(&mut self, read: impl FnOnce() -> Result<CostReading, E>) -> Result<bool, E> {
        let elapsed = self.period_start.elapsed();
        if elapsed >= self.period {
            self.period_start += self.period * (elapsed.as_nanos() / self.period.as_nanos()) as u32;
            let on = self.on_time();
            let on_share = (on - self.on_at_period_start).as_secs_f64() / elapsed.as_secs_f64();
            self.on_at_period_start = on;
            if let Some(budget) = &mut self.budget {
                self.duty = budget.next_duty(self.duty, on_share, read()?);
            }
        }
        Ok(self.period_start.elapsed() < self.period.mul_f64(self.duty))
    }

    /// Records that the probes were switched on or off now.
    pub fn switched(&mut self, on: bool) {
        match (on, self.on_since) {
            (true, None) => self.on_since = Some(Instant::now()),
            (false, Some(since)) => {
                self.on_total += since.elapsed();
                self.on_since = None;
            }
            _ => {}
        }
    }

    /// The share of the watch so far that the probes were on.
    pub fn on_fraction(&self) -> f64 {
        let on = self.on_time();
        let all = self.started.elapsed().as_secs_f64();
        if all > 0.0 {
            (on.as_secs_f64() / all).min(1.0)
        } else {
            1.0
        }
    }

    /// The share of each period the probes are on now.
    pub fn duty(&self) -> f64 {
        self.duty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COST: HitCost = HitCost {
        emulated: Duration::from_nanos(1000),
        stepped: Duration::from_nanos(5000),
    };

    fn reading(
        hits: u64,
        program_ns: u64,
        mapwatch_cpu_ns: u64,
        target_cpu_ns: u64,
    ) -> CostReading {
        CostReading {
            emulated_hits: hits,
            stepped_hits: 0,
            program_ns,
            mapwatch_cpu_ns,
            target_cpu_ns,
        }
    }

    #[test]
    fn a_budget_scales_the_duty_to_the_measured_cost() {
        let mut b = Budget::new(0.02, COST, reading(0, 0, 0, 0));
        // Fully on for a second: 100k hits at 1 µs + 100 ms in programs + 100 ms in mapwatch
        // = 0.3 s of cost against 1.2 s - 0.2 s of the target's own work: 30 % when fully
        // on, so 2 % allows a fifteenth.
        let duty = b.next_duty(
            1.0,
            1.0,
            reading(100_000, 100_000_000, 100_000_000, 1_200_000_000),
        );
        assert!((duty - 0.02 / 0.3).abs() < 1e-9, "{duty}");
        // The same cost per hit while on a fifteenth of the time: the duty holds.
        let on = 0.02 / 0.3;
        let prev = reading(100_000, 100_000_000, 100_000_000, 1_200_000_000);
        let d = 1.0 / 15.0;
        let now = CostReading {
            emulated_hits: prev.emulated_hits + (100_000.0 * d) as u64,
            stepped_hits: 0,
            program_ns: prev.program_ns + (100_000_000.0 * d) as u64,
            mapwatch_cpu_ns: prev.mapwatch_cpu_ns + (100_000_000.0 * d) as u64,
            target_cpu_ns: prev.target_cpu_ns + 1_000_000_000 + (200_000_000.0 * d) as u64,
        };
        let held = b.next_duty(on, on, now);
        assert!((held - on).abs() < 1e-3, "{held} vs {on}");
        // Single-stepped hits weigh five times as much here.
        let mut b = Budget::new(0.02, COST, reading(0, 0, 0, 0));
        let stepped = CostReading {
            stepped_hits: 20_000,
            ..reading(0, 100_000_000, 100_000_000, 1_200_000_000)
        };
        let duty = b.next_duty(1.0, 1.0, stepped);
        assert!((duty - 0.02 / 0.3).abs() < 1e-9, "{duty}");
    }

    #[test]
    fn an_idle_target_grows_the_duty_up_to_fully_on() {
        let mut b = Budget::new(0.02, COST, reading(5, 0, 0, 0));
        assert_eq!(b.next_duty(0.1, 0.1, reading(5, 0, 0, 10)), 0.4);
        assert_eq!(b.next_duty(0.4, 0.4, reading(5, 0, 0, 20)), 1.0);
    }

    #[test]
    fn a_fixed_sampler_is_on_for_the_first_part_of_each_period() {
        let mut s = Sampler::fixed(50, Duration::from_millis(200));
        let never = || -> Result<CostReading, ()> { unreachable!("a fixed duty reads nothing") };
        assert_eq!(s.on_now(never), Ok(true));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(s.on_now(never), Ok(false));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(s.on_now(never), Ok(true));
        assert_eq!(s.duty(), 0.5);
    }
}

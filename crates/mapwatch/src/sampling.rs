//! Which share of the time the map-access and synchronisation probes are attached: a fixed
//! duty cycle (`--duty-cycle`), or one that adapts each period to keep what the probes cost
//! the target within a share of its CPU time (`--overhead-budget`). The watch makes every
//! pause a barrier for the race detector, so sampling can miss races but never invent one.

use std::time::{Duration, Instant};

use crate::probe::HitCost;

/// The share an overhead budget starts with: its first period measures the cost.
const FIRST_DUTY: f64 = 0.01;

/// How much a budget's on-time may grow from one period to the next.
const MAX_GROWTH: f64 = 4.0;

/// The longest period an overhead budget stretches to. Switching ~hundreds of probes on and
/// off takes tens of ms (the kernel rewrites the target's code and waits out RCU), time in
/// which they cost as if on: a small budget on a busy target needs periods that long.
const MAX_PERIOD: Duration = Duration::from_secs(60);

/// The least on-time per period a budget asks for.
const MIN_ON: Duration = Duration::from_millis(5);

/// One period of a schedule: on for `on`, then off until `period` has passed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Time on at the start of each period.
    pub on: Duration,
    /// The period.
    pub period: Duration,
}

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
    /// The period asked for (`--duty-period`); a budget stretches it when switching costs.
    base_period: Duration,
    last: CostReading,
}

impl Budget {
    /// A budget of `share` with hits costing `hit_cost` in the kernel, in periods of at
    /// least `period`, from `start` on.
    pub fn new(share: f64, hit_cost: HitCost, period: Duration, start: CostReading) -> Budget {
        Budget {
            share,
            hit_cost,
            base_period: period,
            last: start,
        }
    }

    /// The schedule for the next period. The last one lasted `elapsed`, asked for
    /// `asked.on` and had the probes on for `on` (more than asked: switching takes time), and
    /// `now` is read. Without hits the probes cost nothing: the on-time grows.
    fn next(
        &mut self,
        asked: Schedule,
        elapsed: Duration,
        on: Duration,
        now: CostReading,
    ) -> Schedule {
        let last = std::mem::replace(&mut self.last, now);
        let emulated = now.emulated_hits.saturating_sub(last.emulated_hits) as f64;
        let stepped = now.stepped_hits.saturating_sub(last.stepped_hits) as f64;
        let in_kernel = emulated * self.hit_cost.emulated.as_nanos() as f64
            + stepped * self.hit_cost.stepped.as_nanos() as f64
            + now.program_ns.saturating_sub(last.program_ns) as f64;
        let cost = in_kernel + now.mapwatch_cpu_ns.saturating_sub(last.mapwatch_cpu_ns) as f64;
        let own_work = now.target_cpu_ns.saturating_sub(last.target_cpu_ns) as f64 - in_kernel;
        let grown = Schedule {
            on: asked.on.mul_f64(MAX_GROWTH).min(self.base_period),
            period: self.base_period,
        };
        if emulated + stepped == 0.0 || cost <= 0.0 || on.is_zero() {
            return grown;
        }
        if own_work <= 0.0 {
            return asked;
        }
        // The share of the time the budget allows on: what watching all the time would cost,
        // as a share of the target's own work, against the budget.
        let full = (cost / on.as_secs_f64()) / (own_work / elapsed.as_secs_f64());
        let allowed = (self.share / full).min(1.0);
        // Switching costs `extra` per period whatever is asked: a period long enough that
        // it is at most half the allowance.
        let extra = on.saturating_sub(asked.on);
        let period = extra
            .div_f64(allowed / 2.0)
            .min(MAX_PERIOD)
            .max(self.base_period);
        let scale = period.as_secs_f64() / asked.period.as_secs_f64();
        let cap = asked.on.mul_f64(MAX_GROWTH * scale).max(MIN_ON);
        let on = period
            .mul_f64(allowed)
            .saturating_sub(extra)
            .clamp(MIN_ON, cap)
            .min(period);
        Schedule { on, period }
    }
}

/// The probes' schedule: on for the first part of every period.
#[derive(Clone, Debug)]
pub struct Sampler {
    schedule: Schedule,
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
        let on = period.mul_f64(f64::from(pct.min(100)) / 100.0);
        Sampler::new(Schedule { on, period }, None)
    }

    /// On as much of each period as `budget` allows, starting with a small share of `period`.
    pub fn budgeted(budget: Budget, period: Duration) -> Sampler {
        let on = period.mul_f64(FIRST_DUTY);
        Sampler::new(Schedule { on, period }, Some(budget))
    }

    fn new(schedule: Schedule, budget: Option<Budget>) -> Sampler {
        let now = Instant::now();
        Sampler {
            schedule,
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

    /// Whether the probes should be on now. When a period ends a budget first sets the next
    /// one from what `read` returns.
    pub fn on_now<E>(&mut self, read: impl FnOnce() -> Result<CostReading, E>) -> Result<bool, E> {
        let elapsed = self.period_start.elapsed();
        if elapsed >= self.schedule.period {
            let on = self.on_time();
            let on_in_period = on - self.on_at_period_start;
            self.on_at_period_start = on;
            self.period_start = Instant::now();
            if let Some(budget) = &mut self.budget {
                self.schedule = budget.next(self.schedule, elapsed, on_in_period, read()?);
            }
        }
        Ok(self.period_start.elapsed() < self.schedule.on)
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

    /// The share of each period the probes are asked to be on now.
    pub fn duty(&self) -> f64 {
        self.schedule.on.as_secs_f64() / self.schedule.period.as_secs_f64()
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

    const SECOND: Duration = Duration::from_secs(1);

    fn schedule(on_ms: u64, period: Duration) -> Schedule {
        Schedule {
            on: Duration::from_millis(on_ms),
            period,
        }
    }

    #[test]
    fn a_budget_scales_the_on_time_to_the_measured_cost() {
        let mut b = Budget::new(0.02, COST, SECOND, reading(0, 0, 0, 0));
        // On for a whole second as asked: 100k hits at 1 µs + 100 ms in programs + 100 ms in
        // mapwatch = 0.3 s of cost against 1.2 s - 0.2 s of the target's own work: 30 % when
        // on, so 2 % allows a fifteenth of each second.
        let now = reading(100_000, 100_000_000, 100_000_000, 1_200_000_000);
        let next = b.next(schedule(1000, SECOND), SECOND, SECOND, now);
        assert_eq!(next.period, SECOND);
        assert!(
            (next.on.as_secs_f64() - 0.02 / 0.3).abs() < 1e-6,
            "{next:?}"
        );
        // Single-stepped hits weigh five times as much here.
        let mut b = Budget::new(0.02, COST, SECOND, reading(0, 0, 0, 0));
        let stepped = CostReading {
            stepped_hits: 20_000,
            ..reading(0, 100_000_000, 100_000_000, 1_200_000_000)
        };
        let next = b.next(schedule(1000, SECOND), SECOND, SECOND, stepped);
        assert!(
            (next.on.as_secs_f64() - 0.02 / 0.3).abs() < 1e-6,
            "{next:?}"
        );
    }

    #[test]
    fn a_budget_stretches_the_period_when_switching_costs_more_than_it_allows() {
        let mut b = Budget::new(0.02, COST, SECOND, reading(0, 0, 0, 0));
        // Asked for 10 ms, on for 110 ms (100 ms of switching), at the cost rate above: 2 %
        // allows 6.7 % of the time, so 100 ms of switching needs periods of at least 3 s.
        let now = reading(11_000, 11_000_000, 11_000_000, 1_022_000_000);
        let next = b.next(
            schedule(10, SECOND),
            SECOND,
            Duration::from_millis(110),
            now,
        );
        let allowed = 0.02 / 0.3;
        assert!(
            (next.period.as_secs_f64() - 0.1 / (allowed / 2.0)).abs() < 1e-3,
            "{next:?}"
        );
        let share =
            (next.on + Duration::from_millis(100)).as_secs_f64() / next.period.as_secs_f64();
        assert!(share <= allowed + 1e-6, "{next:?}: on {share} of the time");
    }

    #[test]
    fn an_idle_target_grows_the_on_time_up_to_the_whole_period() {
        let mut b = Budget::new(0.02, COST, SECOND, reading(5, 0, 0, 0));
        let next = b.next(
            schedule(100, SECOND),
            SECOND,
            SECOND / 10,
            reading(5, 0, 0, 10),
        );
        assert_eq!(next, schedule(400, SECOND));
        let next = b.next(next, SECOND, SECOND / 2, reading(5, 0, 0, 20));
        assert_eq!(next, schedule(1000, SECOND));
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

//! The clocks mapwatch reads: the kernel's monotonic clock (`bpf_ktime_get_ns`, the time in
//! every event) and wall-clock time, to place events on the calendar.

fn read(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we own; both clocks always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// Now on the clock of event timestamps, ns.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC) as u64
}

/// Converts event times (monotonic) into wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    /// Realtime minus monotonic, ns.
    offset: i128,
}

impl WallClock {
    /// The conversion as of now (it drifts only if the wall clock is stepped).
    pub fn now() -> WallClock {
        WallClock {
            offset: read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC),
        }
    }

    /// The wall-clock time of a monotonic timestamp, ns since the Unix epoch.
    pub fn unix_ns(&self, monotonic_ns: u64) -> u64 {
        (monotonic_ns as i128 + self.offset).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_land_on_the_calendar() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let converted = WallClock::now().unix_ns(monotonic_ns());
        assert!(
            converted.abs_diff(now) < 1_000_000_000,
            "{converted} vs {now}"
        );
    }
}

//! SIGINT and SIGTERM: the handler only records the signal; watches and the daemon poll for it
//! (a `run` watch passes it on to its child, which then decides how to end).

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal that asked mapwatch to stop (0: none).
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to [`stop_requested`] and [`take`].
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Whether SIGINT or SIGTERM asked mapwatch to stop (once [`install`] ran). The request
/// stays: every watch of a daemon sees it, and the daemon too.
pub fn stop_requested() -> bool {
    SIGNALLED.load(Ordering::SeqCst) != 0
}

/// Takes the signal received since the last call, if any (to pass it on to a child).
pub fn take() -> Option<i32> {
    match SIGNALLED.swap(0, Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

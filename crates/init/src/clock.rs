//! The monotonic clock, in milliseconds since an arbitrary origin (boot).
//!
//! `CLOCK_MONOTONIC` does not jump with the wall clock and does not advance during suspend, so
//! a suspended machine never mistakes the pause for a hung svmgr.

use dynamod_sys::nix::time::{ClockId, clock_gettime};

/// Now, in milliseconds.
pub fn now_ms() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => {
            let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
            let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
            secs.saturating_mul(1000).saturating_add(nanos / 1_000_000)
        }
        // clock_gettime(CLOCK_MONOTONIC) cannot fail on Linux; 0 keeps every deadline due.
        Err(_) => 0,
    }
}

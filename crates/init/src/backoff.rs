//! When to restart the service manager, and when to give up and open the emergency shell.
//!
//! Both are pure: every method takes the current monotonic time in milliseconds, so the policy
//! is tested without sleeping. The delay grows only across crashes; a spawn never resets it,
//! only 60 s of healthy running does (upstream reset it at every spawn, so it never grew).

/// First restart delay.
pub const INITIAL_DELAY_MS: u64 = 500;
/// Largest restart delay.
pub const MAX_DELAY_MS: u64 = 30_000;
/// A run at least this long counts as healthy and resets the delay.
pub const HEALTHY_AFTER_MS: u64 = 60_000;
/// More than this many crashes …
pub const CRASH_LIMIT: usize = 5;
/// … within this window is a crash loop.
pub const CRASH_WINDOW_MS: u64 = 60_000;

/// Exponential restart delay: 500 ms, 1 s, 2 s, … 30 s, back to 500 ms after a healthy run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// A fresh backoff whose first delay is [`INITIAL_DELAY_MS`].
    pub fn new() -> Self {
        Self {
            next: INITIAL_DELAY_MS,
        }
    }

    /// The delay before restarting a process that ran from `started_at` until `now`, and
    /// the step for the next time. A spawn failure passes `started_at == now`.
    pub fn delay_after_exit(&mut self, started_at: u64, now: u64) -> u64 {
        if now.saturating_sub(started_at) >= HEALTHY_AFTER_MS {
            self.next = INITIAL_DELAY_MS;
        }
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(MAX_DELAY_MS);
        delay
    }

    /// Forgets the history (after the emergency shell: the operator fixed something).
    pub fn reset(&mut self) {
        self.next = INITIAL_DELAY_MS;
    }
}

/// Counts crashes in a sliding window without allocating: the last `CRASH_LIMIT + 1` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashWindow {
    times: [u64; CRASH_LIMIT + 1],
    recorded: usize,
    head: usize,
}

impl Default for CrashWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl CrashWindow {
    /// No crashes yet.
    pub fn new() -> Self {
        Self {
            times: [0; CRASH_LIMIT + 1],
            recorded: 0,
            head: 0,
        }
    }

    /// Records a crash at `now`; returns whether more than [`CRASH_LIMIT`] crashes happened
    /// within the last [`CRASH_WINDOW_MS`].
    pub fn record(&mut self, now: u64) -> bool {
        if let Some(slot) = self.times.get_mut(self.head) {
            *slot = now;
        }
        self.head = (self.head + 1) % self.times.len();
        self.recorded = (self.recorded + 1).min(self.times.len());
        // After the write, `head` points at the oldest of the last CRASH_LIMIT + 1 crashes.
        let oldest = self.times.get(self.head).copied().unwrap_or(0);
        self.recorded == self.times.len() && now.saturating_sub(oldest) < CRASH_WINDOW_MS
    }

    /// Crashes counted within the window ending at `now`.
    pub fn count(&self, now: u64) -> usize {
        // Until the ring wraps, the recorded times are its first `recorded` slots.
        self.times
            .iter()
            .take(self.recorded)
            .filter(|t| now.saturating_sub(**t) < CRASH_WINDOW_MS)
            .count()
    }

    /// Forgets every crash.
    pub fn clear(&mut self) {
        *self = Self::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_across_quick_crashes_up_to_the_cap() {
        let mut b = Backoff::new();
        let mut now = 0;
        let mut seen = Vec::new();
        for _ in 0..9 {
            let d = b.delay_after_exit(now, now + 100);
            seen.push(d);
            now += 100 + d;
        }
        assert_eq!(
            seen,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
    }

    #[test]
    fn spawn_failures_keep_growing_the_delay() {
        let mut b = Backoff::new();
        assert_eq!(b.delay_after_exit(10, 10), 500);
        assert_eq!(b.delay_after_exit(600, 600), 1000);
        assert_eq!(b.delay_after_exit(1700, 1700), 2000);
    }

    #[test]
    fn healthy_run_of_sixty_seconds_resets_the_delay() {
        let mut b = Backoff::new();
        b.delay_after_exit(0, 1);
        b.delay_after_exit(0, 1);
        assert_eq!(b.delay_after_exit(1_000, 1_000 + HEALTHY_AFTER_MS), 500);
        assert_eq!(b.delay_after_exit(0, 1), 1000);
    }

    #[test]
    fn run_just_short_of_healthy_keeps_growing() {
        let mut b = Backoff::new();
        b.delay_after_exit(0, 1);
        assert_eq!(b.delay_after_exit(0, HEALTHY_AFTER_MS - 1), 1000);
    }

    #[test]
    fn sixth_crash_within_a_minute_is_a_crash_loop() {
        let mut w = CrashWindow::new();
        for i in 0..5 {
            assert!(!w.record(i * 1000), "crash {i} must not trigger");
        }
        assert!(w.record(5000));
    }

    #[test]
    fn crashes_spread_over_more_than_a_minute_are_not_a_loop() {
        let mut w = CrashWindow::new();
        for i in 0..20 {
            assert!(!w.record(i * 12_001), "crash {i} must not trigger");
        }
    }

    #[test]
    fn old_crashes_slide_out_of_the_window() {
        let mut w = CrashWindow::new();
        for i in 0..5 {
            w.record(i);
        }
        // The sixth comes after the first has left the window.
        assert!(!w.record(CRASH_WINDOW_MS));
        for i in 1..5 {
            assert!(!w.record(CRASH_WINDOW_MS + i));
        }
        // Six crashes between 60 000 and 60 005 ms.
        assert!(w.record(CRASH_WINDOW_MS + 5));
        assert_eq!(w.count(CRASH_WINDOW_MS + 5), 6);
    }

    #[test]
    fn clearing_forgets_every_crash() {
        let mut w = CrashWindow::new();
        for i in 0..5 {
            w.record(i);
        }
        w.clear();
        assert!(!w.record(6));
        assert_eq!(w.count(6), 1);
    }
}

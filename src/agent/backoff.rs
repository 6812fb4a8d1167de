//! CrashLoopBackOff: the delay before restarting a container that exited, doubling from
//! 10 s up to 5 min like the kubelet, reset after the container ran cleanly for a while.
//!
//! Owns: the back-off arithmetic (pure; time is passed in). May call: nothing.

use std::time::{Duration, Instant};

/// Back-off of one container.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// Delay the next failure will impose.
    next: Duration,
    /// No restart before this instant.
    until: Option<Instant>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
            until: None,
        }
    }

    /// Records an exit at `now` of a container that had run for `ran`; returns the delay
    /// imposed before the next start.
    pub fn failed(&mut self, now: Instant, ran: Duration) -> Duration {
        // A container that ran longer than the cap was healthy: start over, like the
        // kubelet forgetting back-off entries.
        if ran >= self.max {
            self.next = self.initial;
        }
        let delay = self.next;
        self.until = Some(now + delay);
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// True while a restart must wait.
    pub fn blocked(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// When the current wait ends (if waiting).
    pub fn deadline(&self) -> Option<Instant> {
        self.until
    }

    /// Remaining wait, for status messages.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.until
            .map(|u| u.saturating_duration_since(now))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_ten_seconds_up_to_five_minutes() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let now = Instant::now();
        let delays: Vec<u64> = (0..7)
            .map(|_| b.failed(now, Duration::from_secs(1)).as_secs())
            .collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300]);
        assert!(b.blocked(now + Duration::from_secs(299)));
        assert!(!b.blocked(now + Duration::from_secs(300)));
    }

    #[test]
    fn a_long_clean_run_resets_the_back_off() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let now = Instant::now();
        b.failed(now, Duration::ZERO);
        b.failed(now, Duration::ZERO);
        assert_eq!(
            b.failed(now, Duration::from_secs(600)),
            Duration::from_secs(10)
        );
    }
}

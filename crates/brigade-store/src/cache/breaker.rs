//! The circuit breaker in front of Redis: a dead cache costs one timeout per interval, not one
//! per request.
//!
//! Without it every cache call waits the full `redis_timeout_ms` while Redis is down, which
//! multiplies every request's latency for the whole outage. After [`FAILURES`] failures in a
//! row the breaker opens: calls are skipped at once (a miss) for `open_for`; then one trial
//! call goes through, and its success closes the breaker, its failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row that open the breaker: one slow answer alone does not.
pub const FAILURES: u32 = 3;

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calls go through; `failures` failed in a row.
    Closed { failures: u32 },
    /// Calls are skipped until `until`.
    Open { until: Instant },
    /// One trial call is under way since `since`; the others are skipped. A trial whose
    /// caller gave up (its future dropped) is replaced after `open_for`.
    Trial { since: Instant },
}

/// A consecutive-failures breaker shared by every clone of a cache.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    open_for: Duration,
}

/// Leave to make one call; report how it went with [`Breaker::succeeded`] or
/// [`Breaker::failed`].
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    trial: bool,
}

impl Breaker {
    /// A closed breaker that stays open for `open_for` once it opens.
    pub fn new(open_for: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            open_for,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is one assignment: a poisoned lock still holds a consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `None` when the call must be skipped (the breaker is open, or a trial is under way).
    pub fn attempt(&self) -> Option<Attempt> {
        let mut state = self.lock();
        let now = Instant::now();
        match *state {
            State::Closed { .. } => Some(Attempt { trial: false }),
            State::Open { until } if now >= until => {
                *state = State::Trial { since: now };
                Some(Attempt { trial: true })
            }
            State::Trial { since } if now.duration_since(since) >= self.open_for => {
                *state = State::Trial { since: now };
                Some(Attempt { trial: true })
            }
            State::Open { .. } | State::Trial { .. } => None,
        }
    }

    /// The call worked: the breaker closes.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut state = self.lock();
        if attempt.trial || matches!(*state, State::Closed { .. }) {
            *state = State::Closed { failures: 0 };
        }
    }

    /// The call failed; returns true when this failure opened the breaker.
    pub fn failed(&self, attempt: Attempt) -> bool {
        let mut state = self.lock();
        let open = State::Open {
            until: Instant::now() + self.open_for,
        };
        match *state {
            State::Trial { .. } if attempt.trial => {
                *state = open;
                true
            }
            State::Closed { failures } if failures + 1 >= FAILURES => {
                *state = open;
                true
            }
            State::Closed { failures } => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            // Started before the breaker opened; it already knows.
            State::Open { .. } | State::Trial { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_a_row_and_lets_one_trial_through_later() {
        let breaker = Breaker::new(Duration::from_millis(50));
        for _ in 0..FAILURES - 1 {
            let attempt = breaker.attempt().unwrap();
            assert!(!breaker.failed(attempt));
        }
        let ok = breaker.attempt().unwrap();
        breaker.succeeded(ok);
        for _ in 0..FAILURES - 1 {
            let attempt = breaker.attempt().unwrap();
            breaker.failed(attempt);
        }
        let last = breaker.attempt().unwrap();
        assert!(breaker.failed(last), "the third failure in a row opens it");
        assert!(breaker.attempt().is_none(), "open: calls are skipped");
        std::thread::sleep(Duration::from_millis(60));
        let trial = breaker.attempt().expect("one trial after the interval");
        assert!(breaker.attempt().is_none(), "only one trial at a time");
        assert!(breaker.failed(trial), "a failed trial opens it again");
        std::thread::sleep(Duration::from_millis(60));
        let trial = breaker.attempt().unwrap();
        breaker.succeeded(trial);
        assert!(breaker.attempt().is_some());
    }
}

//! The circuit breaker in front of the payment provider.
//!
//! When the provider keeps failing, every order would otherwise wait for the full payment
//! timeout before failing. After `failures` consecutive failures the breaker opens and
//! answers at once for `open_for`; then it lets exactly one trial call through (half-open).
//! A successful trial closes it, a failed one opens it again. Declines are answers, not
//! failures: a card being refused says nothing about the provider's health.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// What the breaker does with the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused without reaching the provider.
    Open,
    /// The open period is over: the next call is a trial (only one at a time).
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed { consecutive_failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// A consecutive-failures circuit breaker, shared by all clones of [`crate::Payments`].
#[derive(Debug, Clone)]
pub struct Breaker {
    inner: Arc<Mutex<State>>,
    failures: u32,
    open_for: Duration,
}

impl Breaker {
    /// A closed breaker that opens after `failures` consecutive failures for `open_for`.
    /// `failures == 0` disables it (it never opens).
    pub fn new(failures: u32, open_for: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State::Closed {
                consecutive_failures: 0,
            })),
            failures,
            open_for,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (every update
        // is a single assignment), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state the next call would meet.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call. `None`: the breaker is open (or a trial is already running);
    /// do not call the provider. The permit must be settled with [`Permit::success`],
    /// [`Permit::failure`]; dropping it unsettled (the caller gave up) counts as neither.
    pub fn try_acquire(&self) -> Option<Permit> {
        let mut state = self.lock();
        let trial = match *state {
            State::Closed { .. } => false,
            State::Open { until } if Instant::now() < until => return None,
            State::Open { .. } => {
                *state = State::HalfOpen {
                    trial_in_flight: true,
                };
                true
            }
            State::HalfOpen {
                trial_in_flight: true,
            } => return None,
            State::HalfOpen {
                trial_in_flight: false,
            } => {
                *state = State::HalfOpen {
                    trial_in_flight: true,
                };
                true
            }
        };
        Some(Permit {
            breaker: self.clone(),
            trial,
            settled: false,
        })
    }

    fn settle(&self, trial: bool, ok: bool) {
        let mut state = self.lock();
        if ok {
            *state = State::Closed {
                consecutive_failures: 0,
            };
            return;
        }
        if self.failures == 0 {
            return;
        }
        let open = State::Open {
            until: Instant::now() + self.open_for,
        };
        match &mut *state {
            State::HalfOpen { .. } if trial => *state = open,
            State::Closed {
                consecutive_failures,
            } => {
                *consecutive_failures += 1;
                if *consecutive_failures >= self.failures {
                    *state = open;
                }
            }
            // A non-trial call that started while closed and finished after the breaker
            // opened: the breaker already knows the provider is failing.
            _ => {}
        }
    }

    fn abandon(&self, trial: bool) {
        if trial {
            let mut state = self.lock();
            if let State::HalfOpen { trial_in_flight } = &mut *state {
                *trial_in_flight = false;
            }
        }
    }
}

/// Leave to make one call; report how it went.
#[derive(Debug)]
pub struct Permit {
    breaker: Breaker,
    trial: bool,
    settled: bool,
}

impl Permit {
    /// The provider answered (approved, declined, captured, voided): the provider is healthy.
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.settle(self.trial, true);
    }

    /// The provider failed or did not answer in time.
    pub fn failure(mut self) {
        self.settled = true;
        self.breaker.settle(self.trial, false);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.abandon(self.trial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_a_trial_closes_it() {
        let breaker = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            breaker.try_acquire().unwrap().failure();
        }
        // A success resets the count.
        breaker.try_acquire().unwrap().success();
        for _ in 0..2 {
            breaker.try_acquire().unwrap().failure();
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.try_acquire().unwrap().failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(breaker.try_acquire().is_none());

        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let trial = breaker.try_acquire().expect("trial call");
        assert!(breaker.try_acquire().is_none(), "only one trial at a time");
        trial.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_again_and_an_abandoned_one_frees_the_slot() {
        let breaker = Breaker::new(1, Duration::from_secs(5));
        breaker.try_acquire().unwrap().failure();
        tokio::time::advance(Duration::from_secs(5)).await;
        breaker.try_acquire().unwrap().failure();
        assert_eq!(breaker.state(), BreakerState::Open);

        tokio::time::advance(Duration::from_secs(5)).await;
        drop(breaker.try_acquire().unwrap());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(
            breaker.try_acquire().is_some(),
            "abandoned trial frees the slot"
        );
    }

    #[tokio::test]
    async fn zero_failures_disables_the_breaker() {
        let breaker = Breaker::new(0, Duration::from_secs(5));
        for _ in 0..100 {
            breaker.try_acquire().unwrap().failure();
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}

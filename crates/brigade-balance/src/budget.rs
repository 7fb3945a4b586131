//! The retry budget: retries may add at most a fixed fraction of a pool's traffic, plus a small
//! floor per second, so that retries cannot turn a struggling pool into an outage.
//!
//! A token bucket (the design of linkerd2-proxy's and Finagle's retry budgets): every original
//! request deposits `budget_ratio` of a token, every retry withdraws a whole one, and the floor
//! trickles in `min_per_sec` tokens per second. The bucket holds at most ten seconds' worth of
//! floor plus ratio, so a long quiet spell cannot bank an unbounded burst of retries.

use std::sync::Mutex;
use std::time::Instant;

use crate::config::RetryConfig;

/// One pool's budget.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    floor_per_sec: f64,
    cap: f64,
    state: Mutex<(f64, Instant)>,
}

impl RetryBudget {
    /// A budget holding its floor to start with.
    pub fn new(config: &RetryConfig) -> Self {
        let cap = (config.min_per_sec * 10.0).max(1.0) + config.budget_ratio * 100.0;
        Self {
            ratio: config.budget_ratio,
            floor_per_sec: config.min_per_sec,
            cap,
            state: Mutex::new((config.min_per_sec.min(cap), Instant::now())),
        }
    }

    fn refill(&self, tokens: &mut f64, at: &mut Instant) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * self.floor_per_sec).min(self.cap);
        *at = now;
    }

    /// An original request passed: deposit its share.
    ///
    /// No refill here, so no clock read on every request: capped additions commute
    /// (`min(min(t + a, cap) + b, cap) = min(t + a + b, cap)` for `a, b ≥ 0`), so the floor
    /// accrued since the last refill may as well be added at the next withdrawal.
    pub fn deposit(&self) {
        if let Ok(mut state) = self.state.lock() {
            let (tokens, _) = &mut *state;
            *tokens = (*tokens + self.ratio).min(self.cap);
        }
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn withdraw(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let (tokens, at) = &mut *state;
        self.refill(tokens, at);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_by_ratio_and_floor() {
        let budget = RetryBudget::new(&RetryConfig {
            max_attempts: 3,
            budget_ratio: 0.2,
            min_per_sec: 0.0,
            ..RetryConfig::default()
        });
        let mut allowed = 0;
        for _ in 0..1000 {
            budget.deposit();
            if budget.withdraw() {
                allowed += 1;
            }
        }
        assert!((195..=205).contains(&allowed), "{allowed}");
    }
}

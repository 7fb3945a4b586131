//! A pool's selection snapshot: the backends a first attempt may go to, with their weights in an
//! alias table, built when membership or a backend's state changes and never per request.
//!
//! Picking from it costs the same with 3 backends or 3,000: P2C draws two candidates from the
//! alias table (Walker's method, O(1) per draw) and compares their live load; round robin with
//! equal weights steps a cursor. What makes a snapshot stale is either an event (health, draining,
//! ejection, weight, role or membership changed — the process-wide
//! [`state_version`](crate::backend::state_version) moved) or the clock (an ejection ends, or a
//! slow-start ramp moves on: weights in a ramp are re-read every [`SLOW_START_STEP_MS`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use rand::distr::Distribution;
use rand_distr::weighted::WeightedAliasIndex;

use crate::backend::Backend;
use crate::config::PoolConfig;
use crate::ring::Ring;

/// How often the weights of a backend in slow start are re-read into the snapshot.
pub const SLOW_START_STEP_MS: u64 = 100;

/// How many times P2C redraws its second choice when it equals the first, before it takes the
/// next candidate instead (only heavily skewed weights get there).
const REDRAWS: usize = 8;

/// The candidates of a first attempt, fixed until the snapshot is stale.
#[derive(Debug)]
pub struct Selection {
    /// The backend set the snapshot was built from.
    pub set: Arc<BackendSet>,
    version: u64,
    /// The first time (ms on the backend clock) a time-based state changes; `u64::MAX` if none.
    expires_ms: u64,
    candidates: Vec<Arc<Backend>>,
    /// Effective weights (weight × slow-start factor), by candidate.
    weights: Vec<f64>,
    /// `None` when every weight is the same: a uniform draw is then exact and cheaper.
    alias: Option<WeightedAliasIndex<f64>>,
}

impl Selection {
    /// The snapshot of `set` at `now`, for state version `version` (read before the backends'
    /// states, so a change during the build leaves the snapshot stale rather than wrong).
    ///
    /// Tiers: usable primaries; else usable backups; else, when fewer than `panic_threshold` of
    /// the primaries are usable, every non-draining primary (panic mode: health checks that
    /// fail everywhere must not empty the pool). Draining backends are never candidates.
    pub fn build(set: Arc<BackendSet>, version: u64, config: &PoolConfig, now: u64) -> Self {
        let tier = tier(&set.backends, config.panic_threshold, now);
        let candidates: Vec<Arc<Backend>> = set
            .backends
            .iter()
            .filter(|b| tier.admits(b, now))
            .cloned()
            .collect();
        let mut expires_ms = u64::MAX;
        for b in &set.backends {
            let ends = b.ejection_ends(now);
            if ends != 0 {
                expires_ms = expires_ms.min(ends);
            }
        }
        let weights: Vec<f64> = candidates
            .iter()
            .map(|b| {
                let ends = b.slow_start_ends(now, config.slow_start_ms);
                if ends != 0 {
                    expires_ms = expires_ms.min(ends).min(now + SLOW_START_STEP_MS);
                }
                f64::from(b.weight()) * b.slow_start_factor(now, config.slow_start_ms)
            })
            .collect();
        let uniform = weights
            .first()
            .is_none_or(|first| weights.iter().all(|w| (w - first).abs() < f64::EPSILON));
        let alias = if uniform {
            None
        } else {
            WeightedAliasIndex::new(weights.clone()).ok()
        };
        Self {
            set,
            version,
            expires_ms,
            candidates,
            weights,
            alias,
        }
    }

    /// Still true to the backends' states at `now`.
    pub fn is_current(&self, version: u64, now: u64) -> bool {
        self.version == version && now < self.expires_ms
    }

    /// The candidates, in configuration order.
    pub fn candidates(&self) -> &[Arc<Backend>] {
        &self.candidates
    }

    /// The effective weight of candidate `i`.
    pub fn weight(&self, i: usize) -> f64 {
        self.weights[i]
    }

    /// Whether all candidates weigh the same.
    pub fn is_uniform(&self) -> bool {
        self.alias.is_none()
    }

    /// A candidate index drawn in proportion to the weights.
    pub fn draw(&self, rng: &mut impl Rng) -> usize {
        match &self.alias {
            Some(alias) => alias.sample(rng),
            None => rng.random_range(0..self.candidates.len()),
        }
    }

    /// The next candidate in turn.
    pub fn turn(&self, cursor: &AtomicUsize) -> &Arc<Backend> {
        let turn = cursor.fetch_add(1, Ordering::Relaxed);
        &self.candidates[turn % self.candidates.len()]
    }

    /// Power of two choices: two weighted draws, the lower `cost / effective weight` wins.
    /// `None` when there is no candidate.
    pub fn p2c(&self, cost: impl Fn(&Backend) -> f64) -> Option<&Arc<Backend>> {
        match self.candidates.len() {
            0 => return None,
            1 => return self.candidates.first(),
            _ => {}
        }
        // The thread's small generator: a pick needs spread, not secrecy, and the reseeding
        // ChaCha behind `rand::rng()` costs more per draw on every request.
        let (a, b) = brigade_core::ids::with_rng(|rng| {
            let a = self.draw(rng);
            let b = (0..REDRAWS)
                .map(|_| self.draw(rng))
                .find(|&b| b != a)
                .unwrap_or((a + 1) % self.candidates.len());
            (a, b)
        });
        let score = |i: usize| cost(&self.candidates[i]) / self.weights[i].max(1e-9);
        Some(if score(a) <= score(b) {
            &self.candidates[a]
        } else {
            &self.candidates[b]
        })
    }
}

/// Which backends a first attempt may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Usable primaries.
    Primaries,
    /// Usable backups: no usable primary, or fewer than the panic threshold.
    Backups,
    /// Every non-draining primary, usable or not (panic mode).
    Panic,
    /// Nothing can be picked.
    Empty,
}

impl Tier {
    /// Whether `b` belongs to the tier at `now`.
    pub fn admits(self, b: &Backend, now: u64) -> bool {
        match self {
            Self::Primaries => !b.is_backup() && b.is_usable(now),
            Self::Backups => b.is_backup() && b.is_usable(now),
            Self::Panic => !b.is_backup() && !b.is_draining(),
            Self::Empty => false,
        }
    }
}

/// The tier of `backends` at `now` (one walk: only when a snapshot is built, or on a retry).
pub fn tier(backends: &[Arc<Backend>], panic_threshold: f64, now: u64) -> Tier {
    let mut primaries = 0usize;
    let mut usable_primaries = 0usize;
    let mut usable_backups = 0usize;
    for b in backends {
        let usable = b.is_usable(now);
        if b.is_backup() {
            usable_backups += usize::from(usable);
        } else if !b.is_draining() {
            primaries += 1;
            usable_primaries += usize::from(usable);
        }
    }
    let panic = primaries > 0 && (usable_primaries as f64) < panic_threshold * primaries as f64;
    if usable_primaries > 0 && !panic {
        Tier::Primaries
    } else if usable_backups > 0 {
        Tier::Backups
    } else if panic {
        Tier::Panic
    } else {
        Tier::Empty
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;

/// An immutable snapshot of a pool's backends.
#[derive(Debug, Default)]
pub struct BackendSet {
    /// The backends, in configuration order.
    pub backends: Vec<Arc<Backend>>,
    pub(crate) ring: Ring,
}

impl BackendSet {
    pub(crate) fn new(backends: Vec<Arc<Backend>>) -> Self {
        let ring = Ring::new(&backends);
        Self { backends, ring }
    }
}

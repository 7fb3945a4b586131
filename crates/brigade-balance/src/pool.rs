//! A pool: its backends (swapped atomically on change), its selection algorithm, tiers
//! (primaries, backups, panic mode), slow start, and its retry budget.
//!
//! The backend set is an immutable snapshot behind an `ArcSwap` (pingora's design): a request
//! loads it without a lock, and the admin API or a reload publishes a new snapshot. The
//! consistent-hash ring is built with the snapshot, never per request. A first attempt picks
//! from a [`Selection`] derived from it (candidates and alias table, rebuilt when a backend's
//! state changes), so it costs the same whatever the pool's size; retries, which must avoid the
//! backends already tried, and consistent hashing walk the set.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use rand::Rng;

use crate::api::PoolView;
use crate::backend::{Backend, bump_state_version, state_version};
use crate::budget::RetryBudget;
use crate::clock::{ms_at, uptime_ms};
use crate::config::{Algorithm, BackendConfig, PoolConfig, RetryConfig};
use crate::metrics::PoolMetrics;
use crate::ring::Ring;
use crate::select::{BackendSet, Selection, Tier, tier};

/// A named pool.
#[derive(Debug)]
pub struct Pool {
    /// Its configuration (the backend list in it is the one loaded from the file).
    pub config: PoolConfig,
    set: ArcSwap<BackendSet>,
    selection: ArcSwap<Selection>,
    edit: Mutex<()>,
    cursor: AtomicUsize,
    /// The retry budget.
    pub budget: RetryBudget,
    /// Cached metric handles.
    pub metrics: PoolMetrics,
    /// When the next active check round is due (ms on the backend clock).
    pub next_check_ms: AtomicU64,
}

/// Why selection found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoBackend;

impl Pool {
    /// A pool from its configuration, reusing `existing` backends with the same address so a
    /// reload keeps their health, counters and connections.
    pub fn new(config: PoolConfig, retry: &RetryConfig, existing: Option<&Pool>) -> Self {
        let old: Vec<Arc<Backend>> = existing.map(|p| p.backends()).unwrap_or_default();
        let backends = config
            .backends
            .iter()
            .map(|b| match old.iter().find(|o| o.address == b.address) {
                Some(kept) => {
                    kept.set_role(b.weight, b.backup);
                    Arc::clone(kept)
                }
                None => Arc::new(Backend::new(&config.name, b.address, b.weight, b.backup)),
            })
            .collect();
        let version = state_version();
        let set = Arc::new(BackendSet::new(backends));
        let selection = Selection::build(Arc::clone(&set), version, &config, uptime_ms());
        Self {
            metrics: PoolMetrics::new(&config.name),
            budget: RetryBudget::new(retry),
            set: ArcSwap::new(set),
            selection: ArcSwap::from_pointee(selection),
            edit: Mutex::new(()),
            cursor: AtomicUsize::new(0),
            next_check_ms: AtomicU64::new(0),
            config,
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The current backends.
    pub fn backends(&self) -> Vec<Arc<Backend>> {
        self.set.load().backends.clone()
    }

    /// How many backends the pool has now (primaries, backups and draining ones).
    pub fn backend_count(&self) -> usize {
        self.set.load().backends.len()
    }

    /// The backend with this address.
    pub fn backend(&self, address: &str) -> Option<Arc<Backend>> {
        self.set
            .load()
            .backends
            .iter()
            .find(|b| b.label == address)
            .cloned()
    }

    /// Adds a backend; `None` when one with that address exists.
    pub fn add(&self, backend: &BackendConfig) -> Option<Arc<Backend>> {
        let _guard = self.edit.lock().ok()?;
        let current = self.set.load();
        if current
            .backends
            .iter()
            .any(|b| b.address == backend.address)
        {
            return None;
        }
        let added = Arc::new(Backend::new(
            self.name(),
            backend.address,
            backend.weight,
            backend.backup,
        ));
        if !current.backends.is_empty() {
            let sum: f64 = current.backends.iter().map(|b| b.ewma_ns()).sum();
            // A little below the average, so the new backend is measured soon.
            added.seed_ewma(0.9 * sum / current.backends.len() as f64);
        }
        let mut backends = current.backends.clone();
        backends.push(Arc::clone(&added));
        self.set.store(Arc::new(BackendSet::new(backends)));
        bump_state_version();
        Some(added)
    }

    /// Removes a backend from selection; requests in flight keep it until they finish.
    pub fn remove(&self, address: &str) -> Option<Arc<Backend>> {
        let _guard = self.edit.lock().ok()?;
        let current = self.set.load();
        let removed = current
            .backends
            .iter()
            .find(|b| b.label == address)?
            .clone();
        let backends = current
            .backends
            .iter()
            .filter(|b| b.label != address)
            .cloned()
            .collect();
        self.set.store(Arc::new(BackendSet::new(backends)));
        bump_state_version();
        removed.idle.clear();
        Some(removed)
    }

    /// The admin API's view.
    pub fn view(&self) -> PoolView {
        PoolView {
            name: self.config.name.clone(),
            algorithm: self.config.algorithm,
            backends: self.set.load().backends.iter().map(|b| b.view()).collect(),
        }
    }

    /// Picks a backend for a request, avoiding `tried` (backend addresses in memory, from
    /// `Arc::as_ptr`) while any alternative exists.
    ///
    /// Tiers as in [`select::tier`](crate::select::tier); draining backends are never picked.
    /// A first attempt picks from the selection snapshot in constant time; a retry walks the
    /// set: when every backend of the tier is in `tried`, an untried usable backup is picked
    /// before any backend is tried twice.
    pub fn pick(&self, key: Option<&[u8]>, tried: &[usize]) -> Result<Arc<Backend>, NoBackend> {
        self.pick_at(key, tried, Instant::now())
    }

    /// [`Self::pick`] at `at`, a clock reading the caller has just taken: the fast core reads
    /// the clock once when a head arrives and uses that reading for the whole request's
    /// synchronous work, as nginx reads it once per turn of its event loop.
    pub fn pick_at(
        &self,
        key: Option<&[u8]>,
        tried: &[usize],
        at: Instant,
    ) -> Result<Arc<Backend>, NoBackend> {
        let hashed = self.config.algorithm == Algorithm::ConsistentHash && key.is_some();
        if !tried.is_empty() || hashed {
            return self.pick_walking(key, tried);
        }
        let now = ms_at(at);
        let version = state_version();
        let current = self.selection.load();
        if current.is_current(version, now) {
            return self.pick_from(&current, at);
        }
        drop(current);
        let fresh = Arc::new(Selection::build(
            self.set.load_full(),
            version,
            &self.config,
            now,
        ));
        self.selection.store(Arc::clone(&fresh));
        self.pick_from(&fresh, at)
    }

    fn pick_from(&self, selection: &Selection, at: Instant) -> Result<Arc<Backend>, NoBackend> {
        let chosen = match self.config.algorithm {
            Algorithm::RoundRobin if selection.is_uniform() => {
                (!selection.candidates().is_empty()).then(|| selection.turn(&self.cursor))
            }
            Algorithm::RoundRobin => (!selection.candidates().is_empty()).then(|| {
                &selection.candidates()[brigade_core::ids::with_rng(|rng| selection.draw(rng))]
            }),
            Algorithm::LeastRequests | Algorithm::ConsistentHash => {
                selection.p2c(|b| b.in_flight() as f64 + 1.0)
            }
            Algorithm::PeakEwma => {
                let now = crate::clock::since_epoch(at);
                selection.p2c(|b| b.peak_ewma_cost(now))
            }
        };
        chosen.cloned().ok_or(NoBackend)
    }

    /// The walking path: retries (which avoid `tried`) and consistent hashing.
    fn pick_walking(&self, key: Option<&[u8]>, tried: &[usize]) -> Result<Arc<Backend>, NoBackend> {
        let set = self.set.load();
        let now = uptime_ms();
        let backends = &set.backends;
        let tier = tier(backends, self.config.panic_threshold, now);
        if tier == Tier::Empty {
            return Err(NoBackend);
        }
        let untried = |b: &Arc<Backend>| !tried.contains(&(Arc::as_ptr(b) as usize));
        let mut candidates: Vec<&Arc<Backend>> = backends
            .iter()
            .filter(|b| tier.admits(b, now) && untried(b))
            .collect();
        if candidates.is_empty() && !tried.is_empty() {
            // Every backend of the tier already failed this request (health checks have not
            // noticed yet): usable backups take it now, as nginx's `backup` servers do under
            // `proxy_next_upstream`, instead of the client getting a 502.
            candidates = backends
                .iter()
                .filter(|b| b.is_backup() && b.is_usable(now) && untried(b))
                .collect();
        }
        if candidates.is_empty() {
            candidates = backends.iter().filter(|b| tier.admits(b, now)).collect();
        }
        if candidates.is_empty() {
            return Err(NoBackend);
        }
        let chosen = match self.config.algorithm {
            Algorithm::RoundRobin => self.round_robin(&candidates, now),
            Algorithm::LeastRequests => self.p2c(&candidates, now, |b| b.in_flight() as f64 + 1.0),
            Algorithm::PeakEwma => {
                let clock = crate::clock::now();
                self.p2c(&candidates, now, |b| b.peak_ewma_cost(clock))
            }
            Algorithm::ConsistentHash => match key {
                Some(key) => self.hashed(&set.ring, &candidates, key),
                None => self.p2c(&candidates, now, |b| b.in_flight() as f64 + 1.0),
            },
        };
        Ok(Arc::clone(chosen))
    }

    fn effective_weight(&self, b: &Backend, now: u64) -> f64 {
        f64::from(b.weight()) * b.slow_start_factor(now, self.config.slow_start_ms)
    }

    fn round_robin<'a>(&self, candidates: &[&'a Arc<Backend>], now: u64) -> &'a Arc<Backend> {
        let first = self.effective_weight(candidates[0], now);
        let uniform = candidates
            .iter()
            .all(|b| (self.effective_weight(b, now) - first).abs() < f64::EPSILON);
        if uniform {
            let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
            return candidates[turn % candidates.len()];
        }
        self.weighted_random(candidates, now, None)
    }

    /// A random candidate with probability proportional to its effective weight.
    fn weighted_random<'a>(
        &self,
        candidates: &[&'a Arc<Backend>],
        now: u64,
        except: Option<usize>,
    ) -> &'a Arc<Backend> {
        self.weighted_index(candidates, now, except)
            .map_or(candidates[0], |i| candidates[i])
    }

    fn weighted_index(
        &self,
        candidates: &[&Arc<Backend>],
        now: u64,
        except: Option<usize>,
    ) -> Option<usize> {
        let total: f64 = candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != except)
            .map(|(_, b)| self.effective_weight(b, now))
            .sum();
        if total <= 0.0 {
            return None;
        }
        let mut point = brigade_core::ids::with_rng(|rng| rng.random::<f64>()) * total;
        let mut last = None;
        for (i, b) in candidates.iter().enumerate() {
            if Some(i) == except {
                continue;
            }
            point -= self.effective_weight(b, now);
            last = Some(i);
            if point < 0.0 {
                return Some(i);
            }
        }
        last
    }

    /// Power of two choices: two weighted-random candidates, the one with the lower
    /// `cost / effective weight` wins.
    fn p2c<'a>(
        &self,
        candidates: &[&'a Arc<Backend>],
        now: u64,
        cost: impl Fn(&Backend) -> f64,
    ) -> &'a Arc<Backend> {
        if candidates.len() == 1 {
            return candidates[0];
        }
        let Some(a) = self.weighted_index(candidates, now, None) else {
            return candidates[0];
        };
        let Some(b) = self.weighted_index(candidates, now, Some(a)) else {
            return candidates[a];
        };
        let score =
            |i: usize| cost(candidates[i]) / self.effective_weight(candidates[i], now).max(1e-9);
        if score(a) <= score(b) {
            candidates[a]
        } else {
            candidates[b]
        }
    }

    /// Consistent hashing with bounded load: the first node clockwise from the key's hash
    /// that is a candidate and whose in-flight count stays within `bounded_load` × average.
    fn hashed<'a>(
        &self,
        ring: &Ring,
        candidates: &[&'a Arc<Backend>],
        key: &[u8],
    ) -> &'a Arc<Backend> {
        let allowed: HashSet<*const Backend> = candidates.iter().map(|b| Arc::as_ptr(b)).collect();
        let total: u64 = candidates.iter().map(|b| b.in_flight()).sum();
        let limit =
            ((total + 1) as f64 / candidates.len() as f64 * self.config.bounded_load).ceil() as u64;
        let mut first_allowed = None;
        for node in ring.walk(key) {
            let ptr = Arc::as_ptr(node);
            if !allowed.contains(&ptr) {
                continue;
            }
            let found = candidates.iter().find(|b| Arc::as_ptr(b) == ptr).copied();
            if let Some(found) = found {
                if first_allowed.is_none() {
                    first_allowed = Some(found);
                }
                if found.in_flight() < limit {
                    return found;
                }
            }
        }
        first_allowed.unwrap_or(candidates[0])
    }
}

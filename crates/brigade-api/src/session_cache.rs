//! The per-replica session cache: most authenticated requests find their session in memory
//! instead of reading the session row, while a revocation made through any replica still takes
//! effect on this one within `auth.session_cache.max_staleness_ms`.
//!
//! How the bound holds. The database keeps a *session epoch* that triggers move in the same
//! transaction as every revocation, role change or password change (migration 0008). A session
//! is served from memory only if an epoch read that *started* less than `max_staleness` ago
//! completed, and only if it was cached under the generation that read confirmed. When the
//! epoch has moved, the generation moves too, so everything cached before is ignored (and
//! dropped). A revocation committed at `T` is seen by every epoch read starting after `T`; so no
//! replica serves the revoked session from memory later than `T + max_staleness`.
//!
//! A session read from the database is cached under the generation confirmed *before* the read
//! began: if the epoch moves while the read is in flight, the entry is born stale and never
//! served. Without that, a read racing a revocation could put the old session back into a
//! freshly cleared cache, where it would stay until the next change.
//!
//! The epoch read is single-flight: however many requests arrive when the confirmation is due,
//! one of them reads the epoch and the others wait for its answer. When the epoch cannot be
//! read, requests read their session from the database as they would without the cache
//! (`result="unconfirmed"`): never a possibly-revoked session from memory.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brigade_core::config::SessionCacheSettings;
use brigade_store::{Accounts, SessionRecord, StoreResult};
use uuid::Uuid;

/// Authenticated requests by where their session came from: `hit` (memory, confirmed),
/// `miss` (database, confirmed, then cached) or `unconfirmed` (database, epoch unreadable).
pub const REQUESTS: &str = "brigade_session_cache_requests_total";
/// Every `result` label value of [`REQUESTS`].
pub const RESULTS: [&str; 3] = ["hit", "miss", "unconfirmed"];
/// Longest wait for the epoch (one row): every request due for a confirmation waits on it, so
/// a database that does not answer must cost them this, not a connection timeout, before
/// they go on to the database path of their own.
const EPOCH_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Reads of the session epoch (at most one per `max_staleness_ms` while requests arrive).
pub const EPOCH_CHECKS: &str = "brigade_session_cache_epoch_checks_total";

/// Registers the help texts and creates the counters at zero.
pub fn describe_metrics() {
    metrics::describe_counter!(
        REQUESTS,
        "Authenticated requests by where their session came from: hit (memory), miss \
         (database, then cached) or unconfirmed (database; the session epoch could not be read)."
    );
    metrics::describe_counter!(
        EPOCH_CHECKS,
        "Reads of the session epoch that confirm the cached sessions are still valid."
    );
    for result in RESULTS {
        metrics::counter!(REQUESTS, "result" => result).increment(0);
    }
    metrics::counter!(EPOCH_CHECKS).increment(0);
}

/// Sessions of this replica, or nothing when `auth.session_cache.enabled` is false.
pub struct SessionCache {
    inner: Option<Inner>,
}

struct Inner {
    sessions: moka::future::Cache<Uuid, Cached>,
    max_staleness: Duration,
    state: Mutex<Confirmation>,
    /// Held by the one request reading the epoch; the others wait on it.
    check: tokio::sync::Mutex<()>,
    /// Epoch reads so far (also counted in [`EPOCH_CHECKS`], which all caches of a process share).
    checks: AtomicU64,
}

/// A session and the generation it was read under.
#[derive(Clone)]
struct Cached {
    session: SessionRecord,
    generation: u64,
}

/// What the last epoch read found.
#[derive(Default)]
struct Confirmation {
    /// The epoch last read.
    epoch: Option<i64>,
    /// When the last successful epoch read started.
    confirmed_at: Option<Instant>,
    /// Moves whenever what is cached may be stale; entries of older generations are ignored.
    generation: u64,
    /// When the last epoch read failed (ended).
    failed_at: Option<Instant>,
}

/// Removes a cached session when the session itself ends, so an expired one neither serves nor
/// takes room.
struct UntilExpiry;

impl moka::Expiry<Uuid, Cached> for UntilExpiry {
    fn expire_after_create(&self, _: &Uuid, value: &Cached, _: Instant) -> Option<Duration> {
        Some(
            (value.session.expires_at - brigade_domain::now())
                .to_std()
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// Where a session look-up found its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSource {
    /// This replica's cache, confirmed fresh.
    Cache,
    /// The store (a miss, an unconfirmed cache, or no cache at all).
    Store,
}

impl SessionCache {
    /// A cache as configured.
    pub fn new(settings: &SessionCacheSettings) -> Self {
        let inner = settings.enabled.then(|| Inner {
            sessions: moka::future::Cache::builder()
                .max_capacity(settings.capacity)
                .expire_after(UntilExpiry)
                .build(),
            max_staleness: Duration::from_millis(settings.max_staleness_ms),
            state: Mutex::new(Confirmation::default()),
            check: tokio::sync::Mutex::new(()),
            checks: AtomicU64::new(0),
        });
        Self { inner }
    }

    /// The session `id` with its account as it is now, from memory when that is confirmed
    /// fresh, else from `store`. Revoked and expired sessions are returned as the store has
    /// them (the caller refuses them) and never cached.
    pub async fn session<S: Accounts + ?Sized>(
        &self,
        store: &S,
        id: Uuid,
    ) -> StoreResult<Option<SessionRecord>> {
        self.lookup(store, id).await.map(|(session, _)| session)
    }

    /// [`Self::session`], saying where the answer came from (a request's `authenticate`
    /// span shows it, so a trace tells a cached login from a database read).
    pub async fn lookup<S: Accounts + ?Sized>(
        &self,
        store: &S,
        id: Uuid,
    ) -> StoreResult<(Option<SessionRecord>, SessionSource)> {
        let Some(inner) = &self.inner else {
            return Ok((store.session(id).await?, SessionSource::Store));
        };
        let Some(generation) = inner.confirm(store).await else {
            metrics::counter!(REQUESTS, "result" => "unconfirmed").increment(1);
            return Ok((store.session(id).await?, SessionSource::Store));
        };
        if let Some(cached) = inner.sessions.get(&id).await
            && cached.generation == generation
            && cached.session.expires_at > brigade_domain::now()
        {
            metrics::counter!(REQUESTS, "result" => "hit").increment(1);
            return Ok((Some(cached.session), SessionSource::Cache));
        }
        metrics::counter!(REQUESTS, "result" => "miss").increment(1);
        let session = store.session(id).await?;
        if let Some(session) = &session
            && session.revoked_at.is_none()
            && session.expires_at > brigade_domain::now()
        {
            let session = session.clone();
            inner
                .sessions
                .insert(
                    id,
                    Cached {
                        session,
                        generation,
                    },
                )
                .await;
        }
        Ok((session, SessionSource::Store))
    }

    /// How many times this cache has read the session epoch.
    pub fn epoch_checks(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.checks.load(Ordering::Relaxed))
    }

    /// Forgets every cached session at once: this replica changed a session or an account
    /// (log-out, role change), so its own next request must not wait for the epoch to show it.
    pub fn invalidate_all(&self) {
        if let Some(inner) = &self.inner {
            inner.lock().generation += 1;
            inner.sessions.invalidate_all();
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Confirmation> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The generation confirmed less than `max_staleness` ago, if any.
    fn fresh(&self) -> Option<u64> {
        let state = self.lock();
        let confirmed_at = state.confirmed_at?;
        (confirmed_at.elapsed() < self.max_staleness).then_some(state.generation)
    }

    /// A generation confirmed fresh, reading the epoch if the last confirmation is too old;
    /// `None` when the epoch could not be read.
    async fn confirm<S: Accounts + ?Sized>(&self, store: &S) -> Option<u64> {
        if let Some(generation) = self.fresh() {
            return Some(generation);
        }
        let arrived = Instant::now();
        let _check = self.check.lock().await;
        // Whoever held the lock before may have confirmed, or failed, on our behalf.
        if let Some(generation) = self.fresh() {
            return Some(generation);
        }
        // A read that failed after we arrived answered for us too, and one that failed less
        // than `max_staleness` ago says the database is in trouble: go straight to the
        // database's own path (which fails fast with 503) instead of queueing another
        // read behind the lock, one connection timeout after another.
        if self
            .lock()
            .failed_at
            .is_some_and(|failed| failed >= arrived || failed.elapsed() < self.max_staleness)
        {
            return None;
        }
        let started = Instant::now();
        metrics::counter!(EPOCH_CHECKS).increment(1);
        self.checks.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(EPOCH_READ_TIMEOUT, store.session_epoch()).await {
            Ok(Ok(epoch)) => Some(self.confirmed(epoch, started)),
            outcome => {
                let error = match outcome {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {} ms", EPOCH_READ_TIMEOUT.as_millis()),
                };
                tracing::warn!(%error, "could not read the session epoch; reading sessions from the database");
                self.lock().failed_at = Some(Instant::now());
                None
            }
        }
    }

    /// Records an epoch read that started at `started`; moves the generation (and drops the
    /// cached sessions) when the epoch moved.
    fn confirmed(&self, epoch: i64, started: Instant) -> u64 {
        let mut state = self.lock();
        if state.epoch != Some(epoch) {
            if state.epoch.is_some() {
                self.sessions.invalidate_all();
            }
            state.generation += 1;
            state.epoch = Some(epoch);
        }
        state.confirmed_at = Some(started);
        state.generation
    }
}

#[cfg(test)]
#[path = "session_cache_tests.rs"]
mod tests;

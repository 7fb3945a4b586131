//! What every handler can reach.

use std::ops::Deref;
use std::sync::Arc;

use brigade_core::{HealthLatch, Settings};
use brigade_store::Store;
use brigade_store::cache::Cache;

/// Shared state of one `brigade serve` process. Holds no request data: any replica can serve
/// any request, which is what lets the balancer send a client anywhere.
///
/// One `Arc` around everything, because axum clones the state for every request: one atomic
/// increment instead of one per field.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

/// The fields of [`AppState`].
pub struct SharedState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The cache in front of it.
    pub cache: Arc<dyn Cache>,
    /// Settings loaded at start.
    pub settings: Settings,
    /// Readiness, flipped by shutdown.
    pub health: HealthLatch,
    /// Tokens, passwords, login limits.
    pub auth: crate::auth::Auth,
    /// Sessions this replica has read, confirmed against the session epoch before use.
    pub sessions: crate::session_cache::SessionCache,
    /// The payment provider behind its timeout and circuit breaker.
    pub payments: brigade_payments::Payments,
    /// Failures injected on purpose (alert drills).
    pub faults: crate::faults::Faults,
    /// Whether writes work (readiness shows it).
    pub write_health: crate::write_health::WriteHealth,
    /// The rate limit of browser error reports.
    pub report_limit: crate::report_limit::ReportLimiter,
}

impl AppState {
    /// Bundles the parts.
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        settings: Settings,
        auth: crate::auth::Auth,
        payments: brigade_payments::Payments,
    ) -> Self {
        let faults = crate::faults::Faults::new(settings.faults.error_ratio);
        let sessions = crate::session_cache::SessionCache::new(&settings.auth.session_cache);
        Self(Arc::new(SharedState {
            store,
            cache,
            settings,
            health: HealthLatch::new(),
            auth,
            sessions,
            payments,
            faults,
            write_health: crate::write_health::WriteHealth::default(),
            report_limit: crate::report_limit::ReportLimiter::default(),
        }))
    }
}

impl Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

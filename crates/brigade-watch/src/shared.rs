//! The state watch's loops and its HTTP API share, apart from both (`app` runs the loops,
//! `api` serves it).

use std::sync::{Mutex, MutexGuard};

use brigade_core::HealthLatch;
use tokio::sync::Notify;

use crate::config::WatchConfig;
use crate::db::Db;
use crate::notify::deliver::Deliverer;
use crate::notify::dispatch::Dispatcher;
use crate::rules::RuleGroup;
use crate::scrape::TargetHealth;
use crate::tsdb::Tsdb;

/// State shared by the loops and the API.
pub struct Shared {
    /// The configuration.
    pub config: WatchConfig,
    /// The samples.
    pub tsdb: Mutex<Tsdb>,
    /// The rules.
    pub groups: Mutex<Vec<RuleGroup>>,
    /// The notifier.
    pub dispatcher: Mutex<Dispatcher>,
    /// Targets and their health.
    pub targets: Mutex<Vec<TargetHealth>>,
    /// The database.
    pub db: Db,
    /// Sends notifications.
    pub deliverer: Deliverer,
    /// Readiness.
    pub health: HealthLatch,
    /// Wakes the notification loop after an evaluation.
    pub wake: Notify,
    /// The URL put into notifications.
    pub external_url: String,
    /// The HTTP client for scraping and discovery.
    pub http: reqwest::Client,
    /// Traces received over OTLP ([`crate::traces`]).
    pub traces: Mutex<crate::traces::TraceStore>,
    /// Exemplars scraped with the samples ([`crate::exemplars`]).
    pub exemplars: Mutex<crate::exemplars::ExemplarStore>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the state is still
/// consistent: every critical section leaves it so before anything can panic).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub use brigade_core::clock::now_ms;

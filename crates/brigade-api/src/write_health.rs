//! Whether this replica can write: learned from its own failed writes, confirmed by a probe.
//!
//! A ping shows that the database answers, not that it takes writes: a full or read-only disk
//! still answers `SELECT 1`. So every request that fails on a storage fault (see
//! [`StorageFault`]) is noted here, and from then on readiness says "not ready" with the
//! reason until a probe write succeeds. While everything works no probe runs at all, and a
//! busy database (lock waits, a full pool) is not a storage fault, so readiness cannot flap
//! under load; while writes fail, at most one probe runs per [`PROBE_EVERY`], whoever asks.

use std::sync::Mutex;
use std::time::Duration;

use axum::response::Response;
use brigade_store::{StorageFault, Store};
use tokio::time::Instant;

use crate::error::StorageFaultMet;

/// Shortest time between two probe writes while writes are failing.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Longest a probe write may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What readiness knows about writing.
#[derive(Debug, Default)]
pub struct WriteHealth {
    state: Mutex<Writes>,
}

#[derive(Debug, Default)]
enum Writes {
    /// No write has failed on storage since the last successful probe.
    #[default]
    Writable,
    /// Writes failed on `fault`; the last probe ran at `probed_at`.
    Failing {
        fault: StorageFault,
        probed_at: Option<Instant>,
    },
}

impl WriteHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, Writes> {
        // Every update is one assignment: a poisoned lock still holds a consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a write that failed on `fault`.
    pub fn failed(&self, fault: StorageFault) {
        let mut state = self.lock();
        if matches!(*state, Writes::Writable) {
            tracing::warn!(
                fault = fault.as_str(),
                "writes fail on storage; not ready until a write succeeds"
            );
        }
        let probed_at = match *state {
            Writes::Failing { probed_at, .. } => probed_at,
            Writes::Writable => None,
        };
        *state = Writes::Failing { fault, probed_at };
    }

    /// `None` when writes work, else the fault they fail on. While failing, runs a probe write
    /// when none ran for [`PROBE_EVERY`] and clears the fault when it succeeds.
    pub async fn check(&self, store: &dyn Store) -> Option<StorageFault> {
        let now = Instant::now();
        {
            let mut state = self.lock();
            match &mut *state {
                Writes::Writable => return None,
                Writes::Failing { fault, probed_at } => {
                    if probed_at.is_some_and(|at| now.duration_since(at) < PROBE_EVERY) {
                        return Some(*fault);
                    }
                    *probed_at = Some(now);
                }
            }
        }
        match tokio::time::timeout(PROBE_TIMEOUT, store.probe_write()).await {
            Ok(Ok(())) => {
                tracing::info!("a probe write succeeded; writes work again");
                *self.lock() = Writes::Writable;
                None
            }
            Ok(Err(error)) => {
                if let Some(fault) = error.storage_fault() {
                    self.failed(fault);
                }
                self.current()
            }
            Err(_) => self.current(),
        }
    }

    fn current(&self) -> Option<StorageFault> {
        match *self.lock() {
            Writes::Writable => None,
            Writes::Failing { fault, .. } => Some(fault),
        }
    }
}

/// Notes in `health` a response that failed on a storage fault. A step of
/// `per_request::steps`.
pub fn note(health: &WriteHealth, response: &Response) {
    if let Some(StorageFaultMet(fault)) = response.extensions().get::<StorageFaultMet>() {
        health.failed(*fault);
    }
}

//! What every handler can reach. Cheap to clone: everything is behind `Arc`.

use std::sync::Arc;

use brigade_core::{HealthLatch, Settings};
use brigade_store::Store;
use brigade_store::cache::Cache;

/// Shared state of one `brigade serve` process. Holds no request data: any replica can serve
/// any request, which is what lets the balancer send a client anywhere.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The cache in front of it.
    pub cache: Arc<dyn Cache>,
    /// Settings loaded at start.
    pub settings: Arc<Settings>,
    /// Readiness, flipped by shutdown.
    pub health: HealthLatch,
}

//! The admin API's contract: the bodies `/admin/*` answers and accepts, as types that the
//! balancer serialises and every client (`brigade up`'s supervisor, autoscaler, scheduler and
//! drills, `brigade watch`'s discovery) deserialises. They live beside the server that produces
//! them, so a renamed field is a compile error in every client instead of a value that quietly
//! reads as missing at run time.

use serde::{Deserialize, Serialize};

use crate::config::Algorithm;

/// `GET /admin/pools`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pools {
    /// Every pool, in configuration order.
    pub pools: Vec<PoolView>,
}

/// `GET /admin/pools/{pool}`, and one entry of [`Pools`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoolView {
    /// Name.
    pub name: String,
    /// Selection algorithm.
    pub algorithm: Algorithm,
    /// Backends, primaries and backups.
    pub backends: Vec<BackendView>,
}

impl PoolView {
    /// The backends that are not backups.
    pub fn primaries(&self) -> impl Iterator<Item = &BackendView> {
        self.backends.iter().filter(|b| !b.backup)
    }
}

/// Where a backend stands, most severe first: a draining backend takes no new requests
/// whatever its health; an unhealthy one fails active checks; an ejected one failed requests.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BackendState {
    /// Serving.
    Healthy,
    /// Failing its active health checks.
    Unhealthy,
    /// Passively ejected after failed requests, for a while.
    Ejected,
    /// Finishing its requests, taking no new ones.
    Draining,
}

impl BackendState {
    /// The word the API and the status table use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Ejected => "ejected",
            Self::Draining => "draining",
        }
    }
}

/// One backend: `GET /admin/pools/{pool}`'s entries and the answer to drain/undrain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackendView {
    /// `ip:port`.
    pub address: String,
    /// Configured weight.
    pub weight: u32,
    /// Whether it is a backup.
    pub backup: bool,
    /// Where it stands.
    pub state: BackendState,
    /// Passes active checks (or has none).
    pub healthy: bool,
    /// Takes no new requests.
    pub draining: bool,
    /// Passively ejected right now.
    pub ejected: bool,
    /// Requests being served.
    pub in_flight: u64,
    /// Peak-EWMA latency estimate in milliseconds.
    pub ewma_ms: f64,
    /// Attempts sent to it.
    pub requests_total: u64,
    /// Attempts that failed (connect error, timeout, 5xx, broken connection).
    pub failures_total: u64,
    /// Times it was ejected.
    pub ejections_total: u32,
}

impl BackendView {
    /// How a primary backend of weight 1 looks when it has just been added: healthy, no
    /// traffic yet.
    pub fn fresh(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            weight: 1,
            backup: false,
            state: BackendState::Healthy,
            healthy: true,
            draining: false,
            ejected: false,
            in_flight: 0,
            ewma_ms: 0.0,
            requests_total: 0,
            failures_total: 0,
            ejections_total: 0,
        }
    }
}

/// `POST /admin/pools/{pool}/backends`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NewBackend {
    /// `ip:port`.
    pub address: String,
    /// Weight, 1 to 1000.
    #[serde(default = "one")]
    pub weight: u32,
    /// A backup takes requests only when no primary can.
    #[serde(default)]
    pub backup: bool,
}

fn one() -> u32 {
    1
}

/// The answer to `POST /admin/reload` and `POST /admin/tls/reload`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reloaded {
    /// `reloaded`.
    pub status: String,
}

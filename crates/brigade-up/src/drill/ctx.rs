//! What a drill's fault phase works with and reports (`Ctx`, `Findings`), and waiting for
//! the system to be whole again: shared by the faults in `inject` and `processes`, apart from
//! both.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::client;
use super::report::{DatabaseCheck, Scaling};
use super::{Drill, DrillError};
use crate::api::{ChildStatus, Status};

/// Longest wait for the system to be whole again after a fault.
const RECOVERY_LIMIT: Duration = Duration::from_secs(120);
/// How often the drill looks while it waits.
pub(super) const POLL: Duration = Duration::from_millis(250);

/// What a drill needs to reach.
pub struct Ctx {
    /// The drill.
    pub drill: Drill,
    /// Client for everything but the load.
    pub http: reqwest::Client,
    /// The ops API of `brigade up`.
    pub ops: String,
    /// Its per-start token.
    pub ops_token: String,
    /// The public port (the balancer).
    pub public: crate::PublicEndpoint,
    /// The balancer's admin API.
    pub balancer_admin: String,
    /// Passwords of the demo accounts.
    pub passwords: client::DemoPasswords,
    /// How long the fault is held.
    pub hold: Duration,
    /// The usual number of clients.
    pub clients: usize,
    /// `brigade up`'s status when the drill started.
    pub status: Status,
    /// Requests each orders backend took during the phase before the fault. The victim is
    /// the busiest one: a replica the balancer is not sending to (one in slow start after a
    /// restart, or one Peak-EWMA ranks last) would make the fault invisible.
    pub before_traffic: BTreeMap<String, u64>,
}

impl Ctx {
    /// A token of the demo admin.
    pub async fn admin_token(&self) -> Result<String, DrillError> {
        client::log_in(
            &self.http,
            &self.public,
            "admin@brigade.demo",
            &self.passwords.of("admin@brigade.demo")?,
        )
        .await
    }

    /// The ready orders primary that took the most requests before the fault.
    pub(super) fn victim(&self) -> Result<ChildStatus, DrillError> {
        let traffic = |c: &ChildStatus| {
            let address = c.address.as_deref().unwrap_or_default();
            self.before_traffic.get(address).copied().unwrap_or(0)
        };
        self.status
            .replicas(Some("orders"))
            .filter(|c| c.is_ready_primary())
            .max_by_key(|c| traffic(c))
            .cloned()
            .ok_or_else(|| DrillError::Setup("no ready orders replica".into()))
    }
}

/// What the fault phase found out.
#[derive(Debug, Default)]
pub struct Findings {
    /// How long the fault was held.
    pub fault: Duration,
    /// Whether the system was whole again within the limit.
    pub recovered: bool,
    /// What "whole again" meant, for the claim's detail.
    pub recovery: String,
    /// slow-replica: the slowed replica's address.
    pub slowed: Option<String>,
    /// payment-outage: every orders replica's breaker closed again.
    pub breakers_closed: Option<bool>,
    /// db-outage's observations.
    pub database: Option<DatabaseCheck>,
    /// surge's observations (the end count is filled in later).
    pub scaling: Option<Scaling>,
    /// kill-balancer's and kill-watch's observations.
    pub process: Option<super::checks::ProcessCheck>,
}

/// Polls `check` until it holds (true) or [`RECOVERY_LIMIT`] passed (false).
pub(super) async fn wait_until(
    mut check: impl AsyncFnMut() -> Result<bool, DrillError>,
) -> Result<bool, DrillError> {
    let deadline = Instant::now() + RECOVERY_LIMIT;
    loop {
        if check().await? {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}

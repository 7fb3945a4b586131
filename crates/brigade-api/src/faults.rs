//! Injected failures: a share of API requests answered with 500 on purpose, so that alerts,
//! dashboards and runbooks can be drilled against a real replica.
//!
//! Set at start with `faults.error_ratio` (`BRIGADE_FAULTS__ERROR_RATIO`) and at run time by an
//! admin with `PUT /api/v1/admin/faults` (per replica: the switch lives in this process). Health,
//! metrics and the faults route itself are never affected, so a drill can always be stopped.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use brigade_core::Problem;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::caller::Admin;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::state::AppState;

/// The path of the switch, exempt from the faults it switches.
const FAULTS_PATH: &str = "/api/v1/admin/faults";

/// The fault switch of one process.
#[derive(Debug)]
pub struct Faults {
    /// The ratio's `f64` bits: one atomic, no lock on the request path.
    ratio_bits: AtomicU64,
    /// Requests seen while faults were on; spreads failures evenly instead of randomly, so a
    /// ratio of 0.5 fails exactly every second request.
    seen: AtomicU64,
}

impl Faults {
    /// A switch starting at `ratio` (0.0–1.0, validated by the settings).
    pub fn new(ratio: f64) -> Self {
        Self {
            ratio_bits: AtomicU64::new(ratio.clamp(0.0, 1.0).to_bits()),
            seen: AtomicU64::new(0),
        }
    }

    /// The current share of requests failed.
    pub fn ratio(&self) -> f64 {
        f64::from_bits(self.ratio_bits.load(Ordering::Relaxed))
    }

    fn set(&self, ratio: f64) {
        self.ratio_bits.store(ratio.to_bits(), Ordering::Relaxed);
    }

    /// Whether this request is one to fail.
    fn strike(&self) -> bool {
        let ratio = self.ratio();
        if ratio <= 0.0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * ratio).floor() > (n * ratio).floor()
    }
}

/// Middleware: answers a share of `/api/` requests with 500 while faults are on.
pub async fn inject(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/api/") && path != FAULTS_PATH && state.faults.strike() {
        tracing::error!(path, "injected fault: answering 500");
        return Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected-fault",
            "Injected fault",
        )
        .with_detail("this replica is failing requests on purpose (faults.error_ratio)")
        .into_response();
    }
    next.run(request).await
}

/// The fault switch's state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultSwitch {
    /// Share of `/api/` requests answered with 500, 0.0–1.0.
    pub error_ratio: f64,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_faults, set_faults))
}

/// The fault switch of the replica that answers.
///
/// Roles: admin.
#[utoipa::path(get, path = "/admin/faults", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, body = FaultSwitch),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_faults(State(state): State<AppState>, _admin: Admin) -> axum::Json<FaultSwitch> {
    axum::Json(FaultSwitch {
        error_ratio: state.faults.ratio(),
    })
}

/// Sets the fault switch of the replica that answers (drills: make it fail, then stop).
///
/// Roles: admin.
#[utoipa::path(put, path = "/admin/faults", tag = "operations", security(("bearer" = [])),
    request_body = FaultSwitch,
    responses(
        (status = 200, body = FaultSwitch),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn set_faults(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(switch): Json<FaultSwitch>,
) -> ApiResult<axum::Json<FaultSwitch>> {
    if !(0.0..=1.0).contains(&switch.error_ratio) {
        return Err(Problem::invalid_field("error_ratio", "must be between 0.0 and 1.0").into());
    }
    state.faults.set(switch.error_ratio);
    tracing::warn!(error_ratio = switch.error_ratio, actor = %admin.actor().0, "fault switch set");
    Ok(axum::Json(switch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_fails_that_share_evenly() {
        let faults = Faults::new(0.25);
        let struck = (0..100).filter(|_| faults.strike()).count();
        assert_eq!(struck, 25);
        let off = Faults::new(0.0);
        assert!((0..100).all(|_| !off.strike()));
        let all = Faults::new(1.0);
        assert!((0..100).all(|_| all.strike()));
    }
}

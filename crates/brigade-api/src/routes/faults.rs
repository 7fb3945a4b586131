//! The fault switch's routes: `GET`/`PUT /api/v1/admin/faults` (the switch itself is
//! [`crate::faults`]).

use axum::extract::State;
use brigade_core::Problem;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::caller::Admin;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::faults::{FaultState, FaultSwitch, MAX_LATENCY_MS};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_faults, set_faults))
}

/// The fault switch of the replica that answers.
///
/// Roles: admin.
#[utoipa::path(get, path = "/api/v1/admin/faults", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "The fault switch and the payment breaker", body = FaultState),
        (status = 403, description = "Admins only"),
    ))]
async fn get_faults(State(state): State<AppState>, _admin: Admin) -> axum::Json<FaultState> {
    axum::Json(current(&state))
}

/// Sets the fault switch of the replica that answers (drills: make it fail, then stop).
///
/// Roles: admin.
#[utoipa::path(put, path = "/api/v1/admin/faults", tag = "operations", security(("bearer" = [])),
    request_body = FaultSwitch,
    responses(
        (status = 200, description = "The fault switch and the payment breaker", body = FaultState),
        (status = 403, description = "Admins only"),
    ))]
async fn set_faults(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(switch): Json<FaultSwitch>,
) -> ApiResult<axum::Json<FaultState>> {
    for (field, ratio) in [
        ("error_ratio", switch.error_ratio),
        ("latency_ratio", switch.latency_ratio),
    ] {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(Problem::invalid_field(field, "must be between 0.0 and 1.0").into());
        }
    }
    if switch.latency_ms > MAX_LATENCY_MS {
        return Err(Problem::invalid_field(
            "latency_ms",
            format!("must be between 0 and {MAX_LATENCY_MS}"),
        )
        .into());
    }
    state.faults.set(&switch);
    state.payments.set_outage(switch.payments_outage);
    tracing::warn!(
        error_ratio = switch.error_ratio,
        latency_ms = switch.latency_ms,
        latency_ratio = switch.latency_ratio,
        payments_outage = switch.payments_outage,
        actor = %admin.actor().0,
        "fault switch set"
    );
    Ok(axum::Json(current(&state)))
}

/// The switch and the payment breaker as they are now.
fn current(state: &AppState) -> FaultState {
    let (latency_ms, latency_ratio) = state.faults.latency();
    FaultState {
        error_ratio: state.faults.ratio(),
        latency_ms,
        latency_ratio,
        payments_outage: state.payments.outage(),
        payments_breaker: match state.payments.breaker_state() {
            brigade_payments::BreakerState::Closed => "closed",
            brigade_payments::BreakerState::Open => "open",
            brigade_payments::BreakerState::HalfOpen => "half_open",
        }
        .to_owned(),
    }
}

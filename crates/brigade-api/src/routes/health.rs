//! `/health/live`, `/health/ready`, `/health/startup`: what orchestrators and balancers poll.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use brigade_core::health::Phase;
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Longest a readiness probe waits for the database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Body of every health endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    /// `live`, `ready`, `started`, `starting`, `draining` or `unavailable`.
    pub status: &'static str,
    /// Per-dependency results (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
}

/// Dependency checks of readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    /// The database: readiness fails when it is down.
    pub database: Check,
    /// Writing to the database: readiness fails while writes fail on its storage (a full or
    /// read-only disk), until a probe write succeeds.
    pub writes: WriteCheck,
    /// The cache: reported, but never fails readiness (brigade runs without it).
    pub cache: Check,
}

/// Whether this replica's writes work.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteCheck {
    /// `up` or `down`.
    pub status: &'static str,
    /// Why writes fail (`disk-full`, `read-only`, `io-error`); absent when they work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// One dependency check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `up` or `down`.
    pub status: &'static str,
    /// Which implementation (`sqlite`, `postgres`, `memory`, `redis`).
    pub kind: &'static str,
    /// How long the check took, milliseconds.
    pub latency_ms: f64,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(startup))
}

/// Liveness: the process runs and serves HTTP. Restart it when this fails.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "The process serves HTTP", body = HealthReport)))]
async fn live() -> Json<HealthReport> {
    Json(HealthReport {
        status: "live",
        checks: None,
    })
}

/// Startup: migrations applied and the server is accepting requests.
#[utoipa::path(get, path = "/health/startup", tag = "operations",
    responses(
        (status = 200, description = "Started", body = HealthReport),
        (status = 503, description = "Still starting", body = HealthReport),
    ))]
async fn startup(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.started() {
        (
            StatusCode::OK,
            Json(HealthReport {
                status: "started",
                checks: None,
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthReport {
                status: "starting",
                checks: None,
            }),
        )
    }
}

/// Readiness: send traffic here. Fails while starting, while draining, when the database
/// does not answer within a second, and while writes fail on the database's storage.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = HealthReport),
        (status = 503, description = "Starting, draining, or the database does not answer", body = HealthReport),
    ))]
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.phase() {
        Phase::Starting => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(HealthReport {
                    status: "starting",
                    checks: None,
                }),
            );
        }
        Phase::Draining => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(HealthReport {
                    status: "draining",
                    checks: None,
                }),
            );
        }
        Phase::Ready => {}
    }
    let started = Instant::now();
    let database_up = matches!(
        tokio::time::timeout(PROBE_TIMEOUT, state.store.ping()).await,
        Ok(Ok(()))
    );
    let database = Check {
        status: if database_up { "up" } else { "down" },
        kind: state.store.backend().as_str(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    let fault = state.write_health.check(state.store.as_ref()).await;
    let writes = WriteCheck {
        status: if fault.is_none() { "up" } else { "down" },
        reason: fault.map(brigade_store::StorageFault::as_str),
    };
    let started = Instant::now();
    let cache_up = state.cache.healthy().await;
    let cache = Check {
        status: if cache_up { "up" } else { "down" },
        kind: state.cache.kind(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    let (code, status) = if database_up && fault.is_none() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        code,
        Json(HealthReport {
            status,
            checks: Some(Checks {
                database,
                writes,
                cache,
            }),
        }),
    )
}

//! The supervisor's ops API (default 127.0.0.1:8081): what runs, where, in which state, and the
//! recent events. `brigade status` reads it; the ops dashboard will too.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::supervisor::Shared;

/// The answer of `GET /api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The public address (the balancer).
    pub public: Option<String>,
    /// The balancer's admin address.
    pub balancer_admin: Option<String>,
    /// The watch API address.
    pub watch: Option<String>,
    /// Every child.
    pub children: Vec<crate::supervisor::ChildStatus>,
    /// Recent events, oldest first.
    pub events: Vec<crate::Event>,
}

/// Binds the ops listener.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves the ops API (and the dashboard, whose log search reads `logs_dir`) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    logs_dir: std::path::PathBuf,
    shutdown: brigade_core::Shutdown,
) {
    let router = Router::new()
        .route("/api/status", get(status))
        .route("/metrics", get(metrics))
        .merge(crate::dashboard::Dashboard::supervised(shared.clone(), logs_dir).router())
        .merge(crate::db_link::router())
        .merge(crate::scheduler::router())
        .route("/api/pools/{pool}/rollout", post(rollout))
        .route("/api/pools/{pool}/scale", post(scale))
        .route(
            "/health/live",
            get(|| async { axum::Json(json!({"status": "live"})) }),
        )
        .with_state(shared);
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "ops API stopped");
    }
}

/// `GET /metrics`: the supervisor's metrics (crate::metrics) and its process metrics.
async fn metrics(State(shared): State<Shared>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&shared.status().children),
    )
}

async fn status(State(shared): State<Shared>) -> axum::Json<Status> {
    axum::Json(shared.status())
}

/// Body of `POST /api/pools/{pool}/rollout`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RolloutRequest {
    /// New replicas run this binary (an upgrade); absent: the current one (a restart).
    binary: Option<std::path::PathBuf>,
}

/// Body of `POST /api/pools/{pool}/scale`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleRequest {
    replicas: usize,
}

pub(crate) type Answer = (StatusCode, axum::Json<serde_json::Value>);

pub(crate) fn problem(status: StatusCode, detail: impl Into<String>) -> Answer {
    (
        status,
        axum::Json(
            json!({"type": "urn:brigade:problem:ops", "title": "Ops request refused",
                          "status": status.as_u16(), "detail": detail.into()}),
        ),
    )
}

/// Replaces the pool's replicas one at a time; answers when done.
async fn rollout(
    State(shared): State<Shared>,
    Path(pool): Path<String>,
    body: Option<axum::Json<RolloutRequest>>,
) -> Answer {
    let Some(commands) = shared.pool(&pool) else {
        return problem(
            StatusCode::NOT_FOUND,
            format!("no pool {pool:?}; pools: {:?}", shared.pool_names()),
        );
    };
    let request = body.map(|b| b.0).unwrap_or_default();
    if let Some(binary) = &request.binary
        && !binary.is_file()
    {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("binary: {} is not a file", binary.display()),
        );
    }
    let (done, result) = tokio::sync::oneshot::channel();
    if commands
        .send(crate::pool::PoolCommand::Rollout {
            binary: request.binary,
            done,
        })
        .await
        .is_err()
    {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the supervisor is stopping",
        );
    }
    match result.await {
        Ok(Ok(replaced)) => (
            StatusCode::OK,
            axum::Json(json!({"pool": pool, "replaced": replaced})),
        ),
        Ok(Err(reason)) => problem(StatusCode::INTERNAL_SERVER_ERROR, reason),
        Err(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the supervisor is stopping",
        ),
    }
}

/// Sets the pool's number of primary replicas.
async fn scale(
    State(shared): State<Shared>,
    Path(pool): Path<String>,
    axum::Json(request): axum::Json<ScaleRequest>,
) -> Answer {
    let Some(commands) = shared.pool(&pool) else {
        return problem(StatusCode::NOT_FOUND, format!("no pool {pool:?}"));
    };
    if !(1..=64).contains(&request.replicas) {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "replicas: must be between 1 and 64",
        );
    }
    let command = crate::pool::PoolCommand::Scale {
        replicas: request.replicas,
        reason: "requested through the ops API".into(),
    };
    if commands.send(command).await.is_err() {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the supervisor is stopping",
        );
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"pool": pool, "replicas": request.replicas})),
    )
}

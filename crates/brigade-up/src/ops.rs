//! The supervisor's ops API (default 127.0.0.1:8081): what runs, where, in which state, and the
//! recent events. `brigade status` reads it; the ops dashboard will too.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;

use crate::api::{RolloutAnswer, RolloutRequest, ScaleAnswer, ScaleRequest, Status};
use crate::shared::Shared;

mod db_link;

/// The ops listener (bound by [`crate::listeners::bind`]) for the runtime.
pub fn from_std(listener: std::net::TcpListener) -> std::io::Result<TcpListener> {
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Serves the ops API (and the dashboard, whose log search reads `logs_dir`) until `shutdown`.
///
/// Every state-changing request needs this start's token ([`crate::ops_guard`]), written
/// first to `ops-token` in the data directory (the parent of `logs_dir`) for the CLI.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    logs_dir: std::path::PathBuf,
    shutdown: brigade_core::Shutdown,
) {
    let token = crate::ops_guard::OpsToken::generate();
    let data_dir = logs_dir.parent().unwrap_or(&logs_dir).to_path_buf();
    let token_file = match token.write(&data_dir) {
        Ok(path) => std::path::absolute(&path).unwrap_or(path),
        Err(error) => {
            tracing::error!(%error, dir = %data_dir.display(), "cannot write the ops token; the CLI cannot change anything");
            crate::ops_guard::token_path(&data_dir)
        }
    };
    let router = Router::new()
        .route("/api/status", get(status))
        .route("/metrics", get(metrics))
        .route(
            "/api/ops-token-file",
            get(move || async move {
                axum::Json(crate::ops_guard::TokenFile {
                    path: token_file.clone(),
                })
            }),
        )
        .merge(
            crate::dashboard::Dashboard::supervised(shared.clone(), logs_dir, token.clone())
                .router(),
        )
        .merge(db_link::router())
        .merge(crate::scheduler::router())
        .merge(crate::backups::router())
        .merge(crate::errors::router())
        .route("/api/pools/{pool}/rollout", post(rollout))
        .route("/api/pools/{pool}/scale", post(scale))
        .route(
            "/health/live",
            get(|| async { axum::Json(json!({"status": "live"})) }),
        )
        .with_state(shared)
        .layer(axum::middleware::from_fn_with_state(
            token,
            crate::ops_guard::guard,
        ))
        .layer(axum::middleware::from_fn(
            brigade_core::security_headers::add,
        ));
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

/// An ops API answer: JSON, or problem+json ([`problem`]).
pub(crate) type Answer = axum::response::Response;

pub(crate) use crate::problem::problem;

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
        Ok(Ok(replaced)) => {
            (StatusCode::OK, axum::Json(RolloutAnswer { pool, replaced })).into_response()
        }
        Ok(Err(error)) => problem(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
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
        axum::Json(ScaleAnswer {
            pool,
            replicas: request.replicas,
        }),
    )
        .into_response()
}

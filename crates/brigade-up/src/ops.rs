//! The supervisor's ops API (default 127.0.0.1:8081): what runs, where, in which state, and the
//! recent events. `brigade status` reads it; the ops dashboard will too.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
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

/// Serves the ops API until `shutdown`.
pub async fn serve(listener: TcpListener, shared: Shared, shutdown: brigade_core::Shutdown) {
    let router = Router::new()
        .route("/api/status", get(status))
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

async fn status(State(shared): State<Shared>) -> axum::Json<Status> {
    axum::Json(shared.status())
}

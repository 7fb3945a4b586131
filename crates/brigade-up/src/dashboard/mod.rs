//! The ops dashboard: one static page and the same-origin API it polls.
//!
//! Under `brigade up` it is served on the supervisor's ops port (`/`); `brigade dashboard`
//! serves it alone against a balancer's admin API and a watch ([`Dashboard::standalone`]).
//! The page shows the topology (processes by pool with the balancer's view of each replica:
//! health, drain state, EWMA latency, in flight; drain/undrain buttons), charts of the last
//! 15 minutes from watch's range queries, firing and recently resolved alerts with silence
//! buttons, the supervisor's events, the last error log lines with links to the log search,
//! and rollout and scale buttons.
//!
//! Everything the browser needs comes from this one origin: the balancer's admin API and
//! watch's API are reached *through* this process ([`forward`]), so they stay on loopback and
//! the browser needs no cross-origin access. The page, its script, the stylesheet and the
//! vendored chart library are compiled into the binary ([`assets`]), so the dashboard works
//! offline.

mod assets;
mod forward;
mod logs_api;
mod logs_tail;
mod traces_api;

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::{delete, get, post};
use serde_json::json;
use tokio::net::TcpListener;

use crate::shared::Shared;

/// Where the dashboard's data comes from: a running supervisor (whose addresses change as it
/// restarts children) or fixed addresses given on the command line.
#[derive(Clone)]
enum Sources {
    /// Inside `brigade up`: addresses and events from the supervisor's shared state.
    Supervisor(Shared),
    /// `brigade dashboard`: a balancer's admin API and, optionally, a watch.
    Fixed {
        balancer_admin: String,
        watch: Option<String>,
    },
}

/// The dashboard's routes and what they read; cheap to clone (one per request).
#[derive(Clone)]
pub struct Dashboard {
    sources: Sources,
    /// The central logs' directory, when this process can read them.
    logs_dir: Option<PathBuf>,
    /// One connection pool for every pass-through call.
    http: reqwest::Client,
    /// This start's token, required on state-changing requests and handed to the page.
    token: crate::ops_guard::OpsToken,
    /// Permits of the live tails (`GET /api/logs/tail`), shared by every clone.
    followers: std::sync::Arc<tokio::sync::Semaphore>,
}

/// How long the balancer or watch may take before the dashboard reports it unreachable.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

impl Dashboard {
    /// A dashboard without a supervisor: topology from the balancer's admin API at
    /// `balancer_admin` (`host:port`), charts and alerts from the watch API at `watch`, log
    /// search over `logs_dir` (a `brigade up` data directory's `logs/`). Panels whose source
    /// is missing are hidden by the page.
    pub fn standalone(
        balancer_admin: String,
        watch: Option<String>,
        logs_dir: Option<PathBuf>,
    ) -> Self {
        Self::new(
            Sources::Fixed {
                balancer_admin,
                watch,
            },
            logs_dir,
            crate::ops_guard::OpsToken::generate(),
        )
    }

    /// The dashboard of a running supervisor, sharing the ops API's token.
    pub(crate) fn supervised(
        shared: Shared,
        logs_dir: PathBuf,
        token: crate::ops_guard::OpsToken,
    ) -> Self {
        Self::new(Sources::Supervisor(shared), Some(logs_dir), token)
    }

    fn new(sources: Sources, logs_dir: Option<PathBuf>, token: crate::ops_guard::OpsToken) -> Self {
        Self {
            sources,
            logs_dir,
            token,
            followers: logs_tail::followers(),
            http: reqwest::Client::builder()
                .timeout(UPSTREAM_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// The balancer's admin address, if known (a supervisor learns it once the balancer runs).
    fn balancer_admin(&self) -> Option<String> {
        match &self.sources {
            Sources::Supervisor(shared) => shared.status().balancer_admin,
            Sources::Fixed { balancer_admin, .. } => Some(balancer_admin.clone()),
        }
    }

    /// Watch's API address, if there is a watch.
    fn watch(&self) -> Option<String> {
        match &self.sources {
            Sources::Supervisor(shared) => shared.status().watch,
            Sources::Fixed { watch, .. } => watch.clone(),
        }
    }

    /// The dashboard's routes, for any router state (the ops router's or none).
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let token = self.token.clone();
        Router::new()
            .merge(assets::router())
            .route("/api/dashboard/config", get(config))
            .route("/api/dashboard/balancer", get(forward::balancer_pools))
            .route(
                "/api/dashboard/balancer/{pool}/{address}/{action}",
                post(forward::drain_or_undrain),
            )
            .route(
                "/api/dashboard/watch/query_range",
                get(forward::watch_query_range),
            )
            .route(
                "/api/dashboard/watch/query_exemplars",
                get(forward::watch_query_exemplars),
            )
            .route("/api/dashboard/watch/alerts", get(forward::watch_alerts))
            .route(
                "/api/dashboard/watch/alerts/history",
                get(forward::watch_history),
            )
            .route(
                "/api/dashboard/watch/silences",
                get(forward::watch_silences).post(forward::watch_silence),
            )
            .route(
                "/api/dashboard/watch/silences/{id}",
                delete(forward::watch_expire_silence),
            )
            .route("/api/logs", get(logs_api::logs))
            .route("/api/logs/tail", get(logs_tail::tail))
            .route("/api/traces", get(traces_api::search))
            .route("/api/traces/{trace_id}", get(traces_api::one))
            .with_state(self)
            .layer(axum::middleware::from_fn_with_state(
                token,
                crate::ops_guard::guard,
            ))
            .layer(axum::middleware::from_fn(
                brigade_core::security_headers::add,
            ))
    }
}

/// `GET /api/dashboard/config`: which panels the page can fill. Asked on every refresh, since
/// under a supervisor watch's address is known only once it runs.
async fn config(State(dashboard): State<Dashboard>) -> axum::Json<serde_json::Value> {
    let mode = match dashboard.sources {
        Sources::Supervisor(_) => "supervisor",
        Sources::Fixed { .. } => "standalone",
    };
    axum::Json(json!({
        "mode": mode,
        "balancer_admin": dashboard.balancer_admin(),
        "watch": dashboard.watch(),
        "logs": dashboard.logs_dir.is_some(),
        // Readable by this origin's pages only (no CORS; Host is checked against rebinding).
        "ops_token": dashboard.token.value(),
    }))
}

/// Serves a standalone dashboard (plus `/health/live`) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    dashboard: Dashboard,
    shutdown: brigade_core::Shutdown,
) -> std::io::Result<()> {
    let router = dashboard.router().route(
        "/health/live",
        get(|| async { axum::Json(json!({"status": "live"})) }),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::logs::LogSink;
    use crate::shared::Shared;

    /// The ops API of a supervisor (no children yet) with some central log lines: the
    /// dashboard's routes are on it, `GET /api/logs` searches the supervisor's logs.
    #[tokio::test]
    async fn the_ops_api_serves_the_dashboard_and_its_log_search() {
        let dir = tempfile::tempdir().unwrap();
        let logs_dir = crate::logs::dir(dir.path());
        let sink = LogSink::open(&logs_dir).unwrap();
        sink.write(
            "serve",
            "serve-orders-2",
            r#"{"timestamp":"2026-01-01T00:00:00Z","level":"ERROR","message":"payment provider timed out","request_id":"0192-abc"}"#,
        );
        sink.write(
            "balance",
            "balance",
            r#"{"level":"INFO","message":"listening"}"#,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = brigade_core::Shutdown::new();
        let task = tokio::spawn(crate::ops::serve(
            listener,
            Shared::default(),
            logs_dir,
            shutdown.clone(),
        ));
        let get = |path: &str| {
            let url = format!("{base}{path}");
            async move {
                let response = reqwest::get(url).await.unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };

        let (_, config) = get("/api/dashboard/config").await;
        assert_eq!(config["mode"], "supervisor");
        assert_eq!(config["logs"], true);
        assert_eq!(config["watch"], Value::Null, "watch has not started");
        let (status, body) = get("/api/logs?level=error").await;
        assert_eq!(status, 200);
        let lines = body["lines"].as_array().unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["request_id"], "0192-abc");
        assert_eq!(lines[0]["instance"], "serve-orders-2");
        let (_, body) = get("/api/logs?grep=0192-abc&service=balance").await;
        assert_eq!(body["lines"].as_array().unwrap().len(), 0);
        let (status, body) = get("/api/logs?limit=lots").await;
        assert_eq!(status, 422);
        assert_eq!(body["errors"][0]["field"], "limit");
        let (status, _) = get("/api/dashboard/watch/alerts").await;
        assert_eq!(status, 503, "no watch yet");
        let (status, _) = get("/api/dashboard/balancer").await;
        assert_eq!(status, 503, "no balancer yet");
        let (status, body) = get("/api/status").await;
        assert_eq!(status, 200);
        assert!(body["children"].as_array().unwrap().is_empty());

        // State changes need this start's token, which the CLI reads from the file the API
        // names (private to this user); cross-site requests are refused even with it.
        let scale = format!("{base}/api/pools/orders/scale");
        let client = reqwest::Client::new();
        let anonymous = client
            .post(&scale)
            .json(&serde_json::json!({"replicas": 2}));
        assert_eq!(anonymous.send().await.unwrap().status(), 403);
        let token = crate::ops_guard::discover(&client, base.trim_start_matches("http://"))
            .await
            .unwrap();
        assert_eq!(
            crate::ops_guard::read_token(dir.path()).unwrap(),
            token,
            "the token file is in the data directory"
        );
        let cross_site = client
            .post(&scale)
            .header(crate::ops_guard::TOKEN_HEADER, &token)
            .header("sec-fetch-site", "cross-site")
            .json(&serde_json::json!({"replicas": 2}));
        assert_eq!(cross_site.send().await.unwrap().status(), 403);
        let allowed = client
            .post(&scale)
            .header(crate::ops_guard::TOKEN_HEADER, &token)
            .json(&serde_json::json!({"replicas": 2}));
        assert_eq!(
            allowed.send().await.unwrap().status(),
            404,
            "past the guard: there is no pool yet"
        );

        shutdown.trigger();
        task.await.unwrap();
    }
}

//! Same-origin pass-through to the balancer's admin API and watch's API.
//!
//! Only the calls the page makes are forwarded (an allow-list of routes, not a proxy), with
//! the upstream's status, media type and body unchanged, so its problem+json reaches the page
//! as it was written. An unreachable upstream is a 502 problem naming it.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Dashboard;

/// Which upstream a call goes to, for error messages.
#[derive(Clone, Copy)]
enum Upstream {
    Balancer,
    Watch,
}

impl Upstream {
    fn name(self) -> &'static str {
        match self {
            Upstream::Balancer => "the balancer",
            Upstream::Watch => "watch",
        }
    }
}

/// `GET /api/dashboard/balancer`: the balancer's `GET /admin/pools`.
pub(super) async fn balancer_pools(State(dashboard): State<Dashboard>) -> Response {
    let Some(admin) = dashboard.balancer_admin() else {
        return missing(Upstream::Balancer);
    };
    let request = dashboard.http.get(format!("http://{admin}/admin/pools"));
    forward(Upstream::Balancer, request).await
}

/// `POST /api/dashboard/balancer/{pool}/{address}/drain|undrain`: the balancer's own call.
pub(super) async fn drain_or_undrain(
    State(dashboard): State<Dashboard>,
    Path((pool, address, action)): Path<(String, String, String)>,
) -> Response {
    if action != "drain" && action != "undrain" {
        return problem(
            StatusCode::NOT_FOUND,
            format!("unknown action {action:?}: drain or undrain"),
        );
    }
    let Some(admin) = dashboard.balancer_admin() else {
        return missing(Upstream::Balancer);
    };
    let request = dashboard.http.post(format!(
        "http://{admin}/admin/pools/{pool}/backends/{address}/{action}"
    ));
    forward(Upstream::Balancer, request).await
}

/// A GET of watch's `/api/v1/{path}` with the page's query string.
async fn watch_get(dashboard: &Dashboard, path: &str, query: Option<String>) -> Response {
    let Some(watch) = dashboard.watch() else {
        return missing(Upstream::Watch);
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let request = dashboard
        .http
        .get(format!("http://{watch}/api/v1/{path}{query}"));
    forward(Upstream::Watch, request).await
}

/// `GET /api/dashboard/watch/query_range?…`: watch's range query, for the charts.
pub(super) async fn watch_query_range(
    State(dashboard): State<Dashboard>,
    RawQuery(query): RawQuery,
) -> Response {
    watch_get(&dashboard, "query_range", query).await
}

/// `GET /api/dashboard/watch/query_exemplars?…`: the traces behind a chart's buckets.
pub(super) async fn watch_query_exemplars(
    State(dashboard): State<Dashboard>,
    RawQuery(query): RawQuery,
) -> Response {
    watch_get(&dashboard, "query_exemplars", query).await
}

/// `GET /api/dashboard/watch/alerts`: pending and firing alerts, with silenced state.
pub(super) async fn watch_alerts(State(dashboard): State<Dashboard>) -> Response {
    watch_get(&dashboard, "alerts", None).await
}

/// `GET /api/dashboard/watch/alerts/history?limit=`: state changes, newest first.
pub(super) async fn watch_history(
    State(dashboard): State<Dashboard>,
    RawQuery(query): RawQuery,
) -> Response {
    watch_get(&dashboard, "alerts/history", query).await
}

/// `GET /api/dashboard/watch/silences`.
pub(super) async fn watch_silences(State(dashboard): State<Dashboard>) -> Response {
    watch_get(&dashboard, "silences", None).await
}

/// `POST /api/dashboard/watch/silences`: the body goes to watch as it is (watch checks it).
pub(super) async fn watch_silence(
    State(dashboard): State<Dashboard>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(watch) = dashboard.watch() else {
        return missing(Upstream::Watch);
    };
    let media = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    let request = dashboard
        .http
        .post(format!("http://{watch}/api/v1/silences"))
        .header(header::CONTENT_TYPE, media)
        .body(body);
    forward(Upstream::Watch, request).await
}

/// `DELETE /api/dashboard/watch/silences/{id}`: ends a silence now.
pub(super) async fn watch_expire_silence(
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
) -> Response {
    let Some(watch) = dashboard.watch() else {
        return missing(Upstream::Watch);
    };
    let request = dashboard
        .http
        .delete(format!("http://{watch}/api/v1/silences/{id}"));
    forward(Upstream::Watch, request).await
}

/// Sends the request and answers with the upstream's status, media type and body.
async fn forward(upstream: Upstream, request: reqwest::RequestBuilder) -> Response {
    let name = upstream.name();
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let media = answer
                .headers()
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/json"));
            match answer.bytes().await {
                Ok(body) => (status, [(header::CONTENT_TYPE, media)], body).into_response(),
                Err(error) => problem(
                    StatusCode::BAD_GATEWAY,
                    format!("{name}'s answer broke off: {error}"),
                ),
            }
        }
        Err(error) => problem(
            StatusCode::BAD_GATEWAY,
            format!("{name} did not answer: {error}"),
        ),
    }
}

/// The upstream is not configured or not running (yet).
fn missing(upstream: Upstream) -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{} is not running here", upstream.name()),
    )
}

/// A problem+json answer of the dashboard itself.
pub(super) use crate::problem::problem;

//! The ops dashboard on the supervisor's ops port (`/`): every child of `brigade up` grouped by
//! pool with its state, address, pid and restarts, and the balancer's view of each replica
//! (health, drain state, EWMA latency, in flight) with drain/undrain buttons; the supervisor's
//! recent events; rollout and scale buttons. The page is static HTML plus one script that polls
//! `GET /api/status` and `GET /api/dashboard/balancer` — same origin: the balancer's admin API
//! is reached through this process, so the browser needs no cross-origin access. Everything is
//! compiled into the binary, so the dashboard works offline.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::supervisor::Shared;

/// The page, its script and the stylesheet shared with the replicas' pages.
const PAGE: &str = include_str!("../../../web/dashboard.html");
const SCRIPT: &str = include_str!("../../../web/dashboard.js");
const STYLE: &str = include_str!("../../../web/brigade.css");

/// Routes of the dashboard, merged into the ops router.
pub fn router() -> Router<Shared> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/assets/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/assets/brigade.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/dashboard/balancer", get(balancer_pools))
        .route(
            "/api/dashboard/balancer/{pool}/{address}/{action}",
            post(drain_or_undrain),
        )
}

/// How long the balancer's admin API may take before the dashboard reports it unreachable.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /api/dashboard/balancer`: the balancer's `GET /admin/pools`, passed through.
async fn balancer_pools(State(shared): State<Shared>) -> Response {
    let Some(admin) = shared.status().balancer_admin else {
        return unavailable("the balancer is not running");
    };
    forward(reqwest::Client::new().get(format!("http://{admin}/admin/pools"))).await
}

/// `POST /api/dashboard/balancer/{pool}/{address}/drain|undrain`: the balancer's own call.
async fn drain_or_undrain(
    State(shared): State<Shared>,
    Path((pool, address, action)): Path<(String, String, String)>,
) -> Response {
    if action != "drain" && action != "undrain" {
        return problem(
            StatusCode::NOT_FOUND,
            format!("unknown action {action:?}: drain or undrain"),
        );
    }
    let Some(admin) = shared.status().balancer_admin else {
        return unavailable("the balancer is not running");
    };
    forward(reqwest::Client::new().post(format!(
        "http://{admin}/admin/pools/{pool}/backends/{address}/{action}"
    )))
    .await
}

/// Sends the request and answers with the balancer's status, media type and body.
async fn forward(request: reqwest::RequestBuilder) -> Response {
    match request.timeout(ADMIN_TIMEOUT).send().await {
        Ok(answer) => {
            let status = answer.status();
            let media = answer
                .headers()
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/json"));
            match answer.bytes().await {
                Ok(body) => (status, [(header::CONTENT_TYPE, media)], body).into_response(),
                Err(error) => unavailable(format!("the balancer's answer broke off: {error}")),
            }
        }
        Err(error) => unavailable(format!("the balancer did not answer: {error}")),
    }
}

fn unavailable(detail: impl Into<String>) -> Response {
    problem(StatusCode::BAD_GATEWAY, detail)
}

fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        serde_json::json!({"type": "urn:brigade:problem:ops", "title": "Ops request failed",
                           "status": status.as_u16(), "detail": detail.into()})
        .to_string(),
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_loads_only_embedded_assets_and_labels_its_controls() {
        assert!(PAGE.starts_with("<!DOCTYPE html>"));
        assert!(PAGE.contains(r#"<html lang="en">"#));
        for src in PAGE
            .split("src=\"")
            .skip(1)
            .chain(PAGE.split("href=\"").skip(1))
        {
            let url = &src[..src.find('"').unwrap()];
            assert!(
                url.starts_with('/') || url.starts_with('#'),
                "only own assets: {url}"
            );
        }
        assert!(SCRIPT.contains("/api/status"));
        assert!(SCRIPT.contains("/rollout") && SCRIPT.contains("/scale"));
        assert!(SCRIPT.contains("/api/dashboard/balancer"));
    }
}

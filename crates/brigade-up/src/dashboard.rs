//! The ops dashboard on the supervisor's ops port (`/`): every child of `brigade up` grouped by
//! pool with its state, address, pid and restarts; the supervisor's recent events; rollout and
//! scale buttons. The page is static HTML plus one script that polls `GET /api/status` (same
//! origin, so no cross-origin access to the balancer or watch is needed); everything is
//! compiled into the binary, so the dashboard works offline.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

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
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
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
    }
}

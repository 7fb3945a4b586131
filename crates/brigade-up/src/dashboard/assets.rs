//! The dashboard's page, script and styles, compiled in: the page works without network
//! access and a running dashboard cannot be served a different script than it was built with.
//!
//! The chart library, uPlot (MIT), is vendored in `web/vendor/uplot/` with its licence, which
//! is served beside it.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page.
pub(super) const PAGE: &str = include_str!("../../../../web/dashboard.html");
/// Its script.
pub(super) const SCRIPT: &str = include_str!("../../../../web/dashboard.js");
/// The Errors section's script (error groups).
pub(super) const ERRORS_SCRIPT: &str = include_str!("../../../../web/errors.js");
/// The Traces view's script.
pub(super) const TRACES_SCRIPT: &str = include_str!("../../../../web/traces.js");
/// The stylesheet shared with the replicas' pages.
const STYLE: &str = include_str!("../../../../web/brigade.css");
/// uPlot's browser build (an immediately invoked function defining `window.uPlot`).
const UPLOT_JS: &str = include_str!("../../../../web/vendor/uplot/uPlot.iife.min.js");
/// uPlot's stylesheet.
const UPLOT_CSS: &str = include_str!("../../../../web/vendor/uplot/uPlot.min.css");
/// brigade's icon, shared with the replicas' pages; browsers ask for `/favicon.ico` by themselves.
const ICON: &str = include_str!("../../../../web/favicon.svg");
/// uPlot's licence, which its terms ask to ship with it.
const UPLOT_LICENSE: &str = include_str!("../../../../web/vendor/uplot/LICENSE");

/// `GET /` and `GET /assets/…`.
pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let route =
        |body: &'static str, media: &'static str| get(move || async move { asset(media, body) });
    Router::new()
        .route("/", route(PAGE, "text/html; charset=utf-8"))
        .route(
            "/assets/dashboard.js",
            route(SCRIPT, "text/javascript; charset=utf-8"),
        )
        .route(
            "/assets/errors.js",
            route(ERRORS_SCRIPT, "text/javascript; charset=utf-8"),
        )
        .route(
            "/assets/traces.js",
            route(TRACES_SCRIPT, "text/javascript; charset=utf-8"),
        )
        .route(
            "/assets/brigade.css",
            route(STYLE, "text/css; charset=utf-8"),
        )
        .route(
            "/assets/vendor/uplot/uPlot.iife.min.js",
            route(UPLOT_JS, "text/javascript; charset=utf-8"),
        )
        .route(
            "/assets/vendor/uplot/uPlot.min.css",
            route(UPLOT_CSS, "text/css; charset=utf-8"),
        )
        .route("/favicon.ico", route(ICON, "image/svg+xml"))
        .route("/assets/favicon.svg", route(ICON, "image/svg+xml"))
        .route(
            "/assets/vendor/uplot/LICENSE",
            route(UPLOT_LICENSE, "text/plain; charset=utf-8"),
        )
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
        for input in PAGE
            .split("<input")
            .skip(1)
            .chain(PAGE.split("<select").skip(1))
        {
            let id = input
                .split("id=\"")
                .nth(1)
                .map(|rest| &rest[..rest.find('"').unwrap()])
                .expect("every control has an id");
            assert!(
                PAGE.contains(&format!("for=\"{id}\"")),
                "control {id} has a label"
            );
        }
        assert!(SCRIPT.contains("/api/status"));
        assert!(SCRIPT.contains("/rollout") && SCRIPT.contains("/scale"));
        assert!(SCRIPT.contains("/api/dashboard/balancer"));
        assert!(SCRIPT.contains("/api/dashboard/watch/query_range"));
        assert!(SCRIPT.contains("/api/logs"));
        assert!(PAGE.contains("/assets/errors.js") && ERRORS_SCRIPT.contains("/api/errors"));
        assert!(TRACES_SCRIPT.contains("/api/traces"));
    }

    #[test]
    fn the_vendored_chart_library_ships_with_its_licence() {
        assert!(UPLOT_JS.contains("uPlot"));
        assert!(UPLOT_LICENSE.contains("MIT"));
        assert!(UPLOT_CSS.contains(".uplot"));
        assert!(ICON.starts_with("<svg") && PAGE.contains("/assets/favicon.svg"));
    }
}

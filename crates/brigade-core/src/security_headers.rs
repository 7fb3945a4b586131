//! The response headers that keep browsers from misusing brigade's answers: no framing
//! (clickjacking), no content sniffing, no referrer leaking ids in URLs, and a
//! Content-Security-Policy that allows only brigade's own scripts (no inline script, no
//! `eval`), so injected markup cannot run code with the token the pages keep.
//!
//! One middleware for every HTTP server brigade runs (the service with its pages, the ops API
//! and dashboard): it adds each header unless the handler already set it.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::header::{self, HeaderName, HeaderValue};

/// The policy of HTML pages: scripts, styles, images and API calls from this origin only.
pub const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// The policy of everything else (JSON, problem+json, scripts, metrics): nothing may load
/// from or frame it.
pub const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Middleware adding the security headers to every response.
pub async fn add(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    apply(&mut response);
    response
}

/// `Cross-Origin-Opener-Policy`, which `http` has no constant for (a static, so its name is
/// checked once at compile time rather than on every response).
static CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");

/// Adds the security headers to `response` (those the handler did not set).
pub fn apply(response: &mut Response) {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    let policy = if is_html { PAGE_POLICY } else { API_POLICY };
    let headers = response.headers_mut();
    let fixed: [(&HeaderName, &'static str); 5] = [
        (&header::CONTENT_SECURITY_POLICY, policy),
        (&header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (&header::X_FRAME_OPTIONS, "DENY"),
        (&header::REFERRER_POLICY, "no-referrer"),
        (&CROSS_ORIGIN_OPENER_POLICY, "same-origin"),
    ];
    for (name, value) in fixed {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
}

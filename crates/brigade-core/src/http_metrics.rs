//! RED metrics for HTTP servers, named by the OpenTelemetry HTTP semantic conventions.
//!
//! `http_server_request_duration_seconds{http_request_method, http_route,
//! http_response_status_code}` (a histogram, so rate, errors and duration all come from it) and
//! `http_server_active_requests{http_request_method}`. The route label is the matched template
//! (`/api/v1/orders/{order_id}`), never the raw path, so ids cannot explode the series count.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;

/// Histogram of request durations.
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// Gauge of requests being served.
pub const ACTIVE_REQUESTS: &str = "http_server_active_requests";

/// Registers help texts; call once at start so `/metrics` passes `promtool check metrics`.
pub fn describe() {
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Duration of HTTP server requests."
    );
    metrics::describe_gauge!(
        ACTIVE_REQUESTS,
        "Number of HTTP server requests currently being served."
    );
}

/// Axum middleware recording the RED metrics of every request.
pub async fn record(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let active = metrics::gauge!(ACTIVE_REQUESTS, "http_request_method" => method);
    active.increment(1.0);
    // Decrement even when the client goes away and this future is dropped mid-request.
    let _guard = DecrementOnDrop(active);
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(
        REQUEST_DURATION,
        "http_request_method" => method,
        "http_route" => route,
        "http_response_status_code" => response.status().as_str().to_owned(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

struct DecrementOnDrop(metrics::Gauge);

impl Drop for DecrementOnDrop {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Known methods as themselves, anything else as `_OTHER` (bounded label values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

//! Request identity: `X-Request-Id` and W3C `traceparent`, carried through logs and errors.
//!
//! The middleware here runs first on every request. It accepts a caller's request id and trace
//! context (the balancer sets both) or makes new ones, makes the context available to the code
//! below it (log lines take `request_id`, `trace_id` and `span_id` from it, or from the
//! `request` span a traced request gets; error bodies take the request id), echoes both headers on the response, records the
//! RED metrics and writes one access log line when the response is ready.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use opentelemetry_sdk::trace::IdGenerator as _;
use tracing::Instrument;

use crate::ids::hex;
use crate::request_context::CURRENT;
pub use crate::request_context::{
    RequestContext, TRACEPARENT, TRACESTATE, X_REQUEST_ID, current, current_sampled, flags_sampled,
    is_untraced_request_span, parse_traceparent,
};

impl RequestContext {
    /// Reads the context from request headers, inventing what is missing or malformed.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let request_id = headers
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|id| is_sane_request_id(id))
            .map(str::to_owned)
            .unwrap_or_else(crate::ids::request_id_string);
        let parent = headers
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let (trace_id, parent_span_id, mut flags) = match parent {
            Some((trace_id, parent_span_id, flags)) => (trace_id, Some(parent_span_id), flags),
            None => (
                // All 128 bits random (a UUID v4 fixes six of them, in the low half a ratio
                // sampler reads, which then never samples).
                hex(&IDS.new_trace_id().to_bytes()),
                None,
                "01".to_owned(),
            ),
        };
        if crate::traces::exporting() {
            // Decided here, once, by the process's sampler (see `traces::sampled`).
            let parent_sampled = parent_span_id.as_ref().map(|_| flags_sampled(&flags));
            let sampled = crate::traces::sampled(&trace_id, parent_sampled);
            flags = if sampled { "01" } else { "00" }.to_owned();
        }
        let tracestate = parent_span_id.as_ref().and_then(|_| {
            let value = headers.get(&TRACESTATE)?.to_str().ok()?.trim();
            (!value.is_empty() && value.len() <= 512).then(|| value.to_owned())
        });
        Self {
            request_id,
            trace_id,
            span_id: hex(&IDS.new_span_id().to_bytes()),
            flags,
            parent_span_id,
            tracestate,
        }
    }
}

/// Random trace and span ids (OpenTelemetry's generator: a fast thread-local RNG).
static IDS: std::sync::LazyLock<opentelemetry_sdk::trace::RandomIdGenerator> =
    std::sync::LazyLock::new(Default::default);

/// Axum middleware, one per request for everything observability needs: the request context
/// and span, the response headers, the RED metrics and the access log. One middleware rather
/// than three because they all key on the same route and status, and every `from_fn` layer
/// costs a boxed future per request.
pub async fn observe(request: Request, next: Next) -> Response {
    let context = RequestContext::from_headers(request.headers());
    let method = request.method().clone();
    let in_flight = crate::http_metrics::InFlight::start(&method);
    let route = request.extensions().get::<MatchedPath>().cloned();
    let uri = request.uri().clone();
    let route_name = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let server_span = crate::traces::ServerSpan::start(&context, &method, route_name, uri.path());
    let span = log_span(&context);
    let started = Instant::now();
    let request_id = HeaderValue::from_str(&context.request_id).ok();
    let traceparent = HeaderValue::from_str(&context.traceparent()).ok();
    // An exemplar names a trace that can be opened: one whose server span is exported.
    let exemplar_trace = server_span.as_ref().map(|_| context.trace_id.clone());
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    // The access log line is written inside the context's scope: an untraced request has no
    // span, and the log layer reads its ids from the context.
    let mut response = CURRENT
        .scope(context, async {
            let inner = next.run(request).instrument(span.clone());
            let mut response = match &server_span {
                Some(traced) => traced.run(inner).await,
                None => inner.await,
            };
            in_flight.finish(route, response.status(), exemplar_trace.as_deref());
            let status = response.status().as_u16();
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            if let Some(traced) = server_span {
                traced.end(status);
            }
            let cause = response
                .extensions_mut()
                .remove::<crate::error_event::ServerError>();
            let path = uri.path();
            span.in_scope(|| {
                if let Some(cause) = cause {
                    cause.event(route).log();
                }
                if status >= 500 {
                    tracing::warn!(%method, route, path, status, elapsed_ms, "request failed");
                } else {
                    tracing::info!(%method, route, path, status, elapsed_ms, "request completed");
                }
            });
            response
        })
        .await;
    let headers = response.headers_mut();
    if let Some(value) = request_id {
        headers.insert(X_REQUEST_ID.clone(), value);
    }
    if let Some(value) = traceparent {
        headers.insert(TRACEPARENT.clone(), value);
    }
    response
}

/// The `request` span the terminal's pretty output reads a line's ids from; none when the
/// output is JSON lines, which take them from the task's [`RequestContext`] (saving a span in
/// the registry, its fields and its entering on every poll). It is never exported: a sampled
/// request's server span is a [`crate::traces::ServerSpan`] of its own.
fn log_span(context: &RequestContext) -> tracing::Span {
    if crate::telemetry::spanless_requests() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "request",
        request_id = %context.request_id,
        trace_id = %context.trace_id,
        span_id = %context.span_id,
    )
}

/// Accepts ids of 1–128 visible ASCII characters; anything else could forge log lines.
fn is_sane_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_valid_trace_and_makes_a_new_span() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            &TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        let ctx = RequestContext::from_headers(&headers);
        assert_eq!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.request_id, "abc-123");
        assert_ne!(ctx.span_id, "00f067aa0ba902b7");
        assert_eq!(ctx.span_id.len(), 16);
        assert!(
            ctx.traceparent()
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
    }

    #[test]
    fn rejects_malformed_context() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        let mut headers = http::HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        let ctx = RequestContext::from_headers(&headers);
        assert_ne!(ctx.request_id, "has space");
        assert_eq!(ctx.trace_id.len(), 32);
    }
}

//! The balancer's spans, made only when the process exports traces
//! ([`brigade_core::traces::exporting`]); otherwise every function here is a check of one
//! flag and the request is forwarded exactly as before.
//!
//! One server span per request continues the client's `traceparent` (or starts the trace); it
//! carries the pool, the selection algorithm and the final status. Each upstream attempt is a
//! client span under it naming the chosen backend and why it was tried (`first`, or a retry
//! after a connect error, a timeout, a failed connection, a 5xx or a `Retry-After` answer);
//! the `traceparent` sent upstream names the attempt's span, so the replica's server span is
//! the attempt's child. Retries link to the first attempt, and waiting out `Retry-After` is a
//! span of its own.

use http::header::{HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use brigade_core::request::{RequestContext, TRACEPARENT, X_REQUEST_ID};
use brigade_core::traces::{self, SpanLink};

use crate::backend::{Backend, Outcome};
use crate::pool::Pool;

/// The spans of one request passing through the balancer.
#[derive(Debug)]
pub(crate) struct RequestTrace {
    /// The server span; it ends when the balancer has the response head to hand back.
    span: tracing::Span,
    /// The first attempt, which later attempts link to.
    first: Option<SpanLink>,
}

impl RequestTrace {
    /// Opens the request's server span when traces are exported, making it the child of the
    /// client's `traceparent`. Sets `X-Request-Id` when absent and `traceparent` to the new
    /// span, so the ids logged and answered are the exported span's.
    pub(crate) fn start(
        method: &Method,
        path: &str,
        headers: &mut HeaderMap,
        pool: &Pool,
    ) -> Option<Self> {
        if !traces::exporting() {
            return None;
        }
        let context = RequestContext::from_headers(headers);
        let span = tracing::info_span!(
            parent: None,
            "balance",
            otel.name = %format_args!("{method} {}", pool.name()),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            url.path = path,
            http.response.status_code = tracing::field::Empty,
            brigade.balance.pool = pool.name(),
            brigade.balance.algorithm = pool.config.algorithm.as_str(),
            brigade.balance.attempts = tracing::field::Empty,
            request_id = %context.request_id,
        );
        let context = traces::join_trace(&span, context);
        if !headers.contains_key(&X_REQUEST_ID)
            && let Ok(value) = HeaderValue::from_str(&context.request_id)
        {
            headers.insert(X_REQUEST_ID.clone(), value);
        }
        if let Ok(value) = HeaderValue::from_str(&context.traceparent()) {
            headers.insert(TRACEPARENT.clone(), value);
        }
        Some(Self { span, first: None })
    }

    /// Opens the span of attempt `number` (from 0) on `backend`, made for `reason`, and points
    /// the upstream `traceparent` in `headers` at it.
    pub(crate) fn attempt(
        &mut self,
        number: u32,
        backend: &Backend,
        reason: Reason,
        headers: &mut HeaderMap,
    ) -> tracing::Span {
        let span = tracing::info_span!(
            parent: &self.span,
            "upstream",
            otel.name = %format_args!("upstream attempt {}", number + 1),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            server.address = %backend.label,
            brigade.balance.attempt = number + 1,
            brigade.balance.backup = backend.is_backup(),
            brigade.balance.reason = reason.label(),
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        match &self.first {
            Some(first) => first.add_to(&span),
            None => self.first = SpanLink::of(&span),
        }
        if let Some(value) =
            traces::traceparent_of(&span).and_then(|tp| HeaderValue::from_str(&tp).ok())
        {
            headers.insert(TRACEPARENT.clone(), value);
        }
        self.span.record("brigade.balance.attempts", number + 1);
        span
    }

    /// A span covering a `Retry-After` wait of `wait_ms`.
    pub(crate) fn waiting(&self, wait_ms: u64) -> tracing::Span {
        tracing::info_span!(
            parent: &self.span,
            "retry_after",
            otel.name = "wait for Retry-After",
            otel.kind = "internal",
            brigade.balance.wait_ms = wait_ms,
        )
    }

    /// Records the answer the client gets.
    pub(crate) fn finish(self, status: StatusCode) {
        self.span
            .record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            self.span.record("otel.status_code", "ERROR");
        }
    }
}

/// Why an attempt was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The request's first try.
    First,
    /// The previous attempt ended this way.
    After(Outcome),
    /// The previous answer asked to come back after `Retry-After`.
    RetryAfter,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::After(Outcome::ConnectError) => "retry after connect_error",
            Self::After(Outcome::Timeout) => "retry after timeout",
            Self::After(Outcome::Error) => "retry after error",
            Self::After(Outcome::ServerError) => "retry after server_error",
            Self::After(Outcome::Success) => "retry",
            Self::RetryAfter => "retry after Retry-After",
        }
    }
}

/// Records how an attempt ended on its span: the status of an answer (a 5xx marks the span
/// failed), or the kind of failure (`timeout`, `error`, `connect_error`).
pub(crate) fn attempt_ended(span: &tracing::Span, ended: Result<StatusCode, &'static str>) {
    match ended {
        Ok(status) => {
            span.record("http.response.status_code", status.as_u16());
            if status.is_server_error() {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", status.as_str());
            }
        }
        Err(kind) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", kind);
        }
    }
}

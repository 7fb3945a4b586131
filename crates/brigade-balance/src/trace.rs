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
//!
//! Sampling is decided at the edge, as the replicas do (`brigade_core::traces::sampled`): an
//! unsampled request gets no span at all — on the hyper path and on the fast core, which makes
//! the same spans for a sampled request (`fast::traced`) — and its `traceparent` goes
//! upstream saying `-00`, so the replica skips its spans too.
//!
//! How a connection began is told on the server span of its first request rather than in a
//! span of its own: OpenTelemetry's HTTP conventions define spans per request only, Envoy
//! traces requests and not connections, and a keep-alive connection's span would outlive
//! thousands of requests, in none of their traces. The first request's span says when the
//! connection was accepted (`brigade.balance.accept.wait_ms`: from accept to this request's
//! head, the TLS handshake included) and, over TLS, the handshake's length and protocol
//! (`brigade.balance.tls.handshake_ms`, `tls.protocol.name`/`version`); every request's span
//! says its place on the connection (`brigade.balance.connection.request`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    ///
    /// An unsampled request gets no span: `traceparent` is set to say `-00` (see
    /// [`unsampled`]) and `None` returned. `decided` is the trace id the fast core's edge sampled
    /// a new trace by (`FastEdge::Sampled`).
    pub(crate) fn start(
        (method, path): (&Method, &str),
        headers: &mut HeaderMap,
        pool: &Pool,
        connection: &Connection,
        decided: Option<String>,
    ) -> Option<Self> {
        if !traces::exporting() {
            return None;
        }
        let number = connection.served.fetch_add(1, Ordering::Relaxed) + 1;
        let mut decided = decided;
        if decided.is_none() {
            // The common unsampled cases are decided as the fast core does, without building
            // the whole context (a UUID v7, ids formatted as strings).
            match fast_edge(headers.get(&TRACEPARENT).map(HeaderValue::as_bytes)) {
                FastEdge::Unsampled(added) => {
                    if let Some(value) = added.and_then(|new| HeaderValue::from_bytes(&new).ok()) {
                        headers.insert(TRACEPARENT.clone(), value);
                    }
                    return None;
                }
                FastEdge::Sampled(new) => decided = new,
            }
        }
        let mut context = RequestContext::from_headers(headers);
        if let Some(trace_id) = decided {
            context.trace_id = trace_id;
            context.flags = "01".to_owned();
        }
        if !context.sampled() {
            unsampled(headers, &context);
            return None;
        }
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
            brigade.balance.connection.request = number,
            brigade.balance.accept.wait_ms = tracing::field::Empty,
            brigade.balance.tls.handshake_ms = tracing::field::Empty,
            tls.protocol.name = tracing::field::Empty,
            tls.protocol.version = tracing::field::Empty,
            request_id = %context.request_id,
        );
        if number == 1 {
            connection.accepted.record(&span);
        }
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

/// Points the upstream `traceparent` of an unsampled request at its trace with flags `-00`, so
/// the replica follows the decision: the client's header stays as it is when it already says
/// so; otherwise the client's parent (there is no balancer span to name) or, for a new trace,
/// the context's new span id.
fn unsampled(headers: &mut HeaderMap, context: &RequestContext) {
    let keeps = headers
        .get(&TRACEPARENT)
        .and_then(|value| client_says_unsampled(value.as_bytes()))
        .unwrap_or(false);
    if keeps {
        return;
    }
    let parent = context
        .parent_span_id
        .as_deref()
        .unwrap_or(&context.span_id);
    let value = format!("00-{}-{parent}-00", context.trace_id);
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(TRACEPARENT.clone(), value);
    }
}

/// For a valid client `traceparent`: its trace id and whether its flags say unsampled.
fn client_trace(value: &[u8]) -> Option<(String, bool)> {
    let text = std::str::from_utf8(value).ok()?;
    let (trace_id, _, flags) = brigade_core::request::parse_traceparent(text)?;
    Some((trace_id, !brigade_core::request::flags_sampled(&flags)))
}

/// Whether a valid client `traceparent` says unsampled (`None`: not valid).
fn client_says_unsampled(value: &[u8]) -> Option<bool> {
    client_trace(value).map(|(_, unsampled)| unsampled)
}

/// What the fast core does with a request when traces are exported, decided from its
/// `traceparent` (`None`: the client sent none).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FastEdge {
    /// Forward it without a span: the client's `traceparent` (already `-00`) unchanged, or
    /// this new unsampled one added.
    Unsampled(Option<[u8; 55]>),
    /// Make the spans ([`RequestTrace::start`]); for a new trace, the trace id it was sampled
    /// by (the spans must keep it, or the decision would be made anew). A `traceparent` that
    /// must be rewritten (malformed, or sampled by the client but not here) comes here too:
    /// `RequestTrace::start` rewrites it.
    Sampled(Option<String>),
}

/// The fast core's edge decision, the same as [`RequestTrace::start`]'s.
pub(crate) fn fast_edge(traceparent: Option<&[u8]>) -> FastEdge {
    let Some(header) = traceparent else {
        let mut new = crate::ids::traceparent();
        let trace_id = std::str::from_utf8(&new[3..35]).unwrap_or_default();
        if traces::sampled(trace_id, None) {
            return FastEdge::Sampled(Some(trace_id.to_owned()));
        }
        new[53..55].copy_from_slice(b"00");
        return FastEdge::Unsampled(Some(new));
    };
    // Passed on unchanged only when the client's own flags already say what this process
    // decides (unsampled); anything else is rewritten by the hyper path.
    match client_trace(header) {
        Some((trace_id, true)) if !traces::sampled(&trace_id, Some(false)) => {
            FastEdge::Unsampled(None)
        }
        _ => FastEdge::Sampled(None),
    }
}

/// How a client connection began, told on its first request's span (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// When the connection was accepted.
    pub at: Instant,
    /// The TLS handshake, on a TLS connection.
    pub tls: Option<Handshake>,
}

/// A finished TLS handshake.
#[derive(Debug, Clone, Copy)]
pub struct Handshake {
    /// How long it took.
    pub took: Duration,
    /// The protocol version agreed (`1.2`, `1.3`).
    pub version: Option<&'static str>,
}

impl Accepted {
    /// A plain connection accepted now.
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            tls: None,
        }
    }

    fn record(&self, span: &tracing::Span) {
        span.record("brigade.balance.accept.wait_ms", millis(self.at.elapsed()));
        if let Some(tls) = &self.tls {
            span.record("brigade.balance.tls.handshake_ms", millis(tls.took));
            span.record("tls.protocol.name", "tls");
            if let Some(version) = tls.version {
                span.record("tls.protocol.version", version);
            }
        }
    }
}

/// A duration in milliseconds with microsecond precision.
fn millis(duration: Duration) -> f64 {
    (duration.as_micros() as f64) / 1000.0
}

/// What the spans of a connection's requests share: how it began, and how many of its
/// requests were served (counted only when traces are exported).
#[derive(Debug)]
pub struct Connection {
    /// How it began.
    pub accepted: Accepted,
    /// Requests served so far.
    pub served: AtomicU64,
}

impl Connection {
    /// A connection that began as `accepted` and has served `served` requests.
    pub fn new(accepted: Accepted, served: u64) -> Self {
        Self {
            accepted,
            served: AtomicU64::new(served),
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
    /// Why attempt `number` (from 0) is made: the first, a retry after the last one was
    /// `asked_to_come_back` (`Retry-After`), or a retry after the last one ended as `last`.
    pub(crate) fn of(number: u32, asked_to_come_back: bool, last: Outcome) -> Self {
        match (number, asked_to_come_back) {
            (0, _) => Self::First,
            (_, true) => Self::RetryAfter,
            (_, false) => Self::After(last),
        }
    }

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

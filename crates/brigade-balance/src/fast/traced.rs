//! A request sampled for tracing, served on the fast core with the hyper path's spans.
//!
//! The spans are [`RequestTrace`]'s, the same the hyper path makes (one server span for the
//! request, one client span per upstream attempt, one for a `Retry-After` wait), so a trace
//! looks the same whichever core served it. They read and write trace context through a small
//! `HeaderMap` holding only `traceparent`, `tracestate` and `X-Request-Id`: built for sampled
//! requests alone, so unsampled ones (nearly all, at usual ratios) cost nothing more.
//!
//! Each attempt's span has its own id, which the upstream `traceparent` must name. The
//! upstream head is written once per request; its `traceparent` value always has the same
//! length (version 00: 55 bytes), so each attempt overwrites those bytes in place.
//!
//! Before this, the fast core handed a connection to the hyper path on its first sampled
//! request, for good: at a 1 % ratio nearly every keep-alive connection ended up there and
//! the fast core's advantage was gone.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use tracing::Span;

use brigade_core::request::{TRACEPARENT, X_REQUEST_ID};

use crate::backend::{Backend, Outcome};
use crate::pool::Pool;
use crate::trace::{self, Reason, RequestTrace};

/// The length of a version-00 `traceparent` value.
const TRACEPARENT_LEN: usize = 55;

/// `tracestate`, passed to the span's context unchanged.
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// What the edge decided for a request the fast core serves.
#[derive(Debug)]
pub(super) struct Edge {
    /// The `traceparent` to send upstream in place of the client's (or added when it sent
    /// none); `None`: the client's goes on unchanged.
    pub traceparent: Option<[u8; TRACEPARENT_LEN]>,
    /// The request's spans, when it is sampled.
    pub traced: Option<Box<Traced>>,
}

/// The spans of one sampled request and where its upstream `traceparent` sits.
#[derive(Debug)]
pub(super) struct Traced {
    trace: RequestTrace,
    /// Trace context as the spans see it.
    headers: HeaderMap,
    /// Offset of the `traceparent` value in the upstream head.
    at: Option<usize>,
    /// The last attempt asked to come back after `Retry-After`.
    asked_to_come_back: bool,
}

/// The request the client's head describes, as far as the spans need it.
pub(super) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub traceparent: Option<&'a [u8]>,
    pub tracestate: Option<&'a [u8]>,
    pub request_id: &'a [u8],
}

/// Opens the spans of a request the edge sampled (`decided`: the trace id it was sampled by,
/// for a new trace) and returns the `traceparent` to send upstream.
pub(super) fn sampled(
    request: &Request<'_>,
    pool: &Pool,
    connection: &trace::Connection,
    decided: Option<String>,
) -> Edge {
    let mut headers = HeaderMap::with_capacity(3);
    for (name, value) in [
        (&TRACEPARENT, request.traceparent),
        (&TRACESTATE, request.tracestate),
        (&X_REQUEST_ID, Some(request.request_id)),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.insert(name.clone(), value);
        }
    }
    let method = Method::from_bytes(request.method.as_bytes()).unwrap_or(Method::GET);
    let trace = RequestTrace::start(
        (&method, request.path),
        &mut headers,
        pool,
        connection,
        decided,
    );
    let upstream = headers.get(&TRACEPARENT).map(HeaderValue::as_bytes);
    let traceparent = upstream
        .filter(|value| Some(*value) != request.traceparent)
        .and_then(|value| <[u8; TRACEPARENT_LEN]>::try_from(value).ok());
    Edge {
        traceparent,
        traced: trace.map(|trace| {
            Box::new(Traced {
                trace,
                headers,
                at: None,
                asked_to_come_back: false,
            })
        }),
    }
}

impl Traced {
    /// Records where the upstream head's `traceparent` value begins.
    pub fn written_at(&mut self, at: Option<usize>) {
        self.at = at;
    }

    /// Opens the span of attempt `number` (from 0) on `backend` and points the upstream
    /// `traceparent` in `head` at it.
    pub fn attempt(
        &mut self,
        number: u32,
        backend: &Backend,
        last: Outcome,
        head: &mut [u8],
    ) -> Span {
        let reason = Reason::of(number, std::mem::take(&mut self.asked_to_come_back), last);
        let span = self
            .trace
            .attempt(number, backend, reason, &mut self.headers);
        if let (Some(at), Some(value)) = (self.at, self.headers.get(&TRACEPARENT))
            && let Some(slot) = head.get_mut(at..at + TRACEPARENT_LEN)
            && value.len() == TRACEPARENT_LEN
        {
            slot.copy_from_slice(value.as_bytes());
        }
        span
    }

    /// A span covering a `Retry-After` wait of `wait_ms`; the next attempt says why it came.
    pub fn waiting(&mut self, wait_ms: u64) -> Span {
        self.asked_to_come_back = true;
        self.trace.waiting(wait_ms)
    }

    /// Ends the request's span with the status the client gets.
    pub fn finish(self, status: StatusCode) {
        self.trace.finish(status);
    }
}

/// Records how an attempt ended on its span.
pub(super) fn ended(span: Option<&Span>, ended: Result<StatusCode, Outcome>) {
    if let Some(span) = span {
        trace::attempt_ended(span, ended.map_err(Outcome::label));
    }
}

/// Ends the request's span, if it has one, with `status`.
pub(super) fn finish(traced: &mut Option<Box<Traced>>, status: StatusCode) {
    if let Some(traced) = traced.take() {
        traced.finish(status);
    }
}

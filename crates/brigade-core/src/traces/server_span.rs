//! The replica's server span, written by brigade straight into a `SpanData`.
//!
//! A request's identity is decided once, at its edge (`RequestContext::from_headers`): its
//! trace id, its own span id, whether it is sampled, its parent and `tracestate`. A `tracing`
//! span bridged by `tracing-opentelemetry` would decide the same things again (a span builder,
//! the SDK's sampler, a span behind a lock, started early only to read back its ids), and be
//! looked up in the registry on every poll of the request. That was over 16,000 instructions of
//! a traced cached read (docs/benchmarks.md, "Spans written straight to the wire, and fewer of
//! them"). Here the span is a `SpanData` filled in from the context, its attributes added as the
//! request goes, and queued on the export queue when the answer is ready.
//!
//! Spans inside the request (authentication, the store, the payment provider) are still
//! `tracing` spans. They find this one as their parent through the OpenTelemetry `Context`
//! that [`ServerSpan::run`] makes current while the request is polled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::queue::SpanQueue;
use crate::request_context::RequestContext;

/// The instrumentation scope of brigade's spans: the one the trace layer's tracer has, so the
/// spans of both kinds are grouped together in an export.
pub(super) const SCOPE_NAME: &str = "brigade";

static SCOPE: std::sync::LazyLock<InstrumentationScope> =
    std::sync::LazyLock::new(|| InstrumentationScope::builder(SCOPE_NAME).build());

/// The export queue of this process, once trace export is set up.
pub(super) static QUEUE: std::sync::OnceLock<SpanQueue> = std::sync::OnceLock::new();

tokio::task_local! {
    /// What the request's in-process cache reads answered: 0 none read, 1 a miss, 2 a hit.
    static CACHE_ANSWER: Arc<AtomicU8>;
}

/// Notes on the server span of the request being served whether the in-process cache answered
/// its read; the last read of a request is the one its span shows. Outside a traced request
/// this does nothing.
pub fn note_cache_answer(hit: bool) {
    let _ = CACHE_ANSWER.try_with(|answer| answer.store(1 + u8::from(hit), Ordering::Relaxed));
}

/// The server span of one sampled request; queued for export when [`ServerSpan::end`] is
/// called, or when it is dropped unfinished (a request whose client went away).
#[derive(Debug)]
pub struct ServerSpan {
    data: Option<SpanData>,
    parent_of_children: Context,
    cache_answer: Arc<AtomicU8>,
}

impl ServerSpan {
    /// The span of the request `context` names, when the process exports traces and the
    /// request is sampled; `method`, `route` and `path` become its name and attributes.
    pub fn start(
        context: &RequestContext,
        method: &http::Method,
        route: &str,
        path: &str,
    ) -> Option<Self> {
        if !super::exporting() || !context.sampled() {
            return None;
        }
        QUEUE.get()?;
        let own = SpanContext::new(
            TraceId::from_hex(&context.trace_id).ok()?,
            SpanId::from_hex(&context.span_id).ok()?,
            TraceFlags::SAMPLED,
            false,
            context
                .tracestate
                .as_deref()
                .and_then(|state| state.parse::<TraceState>().ok())
                .unwrap_or_default(),
        );
        let parent = context
            .parent_span_id
            .as_deref()
            .and_then(|id| SpanId::from_hex(id).ok())
            .unwrap_or(SpanId::INVALID);
        let now = SystemTime::now();
        let data = SpanData {
            span_context: own.clone(),
            parent_span_id: parent,
            parent_span_is_remote: parent != SpanId::INVALID,
            span_kind: SpanKind::Server,
            name: format!("{method} {route}").into(),
            start_time: now,
            end_time: now,
            attributes: vec![
                KeyValue::new("http.request.method", method.as_str().to_owned()),
                KeyValue::new("http.route", route.to_owned()),
                KeyValue::new("url.path", path.to_owned()),
                KeyValue::new("request_id", context.request_id.clone()),
            ],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: SCOPE.clone(),
        };
        Some(Self {
            data: Some(data),
            parent_of_children: Context::new().with_remote_span_context(own),
            cache_answer: Arc::default(),
        })
    }

    /// Runs the request's future with this span as the parent of the spans made inside it.
    pub async fn run<F: Future>(&self, request: F) -> F::Output {
        use opentelemetry::context::FutureExt as _;
        CACHE_ANSWER
            .scope(
                Arc::clone(&self.cache_answer),
                request.with_context(self.parent_of_children.clone()),
            )
            .await
    }

    /// Ends the span with the answer's status (5xx marks it failed) and queues it for export.
    pub fn end(mut self, status: u16) {
        if let Some(mut data) = self.data.take() {
            data.attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 500 {
                data.status = Status::error("");
            }
            self.finish(data);
        }
    }

    fn finish(&self, mut data: SpanData) {
        match self.cache_answer.load(Ordering::Relaxed) {
            0 => {}
            answer => data
                .attributes
                .push(KeyValue::new("brigade.cache.hit", answer == 2)),
        }
        data.end_time = SystemTime::now();
        if let Some(queue) = QUEUE.get() {
            queue.push(data);
        }
    }
}

impl Drop for ServerSpan {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            self.finish(data);
        }
    }
}

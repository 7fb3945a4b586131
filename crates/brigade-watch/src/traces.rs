//! The local trace collector: an OTLP/HTTP receiver (`POST /v1/traces`, protobuf) for every
//! brigade process on the machine, a bounded window of traces in memory, and the API that
//! searches it (`GET /api/v1/traces`, `GET /api/v1/traces/{trace_id}`).
//!
//! Why watch: it is already the process that observes the others (it scrapes their metrics,
//! evaluates rules and keeps alert history), it runs once per `brigade up`, and it is the one
//! place the dashboard asks for observability data; a trace collector of its own would be one
//! more process to supervise for the same job. In production the same processes export to an
//! OpenTelemetry Collector and Tempo instead, with the same variables.
//!
//! The window is bounded by span count and age. When it is full, the oldest trace that is
//! neither failed nor slow goes first: tail sampling that keeps every error and every slow
//! trace for as long as the window allows.

use std::collections::{HashMap, VecDeque};

use brigade_core::ids::hex;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use prost::Message as _;

pub use crate::contract::{SpanKind, SpanView, TraceQuery, TraceStatus, TraceSummary};

/// Spans received, by outcome (`kept`, `rejected`).
pub const SPANS_RECEIVED: &str = "brigade_watch_trace_spans_received_total";
/// Traces evicted from the window, by reason (`space`, `age`).
pub const TRACES_EVICTED: &str = "brigade_watch_traces_evicted_total";
/// Traces held.
pub const TRACES_HELD: &str = "brigade_watch_traces";

/// Limits of the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceLimits {
    /// Spans held in all.
    pub max_spans: usize,
    /// Spans held per trace (a runaway trace cannot take the window).
    pub max_spans_per_trace: usize,
    /// A trace older than this (by its last span) is dropped.
    pub max_age_ms: i64,
    /// A trace at least this long counts as slow and is kept like a failed one.
    pub slow_ms: f64,
}

impl Default for TraceLimits {
    fn default() -> Self {
        Self {
            max_spans: 100_000,
            max_spans_per_trace: 2_000,
            max_age_ms: 3_600_000,
            slow_ms: 1_000.0,
        }
    }
}

#[derive(Debug, Default)]
struct Trace {
    spans: Vec<SpanView>,
    last_seen_ms: i64,
}

impl Trace {
    fn error(&self) -> bool {
        self.spans.iter().any(|s| s.error)
    }

    fn bounds(&self) -> (f64, f64) {
        let start = self
            .spans
            .iter()
            .map(|s| s.start_ms)
            .fold(f64::MAX, f64::min);
        let end = self
            .spans
            .iter()
            .map(|s| s.start_ms + s.duration_ms)
            .fold(f64::MIN, f64::max);
        (start, (end - start).max(0.0))
    }

    fn summary(&self, trace_id: &str) -> TraceSummary {
        let root = self
            .spans
            .iter()
            .find(|s| s.parent_span_id.is_none())
            .or_else(|| {
                self.spans
                    .iter()
                    .min_by(|a, b| a.start_ms.total_cmp(&b.start_ms))
            });
        let mut services: Vec<String> = self.spans.iter().map(|s| s.service.clone()).collect();
        services.sort();
        services.dedup();
        let (start_ms, duration_ms) = self.bounds();
        TraceSummary {
            trace_id: trace_id.to_owned(),
            name: root.map(|s| s.name.clone()).unwrap_or_default(),
            services,
            spans: self.spans.len(),
            start_ms,
            duration_ms,
            error: self.error(),
            request_id: self
                .spans
                .iter()
                .find_map(|s| s.attributes.get("request_id").cloned()),
        }
    }
}

/// The window of traces.
#[derive(Debug, Default)]
pub struct TraceStore {
    limits: TraceLimits,
    traces: HashMap<String, Trace>,
    /// Trace ids by first arrival, oldest first.
    order: VecDeque<String>,
    spans: usize,
}

impl TraceStore {
    /// An empty window with `limits`.
    pub fn new(limits: TraceLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Adds the spans of one OTLP export; returns how many were kept.
    pub fn ingest(&mut self, request: ExportTraceServiceRequest, now_ms: i64) -> usize {
        let mut kept = 0;
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| attribute_text(&r.attributes, "service.name"))
                .unwrap_or_else(|| "unknown".to_owned());
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                if let Some(view) = view_of(span, &service) {
                    kept += usize::from(self.insert(view, now_ms));
                }
            }
        }
        self.evict(now_ms);
        metrics::gauge!(TRACES_HELD).set(self.traces.len() as f64);
        kept
    }

    fn insert(&mut self, span: SpanView, now_ms: i64) -> bool {
        let trace_id = span.trace_id.clone();
        let trace = self.traces.entry(trace_id.clone()).or_insert_with(|| {
            self.order.push_back(trace_id);
            Trace::default()
        });
        if trace.spans.len() >= self.limits.max_spans_per_trace {
            return false;
        }
        trace.spans.push(span);
        trace.last_seen_ms = now_ms;
        self.spans += 1;
        true
    }

    /// Drops traces past their age, then, while over the span budget, the oldest trace that is
    /// neither failed nor slow (the oldest of any kind when only those are left).
    fn evict(&mut self, now_ms: i64) {
        let too_old = now_ms - self.limits.max_age_ms;
        while let Some(oldest) = self.order.front() {
            if self
                .traces
                .get(oldest)
                .is_some_and(|t| t.last_seen_ms >= too_old)
            {
                break;
            }
            let id = self.order.pop_front().unwrap_or_default();
            self.remove(&id, "age");
        }
        while self.spans > self.limits.max_spans {
            let slow_ms = self.limits.slow_ms;
            let ordinary = self.order.iter().position(|id| {
                self.traces
                    .get(id)
                    .is_some_and(|t| !t.error() && t.bounds().1 < slow_ms)
            });
            let Some(index) = ordinary.or(if self.order.is_empty() { None } else { Some(0) })
            else {
                break;
            };
            if let Some(id) = self.order.remove(index) {
                self.remove(&id, "space");
            }
        }
    }

    fn remove(&mut self, trace_id: &str, reason: &'static str) {
        if let Some(trace) = self.traces.remove(trace_id) {
            self.spans -= trace.spans.len();
            metrics::counter!(TRACES_EVICTED, "reason" => reason).increment(1);
        }
    }

    /// The spans of one trace, by start time.
    pub fn trace(&self, trace_id: &str) -> Option<Vec<SpanView>> {
        let mut spans = self.traces.get(trace_id)?.spans.clone();
        spans.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
        Some(spans)
    }

    /// Traces matching `query`, newest first.
    pub fn search(&self, query: &TraceQuery) -> Vec<TraceSummary> {
        let since_ms = query.since.map(|at| at.timestamp_millis() as f64);
        let mut found: Vec<TraceSummary> = self
            .traces
            .iter()
            .filter(|(id, trace)| matches(query, id, trace))
            .map(|(id, trace)| trace.summary(id))
            .filter(|summary| {
                query
                    .min_duration_ms
                    .is_none_or(|min| summary.duration_ms >= min)
                    && since_ms.is_none_or(|since| summary.start_ms >= since)
                    && match query.status {
                        Some(TraceStatus::Error) => summary.error,
                        Some(TraceStatus::Ok) => !summary.error,
                        None => true,
                    }
            })
            .collect();
        found.sort_by(|a, b| b.start_ms.total_cmp(&a.start_ms));
        found.truncate(query.effective_limit());
        found
    }
}

fn matches(query: &TraceQuery, id: &str, trace: &Trace) -> bool {
    let any = |test: &dyn Fn(&SpanView) -> bool| trace.spans.iter().any(test);
    query
        .trace_id
        .as_ref()
        .is_none_or(|wanted| wanted.as_str() == id)
        && query.request_id.as_deref().is_none_or(|wanted| {
            any(&|s| s.attributes.get("request_id").is_some_and(|r| r == wanted))
        })
        && query
            .service
            .as_deref()
            .is_none_or(|wanted| any(&|s| s.service == wanted))
        && query.route.as_deref().is_none_or(|wanted| {
            any(&|s| {
                s.name.contains(wanted)
                    || s.attributes
                        .get("http.route")
                        .is_some_and(|r| r.contains(wanted))
            })
        })
}

/// The spans watch makes of its own work (scrapes, rule evaluations, notifications) as one
/// OTLP export, for [`TraceStore::ingest`]: watch keeps them in its own window instead of
/// sending them to itself over HTTP.
pub fn own_spans(
    spans: Vec<opentelemetry_sdk::trace::SpanData>,
    resource: &opentelemetry_sdk::Resource,
) -> ExportTraceServiceRequest {
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(spans, &resource.into()),
    }
}

/// Decodes an OTLP/HTTP protobuf body.
pub fn decode(body: &[u8]) -> Result<ExportTraceServiceRequest, prost::DecodeError> {
    ExportTraceServiceRequest::decode(body)
}

/// The API's view of an OTLP span; `None` for a span without valid ids.
fn view_of(span: Span, service: &str) -> Option<SpanView> {
    if span.trace_id.len() != 16 || span.span_id.len() != 8 {
        return None;
    }
    let kind = match span.kind {
        1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    };
    let status = span.status.unwrap_or_default();
    let error = status.code == StatusCode::Error as i32;
    let start_ms = span.start_time_unix_nano as f64 / 1e6;
    let duration_ms = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano) as f64
        / 1e6;
    Some(SpanView {
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: (span.parent_span_id.len() == 8).then(|| hex(&span.parent_span_id)),
        name: span.name,
        service: service.to_owned(),
        kind,
        start_ms,
        duration_ms,
        error,
        status_message: (error && !status.message.is_empty()).then_some(status.message),
        attributes: span
            .attributes
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), text_of(kv.value.as_ref()?)?)))
            .collect(),
        links: span
            .links
            .iter()
            .map(|link| format!("{}/{}", hex(&link.trace_id), hex(&link.span_id)))
            .collect(),
    })
}

fn attribute_text(attributes: &[KeyValue], key: &str) -> Option<String> {
    text_of(attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?)
}

fn text_of(value: &AnyValue) -> Option<String> {
    Some(match value.value.as_ref()? {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

    fn span(trace: u8, id: u8, parent: Option<u8>, ms: u64, error: bool) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: format!("span {id}"),
            kind: 2,
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 1_000_000_000 + ms * 1_000_000,
            status: Some(Status {
                code: if error { StatusCode::Error as i32 } else { 0 },
                message: if error { "boom".into() } else { String::new() },
            }),
            ..Span::default()
        }
    }

    fn export(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(service.into())),
                        }),
                        ..KeyValue::default()
                    }],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[test]
    fn spans_of_several_processes_make_one_trace() {
        let mut store = TraceStore::new(TraceLimits::default());
        store.ingest(
            export("brigade-balance", vec![span(1, 1, None, 30, false)]),
            0,
        );
        store.ingest(
            export("brigade-serve", vec![span(1, 2, Some(1), 20, false)]),
            0,
        );
        let trace = store.trace(&"01".repeat(16)).unwrap();
        assert_eq!(trace.len(), 2);
        let found = store.search(&TraceQuery::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].services, ["brigade-balance", "brigade-serve"]);
        assert_eq!(found[0].name, "span 1");
        assert!((found[0].duration_ms - 30.0).abs() < 1e-9);
    }

    #[test]
    fn a_full_window_evicts_ordinary_traces_before_failed_and_slow_ones() {
        let mut store = TraceStore::new(TraceLimits {
            max_spans: 3,
            ..TraceLimits::default()
        });
        store.ingest(export("s", vec![span(1, 1, None, 5, true)]), 0);
        store.ingest(export("s", vec![span(2, 1, None, 5_000, false)]), 0);
        store.ingest(export("s", vec![span(3, 1, None, 5, false)]), 0);
        store.ingest(export("s", vec![span(4, 1, None, 5, false)]), 0);
        let held: Vec<String> = store
            .search(&TraceQuery::default())
            .into_iter()
            .map(|t| t.trace_id)
            .collect();
        assert!(held.contains(&"01".repeat(16)), "the failed trace stays");
        assert!(held.contains(&"02".repeat(16)), "the slow trace stays");
        assert!(
            !held.contains(&"03".repeat(16)),
            "the oldest ordinary trace went"
        );
        assert_eq!(
            store
                .search(&TraceQuery {
                    status: Some(TraceStatus::Error),
                    ..TraceQuery::default()
                })
                .len(),
            1
        );
        assert_eq!(
            store
                .search(&TraceQuery {
                    min_duration_ms: Some(1_000.0),
                    ..TraceQuery::default()
                })
                .len(),
            1
        );
    }

    #[test]
    fn old_traces_leave_the_window() {
        let mut store = TraceStore::new(TraceLimits {
            max_age_ms: 1_000,
            ..TraceLimits::default()
        });
        store.ingest(export("s", vec![span(1, 1, None, 5, false)]), 0);
        store.ingest(export("s", vec![span(2, 1, None, 5, false)]), 5_000);
        assert!(store.trace(&"01".repeat(16)).is_none());
        assert!(store.trace(&"02".repeat(16)).is_some());
    }
}

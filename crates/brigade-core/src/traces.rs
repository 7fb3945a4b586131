//! Trace export with OpenTelemetry: `tracing` spans become OpenTelemetry spans
//! (`tracing-opentelemetry`) and leave the process over OTLP/HTTP with protobuf bodies
//! ([`otlp`], [`http_export`]) — to an OpenTelemetry Collector, Tempo, Jaeger or anything else
//! that speaks OTLP.
//!
//! Configured only by the standard variables, so the same settings work for every process and
//! every other OpenTelemetry program beside it:
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | export is on when either is set (`/v1/traces` is appended to the first) |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT` (and their `_TRACES_` forms) | headers and timeout of each export |
//! | `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none` | export off |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource; the service name defaults to `brigade-<command>` |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | sampling; the default is `parentbased_always_on` |
//! | `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_SCHEDULE_DELAY` | the export queue |
//!
//! Export never holds up a request: a finished span goes into a bounded queue with a
//! non-blocking send, and one thread of its own takes batches off the queue and sends them.
//! When the queue is full (a collector that is down or slow) the span is dropped and counted in
//! `brigade_trace_spans_dropped_total`; exported and failed batches are counted in
//! `brigade_trace_spans_exported_total{outcome}`. The SDK's own batch processor does the same
//! but keeps its drop count to itself, which is why brigade has this small processor.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};

use crate::request_context::RequestContext;

mod http_export;
mod late;
mod otlp;
mod queue;
mod sampling;
mod server_span;
pub use late::{LocalCollector, attach_collector, attach_local};
use queue::{QueueProcessor, QueueSettings};
pub use sampling::{Root, Sampling, SamplingError};
pub use server_span::{ServerSpan, note_cache_answer};

/// Spans dropped because the export queue was full.
pub const SPANS_DROPPED: &str = "brigade_trace_spans_dropped_total";
/// Spans handed to the exporter, by outcome (`success`, `failure`).
pub const SPANS_EXPORTED: &str = "brigade_trace_spans_exported_total";

/// Why trace export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceExportError {
    /// A variable configuring the OTLP exporter cannot be used (e.g. a malformed endpoint).
    #[error("invalid configuration: {variable}: {reason}")]
    Exporter {
        /// The variable (or setting) at fault.
        variable: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The export thread could not be started.
    #[error("cannot start the trace export thread: {0}")]
    Thread(std::io::Error),
    /// `OTEL_TRACES_SAMPLER` or its argument cannot be used.
    #[error(transparent)]
    Sampling(#[from] SamplingError),
}

/// The process's tracer provider, kept for [`shutdown`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
/// The process's sampler, which decides each request at its edge ([`sampled`]).
static SAMPLING: OnceLock<Sampling> = OnceLock::new();

/// Whether a trace is sampled by this process's sampler (every trace when it does not export),
/// given its parent's decision when it has a parent.
pub fn sampled(trace_id: &str, parent_sampled: Option<bool>) -> bool {
    SAMPLING
        .get()
        .is_none_or(|sampling| sampling.decide(trace_id, parent_sampled))
}

/// Whether the standard variables turn trace export off (`OTEL_SDK_DISABLED=true`,
/// `OTEL_TRACES_EXPORTER=none`).
pub fn disabled_by_env() -> bool {
    std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER")
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("none"))
}

/// Whether the standard variables ask for trace export.
pub fn enabled_by_env() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    !disabled_by_env()
        && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// What a process does with its spans when the standard variables name no endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutEndpoint {
    /// No export: spans are not even built (every replica and the balancer on their own).
    Off,
    /// Spans are built from the start and sent where [`attach_collector`] or
    /// [`attach_local`] says once the process knows (`brigade up`, watch, drills).
    Later,
}

/// Builds the provider from the environment; `None` when export is off. `default_service` names
/// the service when `OTEL_SERVICE_NAME` does not.
pub fn provider_from_env(
    default_service: &str,
    without_endpoint: WithoutEndpoint,
) -> Result<Option<SdkTracerProvider>, TraceExportError> {
    if enabled_by_env() {
        let exporter = http_export::HttpExporter::new(http_export::Destination::from_env()?);
        return provider(exporter, default_service).map(Some);
    }
    if without_endpoint == WithoutEndpoint::Later && !disabled_by_env() {
        return provider(late::LateExporter::default(), default_service).map(Some);
    }
    Ok(None)
}

/// A provider sending through `exporter` from a queue of its own (see the module docs).
fn provider<E: SpanExporter + 'static>(
    exporter: E,
    default_service: &str,
) -> Result<SdkTracerProvider, TraceExportError> {
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(default_service.to_owned());
    }
    // Described here too, for a recorder installed before the provider (see
    // `metrics::renderer`); without a recorder yet this does nothing.
    describe_metrics();
    let sampling = Sampling::from_env()?;
    let _ = SAMPLING.set(sampling);
    let processor = QueueProcessor::start(exporter, QueueSettings::from_env())?;
    let _ = server_span::QUEUE.set(processor.queue());
    Ok(SdkTracerProvider::builder()
        .with_sampler(sampling.to_sdk())
        .with_id_generator(sampling::EdgeIds::default())
        .with_span_processor(processor)
        .with_resource(resource.build())
        .build())
}

/// Describes the export metrics and creates them at zero (only processes that export have
/// them); called when the metrics recorder is installed.
pub fn describe_metrics() {
    metrics::describe_counter!(
        SPANS_DROPPED,
        "Finished spans dropped because the trace export queue was full."
    );
    metrics::describe_counter!(
        SPANS_EXPORTED,
        "Spans handed to the OTLP exporter, by outcome (success, failure)."
    );
    metrics::counter!(SPANS_DROPPED).increment(0);
    for outcome in ["success", "failure"] {
        metrics::counter!(SPANS_EXPORTED, "outcome" => outcome).increment(0);
    }
}

/// The layer that turns `tracing` spans into OpenTelemetry spans of `provider`, which is kept
/// for [`shutdown`].
pub fn layer<S>(provider: SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let tracer = provider.tracer(server_span::SCOPE_NAME);
    let _ = PROVIDER.set(provider);
    // Without the source location (file, module, line), the thread (id, and its name copied
    // into a new String) and the `target` on every span: six attributes nobody reads, built,
    // encoded, sent and indexed by the collector for each span. The span's name says where it
    // is.
    //
    // Without context activation: it makes each span the current OpenTelemetry `Context` while
    // the span is entered — a `Context` clone, a thread-local push and pop on every poll of an
    // instrumented future. Nothing in brigade reads `Context::current()`: a span's parent is
    // found in the `tracing` span tree, and outgoing `traceparent`s come from
    // [`traceparent_of`].
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_context_activation(false)
}

/// Whether this process exports traces (the layer is installed).
pub fn exporting() -> bool {
    PROVIDER.get().is_some()
}

/// Whether a span made now would be exported: the process exports, and the request being
/// served, if any, is sampled. The spans of an unsampled request (the store's, the cache's,
/// the payment provider's) would be built with all their attributes only for the sampler to
/// drop them; not making them keeps an unsampled request close to an untraced one.
pub fn recording() -> bool {
    exporting() && crate::request_context::current_sampled().unwrap_or(true)
}

/// Makes `span` (a server span just opened) the child of the caller's span named by `context`,
/// and returns the context with the exported span's trace id, span id and sampling decision,
/// so the ids in logs and in the answer's `traceparent` are the exported span's.
pub fn join_trace(span: &tracing::Span, mut context: RequestContext) -> RequestContext {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if let Some(parent) = &context.parent_span_id {
        let remote = SpanContext::new(
            TraceId::from_hex(&context.trace_id).unwrap_or(TraceId::INVALID),
            SpanId::from_hex(parent).unwrap_or(SpanId::INVALID),
            TraceFlags::new(u8::from_str_radix(&context.flags, 16).unwrap_or(1)),
            true,
            // A `tracestate` that does not parse is dropped, as the specification asks.
            context
                .tracestate
                .as_deref()
                .and_then(|state| state.parse::<TraceState>().ok())
                .unwrap_or_default(),
        );
        if remote.is_valid() {
            let _ = span.set_parent(Context::new().with_remote_span_context(remote));
        }
    }
    if context.parent_span_id.is_none() {
        // A new trace keeps the id the edge sampled it by, so the SDK's sampler (the same
        // rule) decides the same; the span starts in `context()` below, on this thread.
        sampling::next_trace_id(&context.trace_id);
    }
    let otel = span.context();
    // Unused when the span was not started here (not seen by the trace layer): no later root
    // span may take it.
    sampling::forget_next_trace_id();
    let own = otel.span().span_context().clone();
    if own.is_valid() {
        context.trace_id = own.trace_id().to_string();
        context.span_id = own.span_id().to_string();
        context.flags = format!("{:02x}", own.trace_flags().to_u8());
    }
    context
}

/// The W3C `traceparent` naming `span` (an exported span), for an outgoing request whose
/// server span should be its child; `None` when the span is not exported (export off, or the
/// span filtered out).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let otel = span.context();
    let own = otel.span().span_context().clone();
    own.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            own.trace_id(),
            own.span_id(),
            own.trace_flags().to_u8()
        )
    })
}

/// What a later span can link to: the identity of an exported span, kept after the span
/// itself ended (a retried attempt links the first attempt this way).
#[derive(Debug, Clone)]
pub struct SpanLink(opentelemetry::trace::SpanContext);

impl SpanLink {
    /// The identity of `span`, when it is exported.
    pub fn of(span: &tracing::Span) -> Option<Self> {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let own = span.context().span().span_context().clone();
        own.is_valid().then_some(Self(own))
    }

    /// Adds a link from `span` to this one.
    pub fn add_to(&self, span: &tracing::Span) {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        span.add_link(self.0.clone());
    }
}

/// Marks `span` failed: status error with `reason` as its description. The span must declare
/// `otel.status_code` and `otel.status_description` (as `tracing::field::Empty`).
pub fn mark_failed(span: &tracing::Span, reason: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", reason);
}

/// Longest a process waits at exit for its last spans to be sent.
pub const EXIT_FLUSH: Duration = Duration::from_secs(3);

/// Sends what is queued and stops the export thread; called once when the process ends, and
/// bounded by [`EXIT_FLUSH`].
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown_with_timeout(EXIT_FLUSH);
    }
}

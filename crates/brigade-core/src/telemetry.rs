//! Log output: one JSON object per line (or pretty text on a terminal).
//!
//! Every line carries `timestamp` (RFC 3339, UTC), `level`, `message`, `target`, the ids of the
//! request it was written for (`request_id`, `trace_id` and `span_id` at the top level, from the
//! task's request context), the fields of the spans it happened in and the event's own fields. A
//! log shipper can index these lines without parsing rules.
//!
//! Every event is also counted in `brigade_log_events_total{level}`, so a burst of error lines
//! is alertable like any other metric (`increase(brigade_log_events_total{level="error"}[5m])`).

use std::fmt;
use std::io::{IsTerminal, Write};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::filter::{FilterExt as _, filter_fn};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, LogSettings};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `log.filter` is not valid `tracing` filter syntax.
    #[error("invalid configuration: log.filter: {0}")]
    Filter(String),
    /// The `OTEL_*` variables ask for trace export that cannot be set up.
    #[error(transparent)]
    Traces(#[from] crate::traces::TraceExportError),
    /// A global subscriber was already installed (only possible when embedding brigade).
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// What the trace layer sees when traces are exported: brigade's spans (all at `info`) and
/// the events inside them at `info` and above, as with the default `log.filter`.
const TRACED_LEVEL: &str = "info";

/// Installs the global log subscriber, and trace export when the `OTEL_*` variables ask for
/// it ([`crate::traces`]); `service` names the process in exported traces unless
/// `OTEL_SERVICE_NAME` does, and `without_endpoint` says what happens to spans when no variable
/// names an endpoint.
pub fn init(
    settings: &LogSettings,
    service: &str,
    without_endpoint: crate::traces::WithoutEndpoint,
) -> Result<(), TelemetryError> {
    let filter = EnvFilter::builder()
        .parse(&settings.filter)
        .map_err(|error| TelemetryError::Filter(error.to_string()))?;
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let traces =
        crate::traces::provider_from_env(service, without_endpoint)?.map(crate::traces::layer);
    let output: Box<dyn Layer<Registry> + Send + Sync> = if json {
        Box::new(JsonLayer)
    } else {
        Box::new(
            tracing_subscriber::fmt::layer()
                .with_target(true)
                .with_writer(|| ConsoleLine(Vec::new())),
        )
    };
    let layers = match traces {
        // One filter for everything, checked once per callsite.
        None => filter.and_then(LogCounter).and_then(output).boxed(),
        // Traces keep their spans whatever `log.filter` says: `warn` quiets the log, it must
        // not switch tracing off. So the filter applies to the log layers only.
        Some(traces) => traces
            .with_filter(EnvFilter::new(TRACED_LEVEL).and(filter_fn(exported)))
            .and_then(LogCounter.and_then(output).with_filter(filter))
            .boxed(),
    };
    let result = tracing_subscriber::registry().with(layers).try_init();
    result.map_err(|_| TelemetryError::AlreadyInitialised)?;
    SPANLESS_REQUESTS.store(json, std::sync::atomic::Ordering::Relaxed);
    crate::error_event::install_panic_hook();
    Ok(())
}

/// Whether the trace layer takes `metadata`: every span but an untraced request's, and the
/// events of `warn` and `error` — a span's mistakes, shown inline by any trace viewer.
///
/// Events below `warn` stay out of spans. tracing-opentelemetry would otherwise copy every log
/// line written inside a span into it as a span event (the access-log line with its dozen
/// fields, once per request): encoded, sent and stored a second time beside the central log,
/// where brigade's trace view and Grafana's trace-to-logs link already find a span's lines by
/// its id. It was a sixth of what tracing added to a cached read.
fn exported(metadata: &tracing::Metadata<'_>) -> bool {
    if metadata.is_span() {
        return !crate::request_context::is_untraced_request_span(metadata);
    }
    *metadata.level() <= tracing::Level::WARN
}

/// Whether requests that are not traced go without a `request` span: set when the JSON layer
/// is the output, which writes their ids from the task's context instead ([`write_request_ids`]).
/// The terminal's pretty output reads ids only from spans, so it keeps the span.
static SPANLESS_REQUESTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// See [`SPANLESS_REQUESTS`].
pub(crate) fn spanless_requests() -> bool {
    SPANLESS_REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs a write to the terminal; see [`set_console_interlude`].
type Interlude = Box<dyn Fn(&mut dyn FnMut()) + Send + Sync>;

static CONSOLE_INTERLUDE: std::sync::OnceLock<Interlude> = std::sync::OnceLock::new();

/// Lets a live terminal view (`brigade up`'s status table) get out of the way of log lines:
/// every pretty log line is written inside `interlude`, which can clear the view, run the
/// write, and draw the view again. Without one, lines are written directly. Set once.
pub fn set_console_interlude(interlude: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static) {
    let _ = CONSOLE_INTERLUDE.set(Box::new(interlude));
}

/// Writes `text` to stderr for a person at the terminal, inside the console interlude (so a live
/// view steps aside for it, as for log lines).
pub fn print_for_people(text: &str) {
    in_interlude(|| {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    });
}

/// Runs a write to the terminal inside the console interlude, if one is set.
fn in_interlude(mut write: impl FnMut()) {
    match CONSOLE_INTERLUDE.get() {
        Some(interlude) => interlude(&mut write),
        None => write(),
    }
}

/// One pretty log line, written to stdout as a whole when the formatter is done with it.
struct ConsoleLine(Vec<u8>);

impl Write for ConsoleLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleLine {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        in_interlude(|| {
            let _ = std::io::stdout().lock().write_all(&line);
        });
    }
}

/// The counter of log events by level.
pub const LOG_EVENTS: &str = "brigade_log_events_total";

/// Counts every event that passes the filter in [`LOG_EVENTS`], by level.
///
/// A layer of its own (rather than part of the JSON writer) so that pretty output counts too.
#[derive(Debug, Default)]
pub struct LogCounter;

impl<S: Subscriber> tracing_subscriber::Layer<S> for LogCounter {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = event.metadata().level();
        match LOG_COUNTERS.get() {
            Some(counters) => counters[level_index(level)].increment(1),
            None => metrics::counter!(LOG_EVENTS, "level" => level_name(level)).increment(1),
        }
    }
}

/// The counter handle of each level, in [`level_index`] order. Looking a counter up by name and
/// label builds a key and hashes it on every log line; the handle is an `Arc`. Set when the
/// recorder is installed ([`register_log_counters`]); before that, lines are counted by lookup
/// (into whatever recorder is current, as in tests).
static LOG_COUNTERS: std::sync::OnceLock<[metrics::Counter; 5]> = std::sync::OnceLock::new();

const LEVELS: [tracing::Level; 5] = [
    tracing::Level::ERROR,
    tracing::Level::WARN,
    tracing::Level::INFO,
    tracing::Level::DEBUG,
    tracing::Level::TRACE,
];

fn level_index(level: &tracing::Level) -> usize {
    LEVELS.iter().position(|l| l == level).unwrap_or(0)
}

/// Creates the log counter of every level at zero in the global recorder (a series
/// `promtool` can check from the start) and keeps their handles for [`LogCounter`]. Called
/// once the global recorder is installed.
pub(crate) fn register_log_counters() {
    let counters = LEVELS.map(|level| metrics::counter!(LOG_EVENTS, "level" => level_name(&level)));
    for counter in &counters {
        counter.increment(0);
    }
    let _ = LOG_COUNTERS.set(counters);
}

/// Writes every event as one JSON line on stdout.
///
/// Lines are rendered straight into a byte buffer (span fields once, when the span opens),
/// because the access log writes one line per request and a map of values per line showed up
/// as a quarter of a cached read's cost.
#[derive(Debug, Default)]
pub struct JsonLayer;

/// Fields recorded on a span, already rendered as `"key":value` pairs separated by commas.
struct SpanFields(Vec<u8>);

impl<S> tracing_subscriber::Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Vec::with_capacity(128);
        attrs.record(&mut KeptFields::new(attrs.metadata().name(), &mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut KeptFields::new(span.name(), &mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        crate::log_output::write_line(&render_event(event, &ctx));
    }
}

fn render_event<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Vec<u8>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let metadata = event.metadata();
    let mut fields = Vec::with_capacity(128);
    let mut visitor = JsonVisitor::new(&mut fields);
    event.record(&mut visitor);
    let message = visitor.message.take();

    let mut line = Vec::with_capacity(256 + fields.len());
    line.extend_from_slice(b"{\"timestamp\":\"");
    crate::log_time::write_now(&mut line);
    line.extend_from_slice(b"\",\"level\":\"");
    line.extend_from_slice(level_name(metadata.level()).as_bytes());
    line.extend_from_slice(b"\",\"message\":");
    match message {
        Some(message) => line.extend_from_slice(&message),
        None => line.extend_from_slice(b"\"\""),
    }
    line.extend_from_slice(b",\"target\":");
    write_json_str(&mut line, metadata.target());
    write_request_ids(&mut line);
    if let Some(scope) = ctx.event_scope(event) {
        for span in scope.from_root() {
            if let Some(span_fields) = span.extensions().get::<SpanFields>()
                && !span_fields.0.is_empty()
            {
                line.push(b',');
                line.extend_from_slice(&span_fields.0);
            }
        }
    }
    if !fields.is_empty() {
        line.push(b',');
        line.extend_from_slice(&fields);
    }
    line.extend_from_slice(b"}\n");
    line
}

/// The ids of the request this task serves, from the task's context — the one place they are
/// decided, for a sampled request (whose `request` span is for the trace) and for one that is
/// not traced (which has no span, see `request::observe`) alike. Nothing outside a request.
fn write_request_ids(line: &mut Vec<u8>) {
    let _ = crate::request_context::CURRENT.try_with(|context| {
        for (name, value) in [
            ("request_id", &context.request_id),
            ("trace_id", &context.trace_id),
            ("span_id", &context.span_id),
        ] {
            line.extend_from_slice(b",\"");
            line.extend_from_slice(name.as_bytes());
            line.extend_from_slice(b"\":");
            write_json_str(line, value);
        }
    });
}

fn level_name(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warn",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG => "debug",
        tracing::Level::TRACE => "trace",
    }
}

/// Whether `byte` may stand in a JSON string as it is: JSON escapes only control characters,
/// `"` and `\\` (serde_json escapes exactly these, and nothing else).
fn plain_json_byte(byte: u8) -> bool {
    byte >= 0x20 && byte != b'"' && byte != b'\\'
}

/// Whether `bytes` hold anything JSON must escape, looked for eight bytes at a time (a
/// byte-by-byte check cost as much as escaping): a word has a byte below 0x20 when subtracting
/// 0x20 from every byte borrows into a byte whose top bit was clear, and a byte equal to `"` or
/// `\\` when the word XOR that byte repeated has a zero byte. A borrow can only mark a byte
/// wrongly above a byte that truly matched, so "any" is exact.
fn needs_escaping(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const TOPS: u64 = u64::from_ne_bytes([0x80; 8]);
    let any_below =
        |word: u64, limit: u8| word.wrapping_sub(ONES * u64::from(limit)) & !word & TOPS;
    let any_equal = |word: u64, byte: u8| any_below(word ^ (ONES * u64::from(byte)), 1);
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        if any_below(word, 0x20) | any_equal(word, b'"') | any_equal(word, b'\\') != 0 {
            return true;
        }
    }
    !words.remainder().iter().all(|&byte| plain_json_byte(byte))
}

/// Appends `value` as a JSON string. Field names, routes, ids and most messages need no
/// escaping, so they are copied whole; only a string with something to escape goes through
/// serde_json's escaper (which costs a call per byte).
fn write_json_str(out: &mut Vec<u8>, value: &str) {
    use fmt::Write as _;
    out.reserve(value.len() + 2);
    out.push(b'"');
    let _ = JsonStringBody(out).write_str(value);
    out.push(b'"');
}

/// A `fmt::Write` that appends what it is given to a JSON string being written, escaped, so a
/// `Display`/`Debug` value (a message with arguments, `%method`) is rendered without a `String`
/// of its own. The caller writes the surrounding quotes.
struct JsonStringBody<'a>(&'a mut Vec<u8>);

impl fmt::Write for JsonStringBody<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if !needs_escaping(text.as_bytes()) {
            self.0.extend_from_slice(text.as_bytes());
        } else {
            // serde_json's escaper writes whole strings, quotes included; they are cut off here.
            // Writing a &str into a Vec cannot fail.
            let mut quoted = Vec::with_capacity(text.len() + 8);
            let _ = serde_json::to_writer(&mut quoted, text);
            self.0.extend_from_slice(&quoted[1..quoted.len() - 1]);
        }
        Ok(())
    }
}

/// Appends `value`'s `Debug` rendering (which for `%field` and messages is their `Display`) as
/// a JSON string.
fn write_json_debug(out: &mut Vec<u8>, value: &dyn fmt::Debug) {
    use fmt::Write as _;
    out.push(b'"');
    let _ = write!(JsonStringBody(out), "{value:?}");
    out.push(b'"');
}

/// Renders `tracing` fields as `"key":value` pairs, keeping numbers and booleans typed; the
/// event's `message` is held apart so it can lead the line.
struct JsonVisitor<'a> {
    out: &'a mut Vec<u8>,
    /// The message, already a JSON string (quotes included).
    message: Option<Vec<u8>>,
}

impl<'a> JsonVisitor<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, message: None }
    }

    fn key(&mut self, field: &Field) {
        if !self.out.is_empty() {
            self.out.push(b',');
        }
        write_json_str(self.out, field.name());
        self.out.push(b':');
    }

    fn text(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let mut message = Vec::with_capacity(value.len() + 2);
            write_json_str(&mut message, value);
            self.message = Some(message);
            return;
        }
        self.key(field);
        write_json_str(self.out, value);
    }

    fn number(&mut self, field: &Field, value: impl serde::Serialize) {
        self.key(field);
        let _ = serde_json::to_writer(&mut *self.out, &value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.number(field, value);
        } else {
            self.key(field);
            self.out.extend_from_slice(b"null");
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, &error_chain(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let mut message = Vec::with_capacity(64);
            write_json_debug(&mut message, value);
            self.message = Some(message);
            return;
        }
        self.key(field);
        write_json_debug(self.out, value);
    }
}

/// Whether the log lines written inside a span named `span` carry its field `field`.
///
/// A span named `request` gives none: a request's ids come from the task's context
/// ([`write_request_ids`]), once, whether or not the request was sampled (a replica's sampled
/// request has no `tracing` span at all, see `traces::ServerSpan`). Other spans give their
/// fields but OpenTelemetry's `otel.*` instructions (span name, kind, status), which are for the
/// trace, not the log.
fn span_field_kept(span: &str, field: &str) -> bool {
    span != "request" && !field.starts_with("otel.")
}

/// A [`JsonVisitor`] for a span's fields, passing on only those its log lines carry
/// ([`span_field_kept`]).
struct KeptFields<'a> {
    span: &'static str,
    json: JsonVisitor<'a>,
}

impl<'a> KeptFields<'a> {
    fn new(span: &'static str, out: &'a mut Vec<u8>) -> Self {
        Self {
            span,
            json: JsonVisitor::new(out),
        }
    }

    /// Runs `record` on the JSON visitor when the span's lines carry `field`.
    fn keep(&mut self, field: &Field, record: impl FnOnce(&mut JsonVisitor<'a>)) {
        if span_field_kept(self.span, field.name()) {
            record(&mut self.json);
        }
    }
}

impl Visit for KeptFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.keep(field, |json| json.record_f64(field, value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.keep(field, |json| json.record_i64(field, value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.keep(field, |json| json.record_u64(field, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.keep(field, |json| json.record_bool(field, value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.keep(field, |json| json.record_str(field, value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.keep(field, |json| json.record_error(field, value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.keep(field, |json| json.record_debug(field, value));
    }
}

/// An error and its sources, `outer: inner: root`, so the root cause reaches the log (reqwest's
/// top-level message alone, "error sending request", does not say whether the connection was
/// refused or timed out).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::Layer;

    /// Records what the trace layer's filter says of every span and event.
    struct Exported(Arc<Mutex<Vec<(String, bool)>>>);

    impl<S: Subscriber> Layer<S> for Exported {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            let metadata = attrs.metadata();
            let verdict = (metadata.name().to_owned(), exported(metadata));
            self.0.lock().unwrap().push(verdict);
        }
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let metadata = event.metadata();
            let verdict = (metadata.level().to_string(), exported(metadata));
            self.0.lock().unwrap().push(verdict);
        }
    }

    #[test]
    fn traces_take_spans_and_the_mistakes_in_them_not_every_log_line() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Exported(Arc::clone(&seen)));
        tracing::subscriber::with_default(subscriber, || {
            let _traced = tracing::info_span!("request", otel.kind = "server").entered();
            tracing::info!("served");
            tracing::warn!("slow");
            tracing::error!("failed");
            let _untraced = tracing::info_span!("request", request_id = "r").entered();
        });
        let seen = seen.lock().unwrap().clone();
        let want = [
            ("request", true),
            ("INFO", false),
            ("WARN", true),
            ("ERROR", true),
            ("request", false),
        ]
        .map(|(what, taken)| (what.to_owned(), taken));
        assert_eq!(seen, want);
    }

    /// The context of a sampled request `r-1` with these ids.
    fn request_context(trace_id: &str, span_id: &str) -> crate::request_context::RequestContext {
        crate::request_context::RequestContext {
            request_id: "r-1".to_owned(),
            trace_id: trace_id.to_owned(),
            span_id: span_id.to_owned(),
            flags: "01".to_owned(),
            parent_span_id: None,
            tracestate: None,
        }
    }

    /// Captures rendered lines instead of writing them to stdout.
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl<S> Layer<S> for Capture
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            JsonLayer.on_new_span(attrs, id, ctx);
        }
        fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
            JsonLayer.on_record(id, values, ctx);
        }
        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8(render_event(event, &ctx)).unwrap());
        }
    }

    #[test]
    fn log_events_are_counted_by_level() {
        let renderer = crate::metrics::renderer();
        let count = |text: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with("brigade_log_events_total{level=\"error\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        let before = count(&renderer.render());
        let subscriber = tracing_subscriber::registry().with(LogCounter);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("one");
            tracing::error!("two");
            tracing::info!("not an error");
        });
        assert_eq!(count(&renderer.render()) - before, 2.0);
    }

    #[test]
    fn span_fields_reach_the_top_level() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("checkout", order_id = "o-1", shop = "s-1");
            let _guard = span.enter();
            tracing::warn!(
                status = 503,
                ok = false,
                ratio = 0.5,
                note = "a \"quoted\" word",
                "order failed"
            );
        });
        let lines = lines.lock().unwrap();
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["message"], "order failed");
        assert_eq!(line["level"], "warn");
        assert_eq!(line["order_id"], "o-1");
        assert_eq!(line["shop"], "s-1");
        assert!(
            line.get("request_id").is_none(),
            "outside a request: {line}"
        );
        assert_eq!(line["status"], 503);
        assert_eq!(line["ok"], false);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["note"], "a \"quoted\" word");
        assert_eq!(line["target"], module_path!());
        assert!(lines[0].starts_with("{\"timestamp\":"), "{}", lines[0]);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    /// A sampled request's lines carry the ids of the task's context, once, as an unsampled
    /// request's do, and none of its span's OpenTelemetry attributes; another span gives its
    /// fields without the `otel.*` instructions.
    #[test]
    fn a_lines_span_fields_do_not_depend_on_sampling() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        let context = request_context("t-1", "s-1");
        let in_request = || {
            let request = tracing::info_span!(
                "request",
                otel.name = "GET /api/v1/shops",
                otel.kind = "server",
                http.route = "/api/v1/shops",
                request_id = "r-1",
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
            );
            request.record("trace_id", "t-1");
            request.record("span_id", "s-1");
            let _request = request.enter();
            let store = tracing::info_span!(
                "store",
                otel.name = "SELECT shops",
                otel.status_code = tracing::field::Empty,
                db.system.name = "sqlite",
            );
            store.record("otel.status_code", "ERROR");
            let _store = store.enter();
            tracing::info!("inside");
        };
        tracing::subscriber::with_default(subscriber, || {
            crate::request_context::CURRENT.sync_scope(context, in_request);
        });
        let lines = lines.lock().unwrap();
        for id in ["request_id", "trace_id", "span_id"] {
            assert_eq!(
                lines[0].matches(&format!("\"{id}\":")).count(),
                1,
                "{}",
                lines[0]
            );
        }
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        for (key, value) in [
            ("request_id", "r-1"),
            ("trace_id", "t-1"),
            ("span_id", "s-1"),
            ("db.system.name", "sqlite"),
        ] {
            assert_eq!(line[key], value, "{key}: {line}");
        }
        for absent in ["otel.name", "otel.kind", "otel.status_code", "http.route"] {
            assert!(line.get(absent).is_none(), "{absent}: {line}");
        }
    }

    /// Strings copied whole and strings escaped render as serde_json renders them, whichever
    /// way they reach the line (a message with arguments, `%display`, `?debug`, a `&str`).
    #[test]
    fn every_kind_of_field_is_escaped_as_serde_json_escapes_it() {
        let nasty = "tab\there \"quoted\" back\\slash\nnew line \u{1} é \u{7f}";
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("work", path = nasty, shown = %nasty);
            let _guard = span.enter();
            tracing::info!(debugged = ?nasty, plain = "plain", "said {nasty}");
            tracing::info!("{}", "plain message");
        });
        let lines = lines.lock().unwrap();
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["message"], format!("said {nasty}"));
        assert_eq!(line["path"], nasty);
        assert_eq!(line["shown"], nasty);
        assert_eq!(line["debugged"], format!("{nasty:?}"));
        assert_eq!(line["plain"], "plain");
        let quoted = serde_json::to_string(nasty).unwrap();
        assert!(
            lines[0].contains(&format!("\"path\":{quoted}")),
            "{}",
            lines[0]
        );
        let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["message"], "plain message");
    }

    /// The word-at-a-time check agrees with the byte-by-byte rule for every byte value at every
    /// position of a string longer than one word, with plain bytes around it.
    #[test]
    fn the_escaping_check_finds_every_byte_json_escapes_at_every_position() {
        for byte in 0..=255u8 {
            for position in 0..19 {
                let mut bytes = vec![b'a'; 19];
                bytes[position] = byte;
                assert_eq!(
                    needs_escaping(&bytes),
                    !plain_json_byte(byte),
                    "byte {byte:#04x} at {position}"
                );
            }
        }
        assert!(!needs_escaping(b""));
        assert!(!needs_escaping("caf\u{e9} \u{7f} ~".as_bytes()));
    }

    /// What an error event's writer logs, its reader (the supervisor's grouping) parses back.
    #[test]
    fn error_events_parse_back_from_their_log_line() {
        use crate::error_event::{ErrorEvent, ErrorKind};
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        let event = ErrorEvent::new(ErrorKind::Panic, "index out of bounds: the len is 3")
            .with_frames(["crates/x/src/y.rs:12:5".to_owned()])
            .with_route("/api/v1/orders/{order_id}");
        let context = request_context("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
        tracing::subscriber::with_default(subscriber, || {
            crate::request_context::CURRENT.sync_scope(context, || event.log());
            ErrorEvent::new(ErrorKind::ClientFetch, "two\nlines").log();
        });
        let lines = lines.lock().unwrap();
        let back = ErrorEvent::from_log_line(&lines[0]).unwrap();
        assert_eq!(
            back.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            ErrorEvent {
                trace_id: None,
                ..back
            },
            event
        );
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["level"], "error");
        let bare = ErrorEvent::from_log_line(&lines[1]).unwrap();
        assert!(bare.route.is_none() && bare.frames.is_empty());
    }
}

//! Log output: one JSON object per line (or pretty text on a terminal).
//!
//! Every line carries `timestamp` (RFC 3339, UTC), `level`, `message`, `target`, the fields of
//! the spans it happened in (so `request_id`, `trace_id` and `span_id` appear at the top level of
//! every line written while serving a request) and the event's own fields. A log shipper can index
//! these lines without parsing rules.

use std::fmt;
use std::io::{IsTerminal, Write};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `log.filter` is not valid `tracing` filter syntax.
    #[error("invalid configuration: log.filter: {0}")]
    Filter(String),
    /// A global subscriber was already installed (only possible when embedding brigade).
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// Installs the global log subscriber.
pub fn init(settings: &LogSettings) -> Result<(), TelemetryError> {
    let filter = EnvFilter::builder()
        .parse(&settings.filter)
        .map_err(|error| TelemetryError::Filter(error.to_string()))?;
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry.with(JsonLayer).try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_target(true))
            .try_init()
    };
    result.map_err(|_| TelemetryError::AlreadyInitialised)
}

/// Writes every event as one JSON line on stdout.
#[derive(Debug, Default)]
pub struct JsonLayer;

/// Fields recorded on a span, kept in the span's extensions until it closes.
struct SpanFields(Map<String, Value>);

impl<S> tracing_subscriber::Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut JsonVisitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let line = render_event(event, &ctx);
        // One write per line so that lines from concurrent tasks never interleave.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

fn render_event<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> String
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let metadata = event.metadata();
    let mut object = Map::new();
    object.insert(
        "timestamp".into(),
        Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    );
    object.insert(
        "level".into(),
        Value::String(metadata.level().as_str().to_ascii_lowercase()),
    );
    object.insert("message".into(), Value::String(String::new()));
    object.insert("target".into(), Value::String(metadata.target().to_owned()));
    if let Some(scope) = ctx.event_scope(event) {
        for span in scope.from_root() {
            if let Some(fields) = span.extensions().get::<SpanFields>() {
                for (key, value) in &fields.0 {
                    object.insert(key.clone(), value.clone());
                }
            }
        }
    }
    event.record(&mut JsonVisitor(&mut object));
    let mut line = serde_json::to_string(&object).unwrap_or_default();
    line.push('\n');
    line
}

/// Records `tracing` fields as JSON values, keeping numbers and booleans typed.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.0.insert(field.name().to_owned(), value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), error_chain(value).into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

/// An error and its sources, `outer: inner: root`, so the root cause reaches the log.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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

    /// Captures rendered lines instead of writing them to stdout.
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl<S> Layer<S> for Capture
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            JsonLayer.on_new_span(attrs, id, ctx);
        }
        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            self.0.lock().unwrap().push(render_event(event, &ctx));
        }
    }

    #[test]
    fn span_fields_reach_the_top_level() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "r-1", trace_id = "t-1");
            let _guard = span.enter();
            tracing::warn!(status = 503, ok = false, "order failed");
        });
        let lines = lines.lock().unwrap();
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["message"], "order failed");
        assert_eq!(line["level"], "warn");
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["trace_id"], "t-1");
        assert_eq!(line["status"], 503);
        assert_eq!(line["ok"], false);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}

//! Finished spans written straight into an OTLP `ExportTraceServiceRequest` body (protobuf).
//!
//! The usual path converts each span into `opentelemetry-proto`'s message structs (a `String`
//! for every attribute key and value, the resource cloned into every request) and lets prost
//! encode those, which recomputes each nested message's length at every level above it. On a
//! replica with every request traced that came to about 24,000 instructions of a cached
//! 46,000-instruction read (docs/benchmarks.md, "Spans written straight to the wire"). Here
//! each span is written once from the SDK's `SpanData`, with prost's wire primitives, into
//! one buffer per instrumentation scope; the message lengths above the spans are sums of
//! lengths already known, and the resource is encoded once per exporter.
//!
//! The field numbers are OTLP's (`opentelemetry/proto/trace/v1/trace.proto`, stable since
//! OTLP 1.0). A test decodes the output with `opentelemetry-proto`'s own types and compares it
//! with that crate's conversion of the same spans.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use prost::bytes::BufMut as _;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// A `Resource` message, encoded once (it is the same in every request of a process).
#[derive(Debug, Clone, Default)]
pub(super) struct EncodedResource {
    /// The `Resource` message's body.
    body: Vec<u8>,
    /// `ResourceSpans.schema_url`.
    schema_url: String,
}

impl EncodedResource {
    pub(super) fn new(resource: &Resource) -> Self {
        let mut body = Vec::new();
        for (key, value) in resource.iter() {
            key_value(&mut body, 1, key.as_str(), value);
        }
        Self {
            body,
            schema_url: resource.schema_url().unwrap_or_default().to_owned(),
        }
    }
}

/// The body of an OTLP/HTTP trace export holding `spans`, with `resource` as their resource.
pub(super) fn export_request(spans: &[SpanData], resource: &EncodedResource) -> Vec<u8> {
    let scopes = spans_by_scope(spans);
    // ResourceSpans: resource (1), scope_spans (2), schema_url (3).
    let mut resource_spans_len =
        delimited_len(1, resource.body.len()) + string_len(3, &resource.schema_url);
    let scope_lens: Vec<usize> = scopes.iter().map(ScopeSpans::len).collect();
    resource_spans_len += scope_lens
        .iter()
        .map(|len| delimited_len(2, *len))
        .sum::<usize>();
    let mut out = Vec::with_capacity(delimited_len(1, resource_spans_len));
    // ExportTraceServiceRequest: resource_spans (1).
    message_head(&mut out, 1, resource_spans_len);
    message_head(&mut out, 1, resource.body.len());
    out.put_slice(&resource.body);
    for (scope, len) in scopes.iter().zip(scope_lens) {
        message_head(&mut out, 2, len);
        scope.write(&mut out);
    }
    string(&mut out, 3, &resource.schema_url);
    out
}

/// The spans of one instrumentation scope, already encoded (each with its field key and length).
struct ScopeSpans<'a> {
    scope: &'a InstrumentationScope,
    /// The `InstrumentationScope` message's body.
    scope_body: Vec<u8>,
    spans: Vec<u8>,
}

impl ScopeSpans<'_> {
    /// ScopeSpans: scope (1), spans (2), schema_url (3).
    fn len(&self) -> usize {
        delimited_len(1, self.scope_body.len())
            + self.spans.len()
            + string_len(3, self.scope.schema_url().unwrap_or_default())
    }

    fn write(&self, out: &mut Vec<u8>) {
        message_head(out, 1, self.scope_body.len());
        out.put_slice(&self.scope_body);
        out.put_slice(&self.spans);
        string(out, 3, self.scope.schema_url().unwrap_or_default());
    }
}

/// Groups `spans` by scope in the order the scopes first appear (a process has one or two).
fn spans_by_scope(spans: &[SpanData]) -> Vec<ScopeSpans<'_>> {
    let mut scopes: Vec<ScopeSpans<'_>> = Vec::new();
    let mut scratch = Vec::with_capacity(512);
    for span in spans {
        let at = match scopes
            .iter()
            .position(|s| *s.scope == span.instrumentation_scope)
        {
            Some(at) => at,
            None => {
                scopes.push(ScopeSpans {
                    scope: &span.instrumentation_scope,
                    scope_body: scope_body(&span.instrumentation_scope),
                    spans: Vec::with_capacity(spans.len() * 320),
                });
                scopes.len() - 1
            }
        };
        scratch.clear();
        span_body(&mut scratch, span);
        let spans = &mut scopes[at].spans;
        message_head(spans, 2, scratch.len());
        spans.put_slice(&scratch);
    }
    scopes
}

/// InstrumentationScope: name (1), version (2), attributes (3).
fn scope_body(scope: &InstrumentationScope) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, 1, scope.name());
    string(&mut body, 2, scope.version().unwrap_or_default());
    for attribute in scope.attributes() {
        key_value(&mut body, 3, attribute.key.as_str(), &attribute.value);
    }
    body
}

/// A `Span` message's body (field numbers from trace.proto).
fn span_body(out: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    bytes(out, 1, &context.trace_id().to_bytes());
    bytes(out, 2, &context.span_id().to_bytes());
    string(out, 3, &context.trace_state().header());
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        bytes(out, 4, &span.parent_span_id.to_bytes());
    }
    string(out, 5, &span.name);
    varint(out, 6, span_kind(&span.span_kind));
    fixed64(out, 7, nanos(span.start_time));
    fixed64(out, 8, nanos(span.end_time));
    for attribute in &span.attributes {
        key_value(out, 9, attribute.key.as_str(), &attribute.value);
    }
    varint(out, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        let mut body = Vec::new();
        fixed64(&mut body, 1, nanos(event.timestamp));
        string(&mut body, 2, &event.name);
        attributes(&mut body, 3, &event.attributes);
        varint(&mut body, 4, u64::from(event.dropped_attributes_count));
        message(out, 11, &body);
    }
    varint(out, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        let mut body = Vec::new();
        let linked = &link.span_context;
        bytes(&mut body, 1, &linked.trace_id().to_bytes());
        bytes(&mut body, 2, &linked.span_id().to_bytes());
        string(&mut body, 3, &linked.trace_state().header());
        attributes(&mut body, 4, &link.attributes);
        varint(&mut body, 5, u64::from(link.dropped_attributes_count));
        fixed32(
            &mut body,
            6,
            span_flags(linked.is_remote(), linked.trace_flags().to_u8()),
        );
        message(out, 13, &body);
    }
    varint(out, 14, u64::from(span.links.dropped_count));
    // Status: message (2), code (3); always present, as the SDK's conversion writes it.
    let (code, description) = match &span.status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description.as_ref()),
    };
    let status_len = string_len(2, description) + varint_len(3, code);
    message_head(out, 15, status_len);
    string(out, 2, description);
    varint(out, 3, code);
    fixed32(
        out,
        16,
        span_flags(span.parent_span_is_remote, context.trace_flags().to_u8()),
    );
}

/// OTLP's span flags: the W3C trace flags, and whether the parent (or linked span) is remote.
fn span_flags(remote: bool, trace_flags: u8) -> u32 {
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    u32::from(trace_flags) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

fn span_kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

fn attributes(out: &mut Vec<u8>, tag: u32, attributes: &[KeyValue]) {
    for attribute in attributes {
        key_value(out, tag, attribute.key.as_str(), &attribute.value);
    }
}

/// A `KeyValue` message as field `tag`: key (1), value (2, an `AnyValue`, always present).
fn key_value(out: &mut Vec<u8>, tag: u32, key: &str, value: &Value) {
    let value_len = any_value_len(value);
    message_head(out, tag, string_len(1, key) + delimited_len(2, value_len));
    string(out, 1, key);
    message_head(out, 2, value_len);
    any_value(out, value);
}

/// An `AnyValue` body: one field of its `oneof`, written even when it holds the default.
fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(value) => {
            encode_key(2, WireType::Varint, out);
            encode_varint(u64::from(*value), out);
        }
        Value::I64(value) => {
            encode_key(3, WireType::Varint, out);
            encode_varint(*value as u64, out);
        }
        Value::F64(value) => {
            encode_key(4, WireType::SixtyFourBit, out);
            out.put_f64_le(*value);
        }
        Value::String(value) => always_string(out, 1, value.as_str()),
        Value::Array(array) => {
            message_head(out, 5, array_len(array));
            array_values(out, array);
        }
        other => always_string(out, 1, &other.to_string()),
    }
}

fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => key_len(2) + 1,
        Value::I64(value) => key_len(3) + encoded_len_varint(*value as u64),
        Value::F64(_) => key_len(4) + 8,
        Value::String(value) => delimited_len(1, value.as_str().len()),
        Value::Array(array) => delimited_len(5, array_len(array)),
        other => delimited_len(1, other.to_string().len()),
    }
}

/// An `ArrayValue` body: values (1), each an `AnyValue` message.
fn array_values(out: &mut Vec<u8>, array: &Array) {
    for value in array_items(array) {
        message_head(out, 1, any_value_len(&value));
        any_value(out, &value);
    }
}

fn array_len(array: &Array) -> usize {
    array_items(array)
        .map(|value| delimited_len(1, any_value_len(&value)))
        .sum()
}

/// An array's items as values (arrays of attributes are rare: a copy each is fine).
fn array_items(array: &Array) -> Box<dyn Iterator<Item = Value> + '_> {
    match array {
        Array::Bool(values) => Box::new(values.iter().map(|v| Value::Bool(*v))),
        Array::I64(values) => Box::new(values.iter().map(|v| Value::I64(*v))),
        Array::F64(values) => Box::new(values.iter().map(|v| Value::F64(*v))),
        Array::String(values) => Box::new(values.iter().map(|v| Value::String(v.clone()))),
        other => Box::new(std::iter::once(Value::String(other.to_string().into()))),
    }
}

/// A field key and length for a message of `len` bytes that follows.
fn message_head(out: &mut Vec<u8>, tag: u32, len: usize) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

/// A message field, always written (proto3 keeps a set message even when empty).
fn message(out: &mut Vec<u8>, tag: u32, body: &[u8]) {
    message_head(out, tag, body.len());
    out.put_slice(body);
}

/// The size of a length-delimited field (message, string, bytes) of `len` bytes.
fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A `string` field; proto3 leaves an empty one out.
fn string(out: &mut Vec<u8>, tag: u32, value: &str) {
    bytes(out, tag, value.as_bytes());
}

fn always_string(out: &mut Vec<u8>, tag: u32, value: &str) {
    message(out, tag, value.as_bytes());
}

fn string_len(tag: u32, value: &str) -> usize {
    if value.is_empty() {
        0
    } else {
        delimited_len(tag, value.len())
    }
}

/// A `bytes` field; proto3 leaves an empty one out.
fn bytes(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    if !value.is_empty() {
        message(out, tag, value);
    }
}

/// A varint field (`uint32`, enum); proto3 leaves a zero out.
fn varint(out: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(value, out);
    }
}

fn varint_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

fn fixed64(out: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::SixtyFourBit, out);
        out.put_u64_le(value);
    }
}

fn fixed32(out: &mut Vec<u8>, tag: u32, value: u32) {
    if value != 0 {
        encode_key(tag, WireType::ThirtyTwoBit, out);
        out.put_u32_le(value);
    }
}

#[cfg(test)]
mod tests;

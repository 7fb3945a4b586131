use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::Message as _;

use super::{EncodedResource, export_request};

fn context(trace: u128, span: u64, remote: bool, state: &str) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::SAMPLED,
        remote,
        state.parse::<TraceState>().unwrap(),
    )
}

/// Spans with every kind of field OTLP carries: each attribute type (an empty string and a
/// zero among them), events, links, statuses, remote and local parents, and two scopes.
fn spans() -> Vec<SpanData> {
    let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_733_000_000_123_456_789);
    let brigade = InstrumentationScope::builder("brigade").build();
    let other = InstrumentationScope::builder("other")
        .with_version("1.2.3")
        .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
        .with_attributes([KeyValue::new("scope.attr", 7_i64)])
        .build();
    let mut events = SpanEvents::default();
    events.events.push(Event::new(
        "request failed",
        start + Duration::from_millis(3),
        vec![
            KeyValue::new("level", "ERROR"),
            KeyValue::new("status", 503_i64),
        ],
        1,
    ));
    events.dropped_count = 2;
    let mut links = SpanLinks::default();
    links.links.push(Link::new(
        context(0xabc, 0xdef, true, "vendor=value"),
        vec![KeyValue::new("brigade.retry", true)],
        0,
    ));
    let server = SpanData {
        span_context: context(
            0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            0x00f0_67aa_0ba9_02b7,
            false,
            "rojo=00f067aa0ba902b7",
        ),
        parent_span_id: SpanId::from(0x1111),
        parent_span_is_remote: true,
        span_kind: SpanKind::Server,
        name: Cow::Borrowed("GET /api/v1/shops/{shop_id}/menu"),
        start_time: start,
        end_time: start + Duration::from_micros(850),
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 200_i64),
            KeyValue::new("negative", -5_i64),
            KeyValue::new("zero", 0_i64),
            KeyValue::new("empty", ""),
            KeyValue::new("ratio", 0.25_f64),
            KeyValue::new("brigade.cache.hit", false),
            KeyValue::new(
                "names",
                opentelemetry::Value::Array(Array::String(vec![
                    StringValue::from("a"),
                    StringValue::from(""),
                ])),
            ),
            KeyValue::new(
                "ints",
                opentelemetry::Value::Array(Array::I64(vec![1, 0, -1])),
            ),
        ],
        dropped_attributes_count: 1,
        events,
        links,
        status: Status::error("upstream answered 503"),
        instrumentation_scope: brigade.clone(),
    };
    let child = SpanData {
        span_context: context(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736, 0x2222, false, ""),
        parent_span_id: SpanId::from(0x00f0_67aa_0ba9_02b7),
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: Cow::Owned("SELECT items".to_owned()),
        start_time: start + Duration::from_micros(10),
        end_time: start + Duration::from_micros(400),
        attributes: vec![KeyValue::new("db.system.name", "sqlite")],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Ok,
        instrumentation_scope: other,
    };
    let root = SpanData {
        span_context: context(0x9, 0x3333, false, ""),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed("scrape"),
        start_time: start,
        end_time: start,
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: brigade,
    };
    vec![server, child, root]
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("brigade-serve")
        .with_attributes([
            KeyValue::new("service.instance.id", "replica-1"),
            KeyValue::new("deployment.environment.name", "test"),
        ])
        .with_schema_url(
            Vec::<KeyValue>::new(),
            "https://opentelemetry.io/schemas/1.30.0",
        )
        .build()
}

#[test]
fn the_body_decodes_to_what_the_sdk_conversion_makes_of_the_same_spans() {
    let resource = resource();
    let body = export_request(&spans(), &EncodedResource::new(&resource));
    let decoded = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid protobuf");
    let expected = ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            spans(),
            &ResourceAttributesWithSchema::from(&resource),
        ),
    };
    assert_eq!(decoded, expected);
}

#[test]
fn the_body_is_byte_for_byte_what_prost_writes() {
    let resource = resource();
    let body = export_request(&spans(), &EncodedResource::new(&resource));
    let expected = ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            spans(),
            &ResourceAttributesWithSchema::from(&resource),
        ),
    };
    assert_eq!(body, expected.encode_to_vec());
}

#[test]
fn an_empty_batch_is_one_resource_with_no_scopes() {
    let resource = resource();
    let body = export_request(&[], &EncodedResource::new(&resource));
    let decoded = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
    assert_eq!(decoded.resource_spans.len(), 1);
    assert!(decoded.resource_spans[0].scope_spans.is_empty());
}

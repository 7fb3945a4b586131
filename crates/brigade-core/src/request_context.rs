//! The identity of the request a task is serving (`X-Request-Id`, W3C trace context), and
//! where code below the request middleware finds it (`current`). Kept apart from the
//! middleware (`request`) and from trace export (`traces`), which both use it.

use http::HeaderName;

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// W3C Trace Context `traceparent`.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Identity of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The caller's `X-Request-Id` when it is sane, else a new UUID v7.
    pub request_id: String,
    /// 32 lowercase hex digits, shared by every hop of one trace.
    pub trace_id: String,
    /// 16 lowercase hex digits naming this server's span.
    pub span_id: String,
    /// Trace flags from the caller (`01` = sampled).
    pub flags: String,
    /// The caller's span (from its `traceparent`), the parent of this server's span.
    pub parent_span_id: Option<String>,
    /// The caller's W3C `tracestate`, kept with its trace (only beside a valid `traceparent`,
    /// at most 512 bytes, as the specification bounds it).
    pub tracestate: Option<String>,
}

/// W3C Trace Context `tracestate`.
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

impl RequestContext {
    /// Whether the trace is sampled (flag `01`), so its spans are exported.
    pub fn sampled(&self) -> bool {
        flags_sampled(&self.flags)
    }

    /// The `traceparent` value naming this server's span, for responses and outgoing calls.
    pub fn traceparent(&self) -> String {
        let mut text = String::with_capacity(55);
        for part in ["00-", &self.trace_id, "-", &self.span_id, "-", &self.flags] {
            text.push_str(part);
        }
        text
    }
}

tokio::task_local! {
    pub(crate) static CURRENT: RequestContext;
}

/// Whether the request this task is serving is sampled; `None` outside a request.
pub fn current_sampled() -> Option<bool> {
    CURRENT.try_with(RequestContext::sampled).ok()
}

/// Whether W3C trace flags (two hex digits) have the sampled bit.
pub fn flags_sampled(flags: &str) -> bool {
    u8::from_str_radix(flags, 16).is_ok_and(|flags| flags & 1 == 1)
}

/// Whether `metadata` is the plain `request` span of a request that is not traced (no
/// OpenTelemetry fields): the trace layer leaves it out, so an unsampled request costs it
/// nothing (see `traces::sampled`).
pub fn is_untraced_request_span(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span()
        && metadata.name() == "request"
        && metadata.fields().field("otel.kind").is_none()
}

/// The context of the request this task is serving, if any.
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Parses `00-<trace>-<parent>-<flags>`, returning the trace id, the parent span id and the
/// flags. All-zero ids are invalid by the W3C spec and rejected so a new trace starts instead.
pub fn parse_traceparent(value: &str) -> Option<(String, String, String)> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let parent_id = parts.next()?;
    let flags = parts.next()?;
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ok = lower_hex(version, 2)
        && version != "ff"
        && lower_hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && lower_hex(parent_id, 16)
        && parent_id.bytes().any(|b| b != b'0')
        && lower_hex(flags, 2)
        && (version != "00" || parts.next().is_none());
    ok.then(|| (trace_id.to_owned(), parent_id.to_owned(), flags.to_owned()))
}

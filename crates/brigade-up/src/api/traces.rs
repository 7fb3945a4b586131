//! The ops API's trace answers: `GET /api/traces?…` answers watch's
//! [`TraceSearchAnswer`](brigade_watch::contract::TraceSearchAnswer) unchanged;
//! `GET /api/traces/{trace_id}` answers a [`TraceDetail`]: watch's spans, each with the central
//! log lines written inside it, so one answer draws the waterfall with its logs.

use brigade_watch::contract::{SpanView, TraceId};
use serde::{Deserialize, Serialize};

use super::LogLine;

/// `GET /api/traces/{trace_id}`: one trace's spans by start time, with their log lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceDetail {
    /// The trace id.
    pub trace_id: TraceId,
    /// Every span held, by start time.
    pub spans: Vec<SpanDetail>,
    /// Lines of this trace whose `span_id` names no span held (the span was not exported,
    /// or it was logged outside a span), oldest first.
    pub other_logs: Vec<LogLine>,
    /// Whether more lines of the trace exist than the answer carries.
    pub logs_truncated: bool,
}

/// One span and the central log lines written inside it (oldest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanDetail {
    /// The span as watch holds it.
    #[serde(flatten)]
    pub span: SpanView,
    /// Lines whose `trace_id` and `span_id` are this span's.
    pub logs: Vec<LogLine>,
}

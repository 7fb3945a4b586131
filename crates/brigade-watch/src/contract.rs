//! The answers of watch's HTTP API that other processes read — `brigade status`, the drills and
//! the ops dashboard's forwards — as serde types the server and every client compile against.
//!
//! Why here and not in a crate of their own: watch owns the API, its clients already depend on
//! watch for its rules, and a separate crate would hold nothing else. A field renamed on one
//! side now fails to compile on the other instead of reading as absent at run time (the drills'
//! alert check once looked for `items` in an answer that has `history`).
//!
//! The shapes are Prometheus's HTTP API where watch answers the same question (`/api/v1/query`,
//! `/api/v1/alerts`), so Grafana and promtool-style clients read them too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::notify::silence::SilenceState;
pub use crate::rules::AlertState;
pub use traces::{
    SpanKind, SpanView, TraceAnswer, TraceId, TraceQuery, TraceQueryError, TraceSearchAnswer,
    TraceStatus, TraceSummary,
};

pub mod traces;

/// Label names to values.
pub type Labels = BTreeMap<String, String>;

/// `GET /api/v1/alerts`: every pending or firing alert, sorted by labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsAnswer {
    /// The alerts.
    pub alerts: Vec<AlertView>,
}

/// One pending or firing alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    /// Identity of the label set.
    pub fingerprint: String,
    /// Its labels (`alertname` among them).
    pub labels: Labels,
    /// Its annotations (`summary`, `description`, `runbook_url`).
    pub annotations: Labels,
    /// Pending or firing.
    pub state: AlertState,
    /// The value that made it active; `None` when not a finite number.
    pub value: Option<f64>,
    /// When it became active (RFC 3339).
    pub active_at: String,
    /// When it started firing (RFC 3339).
    pub fired_at: Option<String>,
    /// The rule group.
    pub group: String,
    /// Silences that mute it.
    pub silenced_by: Vec<String>,
    /// Alerts that inhibit it.
    pub inhibited_by: Vec<String>,
}

impl AlertView {
    /// The alert's name.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("?", String::as_str)
    }
}

/// `GET /api/v1/alerts/history`: state changes, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryAnswer {
    /// The changes.
    pub history: Vec<HistoryEntry>,
}

/// One state change of one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Identity of the label set.
    pub fingerprint: String,
    /// The alert's name.
    pub alertname: String,
    /// `pending`, `firing` or `inactive` (resolved).
    pub state: String,
    /// When (RFC 3339).
    pub at: String,
    /// The alert at that moment, as notifiers received it.
    pub alert: serde_json::Value,
}

/// `GET /api/v1/query` and `/api/v1/query_range`: `{"status": "success", "data": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryAnswer {
    /// Always `success` (failures are problem+json).
    pub status: String,
    /// The result.
    pub data: QueryData,
}

impl QueryAnswer {
    /// A successful answer.
    pub fn success(data: QueryData) -> Self {
        Self {
            status: "success".to_owned(),
            data,
        }
    }
}

/// `GET /api/v1/query_exemplars`: the exemplars of the series a query selects, in
/// Prometheus's answer shape (Grafana's exemplar display reads it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemplarsAnswer {
    /// Always `success` (failures are problem+json).
    pub status: String,
    /// One entry per series, oldest exemplar first.
    pub data: Vec<ExemplarSeries>,
}

/// The exemplars of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExemplarSeries {
    /// The series' labels (`__name__`, `le`, `job`, `instance`, …).
    pub series_labels: Labels,
    /// Its exemplars in the time range.
    pub exemplars: Vec<ExemplarPoint>,
}

/// One exemplar: its labels (`trace_id`), the value it stands for as text, and its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemplarPoint {
    /// Usually `trace_id`.
    pub labels: Labels,
    /// The observed value, as Prometheus writes values.
    pub value: String,
    /// Unix seconds.
    pub timestamp: f64,
}

/// A sample as Prometheus writes it: seconds since the epoch and the value as text (`NaN`,
/// `+Inf` included).
pub type Point = (f64, String);

/// A query's result, tagged by `resultType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryData {
    /// One number.
    Scalar(Point),
    /// One string.
    String((f64, String)),
    /// One sample per series.
    Vector(Vec<VectorSample>),
    /// A range of samples per series.
    Matrix(Vec<MatrixSeries>),
}

/// One series' sample of an instant vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorSample {
    /// The series' labels.
    pub metric: Labels,
    /// The sample.
    pub value: Point,
}

impl VectorSample {
    /// The value as a number (`None` when the text is not one).
    pub fn number(&self) -> Option<f64> {
        self.value.1.parse().ok()
    }
}

/// One series' samples over a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixSeries {
    /// The series' labels.
    pub metric: Labels,
    /// The samples, oldest first.
    pub values: Vec<Point>,
}

/// `POST /api/v1/silences`: a silence to make; exactly one of `ends_at` and `duration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewSilence {
    /// Alertmanager matcher texts, all of which must hold.
    pub matchers: Vec<String>,
    /// Start (RFC 3339); now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    /// End (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Length from the start (`2h`, `30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Who makes it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// One silence as the API shows it (Alertmanager's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceView {
    /// Its id.
    pub id: String,
    /// Its matcher texts.
    pub matchers: Vec<String>,
    /// Start, RFC 3339.
    pub starts_at: String,
    /// End, RFC 3339.
    pub ends_at: String,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Where it is in its life.
    pub status: SilenceStatus,
}

/// A silence's `status` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceStatus {
    /// Pending, active or expired.
    pub state: SilenceState,
}

/// `GET /api/v1/silences`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilencesAnswer {
    /// Every silence kept, expired ones too.
    pub silences: Vec<SilenceView>,
}

/// The answer to `POST /api/v1/silences`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceCreated {
    /// The new silence's id.
    #[serde(rename = "silenceID")]
    pub silence_id: String,
    /// The silence.
    pub silence: SilenceView,
}

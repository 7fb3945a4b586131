//! The trace API's types: what `GET /api/v1/traces?…` accepts and answers, and what
//! `GET /api/v1/traces/{trace_id}` answers. Watch serves them; `brigade up`'s ops API parses
//! the same query (so a bad parameter is refused before it is forwarded, naming the field) and
//! reads the same answers.
//!
//! The query is parsed from name/value pairs by hand rather than by serde's derive so that
//! every refusal names its parameter: an unknown name, a value that is not a number, a time
//! that is not RFC 3339. `since` is RFC 3339 (`2026-01-01T12:00:00Z`) rather than Unix
//! milliseconds because people type it and read it in URLs; times in answers stay Unix
//! milliseconds because the waterfall computes with them.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Searches answer this many traces when `limit` is not given.
pub const DEFAULT_TRACE_LIMIT: usize = 50;
/// The most traces one search answers.
pub const MAX_TRACE_LIMIT: usize = 500;

/// A W3C trace id: 32 lowercase hex digits, not all zero.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceId(String);

impl TraceId {
    /// Parses `text` (hex digits of either case).
    pub fn parse(text: &str) -> Result<Self, TraceQueryError> {
        let valid = text.len() == 32
            && text.bytes().all(|b| b.is_ascii_hexdigit())
            && text.bytes().any(|b| b != b'0');
        if valid {
            Ok(Self(text.to_ascii_lowercase()))
        } else {
            Err(TraceQueryError::invalid(
                "trace_id",
                "must be 32 hex digits, not all zero",
            ))
        }
    }

    /// The id as 32 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TraceId {
    type Error = TraceQueryError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<TraceId> for String {
    fn from(id: TraceId) -> Self {
        id.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// OpenTelemetry's span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    /// Work inside one process.
    Internal,
    /// The handling of a request that came in.
    Server,
    /// A request going out (to another process, the database, a payment provider).
    Client,
    /// A message sent.
    Producer,
    /// A message received.
    Consumer,
    /// The exporter did not say.
    Unspecified,
}

/// One span as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpanView {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The parent's span id, absent for a root.
    pub parent_span_id: Option<String>,
    /// e.g. `GET /api/v1/orders`.
    pub name: String,
    /// The process (`service.name`).
    pub service: String,
    /// Server, client, internal, …
    pub kind: SpanKind,
    /// Start, Unix ms (fractional).
    pub start_ms: f64,
    /// Length in ms.
    pub duration_ms: f64,
    /// Ended in error.
    pub error: bool,
    /// The status message of a failed span.
    pub status_message: Option<String>,
    /// Attributes, rendered as text.
    pub attributes: BTreeMap<String, String>,
    /// Spans this one links to (a retried attempt links the first), as `trace_id/span_id`.
    pub links: Vec<String>,
}

/// One trace in a search result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceSummary {
    /// The trace id.
    pub trace_id: String,
    /// The root span's name (or the earliest span's, while the root has not arrived).
    pub name: String,
    /// Every process with a span in it.
    pub services: Vec<String>,
    /// Spans held.
    pub spans: usize,
    /// Start, Unix ms.
    pub start_ms: f64,
    /// From the first start to the last end, ms.
    pub duration_ms: f64,
    /// A span failed.
    pub error: bool,
    /// The `request_id` attribute of its spans, if any.
    pub request_id: Option<String>,
}

/// `GET /api/v1/traces`: matching traces, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceSearchAnswer {
    /// The traces.
    pub traces: Vec<TraceSummary>,
}

/// `GET /api/v1/traces/{trace_id}`: every span held of one trace, by start time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceAnswer {
    /// The trace id.
    pub trace_id: TraceId,
    /// Its spans.
    pub spans: Vec<SpanView>,
}

/// Whether a trace failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceStatus {
    /// No span failed.
    Ok,
    /// A span failed.
    Error,
}

/// What a search asks for: every parameter optional, all of them must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceQuery {
    /// Only this trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// Only traces with a span of this request id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Only traces with a span of this service (`brigade-serve`, `brigade-balance`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Only traces with a span whose name or `http.route` contains this text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Only failed or only successful traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<TraceStatus>,
    /// Only traces at least this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_duration_ms: Option<f64>,
    /// Only traces that started at or after this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// At most this many, newest first (default [`DEFAULT_TRACE_LIMIT`], at most
    /// [`MAX_TRACE_LIMIT`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A search parameter refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceQueryError {
    /// A parameter the search does not know (a typo would otherwise widen the search).
    #[error("{0}: unknown parameter")]
    Unknown(String),
    /// A parameter given twice.
    #[error("{0}: given more than once")]
    Repeated(String),
    /// A value that does not parse.
    #[error("{field}: {message}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// What it must be.
        message: &'static str,
    },
}

impl TraceQueryError {
    fn invalid(field: &'static str, message: &'static str) -> Self {
        Self::Invalid { field, message }
    }

    /// The parameter refused.
    pub fn field(&self) -> &str {
        match self {
            Self::Unknown(name) | Self::Repeated(name) => name,
            Self::Invalid { field, .. } => field,
        }
    }

    /// Why, without the parameter's name.
    pub fn message(&self) -> &str {
        match self {
            Self::Unknown(_) => "unknown parameter",
            Self::Repeated(_) => "given more than once",
            Self::Invalid { message, .. } => message,
        }
    }
}

impl TraceQuery {
    /// Parses a query string's name/value pairs; empty values count as absent (a search form
    /// sends every field).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, TraceQueryError> {
        let mut query = Self::default();
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in pairs {
            if seen.contains(&name) {
                return Err(TraceQueryError::Repeated(name.to_owned()));
            }
            seen.push(name);
            if value.is_empty() {
                continue;
            }
            query.set(name, value)?;
        }
        Ok(query)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), TraceQueryError> {
        let text = || Some(value.to_owned());
        match name {
            "trace_id" => self.trace_id = Some(TraceId::parse(value)?),
            "request_id" => self.request_id = text(),
            "service" => self.service = text(),
            "route" => self.route = text(),
            "status" => {
                self.status = Some(match value {
                    "ok" => TraceStatus::Ok,
                    "error" => TraceStatus::Error,
                    _ => return Err(TraceQueryError::invalid("status", "must be ok or error")),
                });
            }
            "min_duration_ms" => {
                let ms = value
                    .parse::<f64>()
                    .ok()
                    .filter(|ms| ms.is_finite() && *ms >= 0.0);
                self.min_duration_ms = Some(ms.ok_or(TraceQueryError::invalid(
                    "min_duration_ms",
                    "must be a number of milliseconds, 0 or more",
                ))?);
            }
            "since" => {
                let at = DateTime::parse_from_rfc3339(value).map_err(|_| {
                    TraceQueryError::invalid(
                        "since",
                        "must be an RFC 3339 time such as 2026-01-01T12:00:00Z",
                    )
                })?;
                self.since = Some(at.with_timezone(&Utc));
            }
            "limit" => {
                let limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_TRACE_LIMIT).contains(n));
                self.limit = Some(limit.ok_or(TraceQueryError::invalid(
                    "limit",
                    "must be a whole number from 1 to 500",
                ))?);
            }
            other => return Err(TraceQueryError::Unknown(other.to_owned())),
        }
        Ok(())
    }

    /// The number of traces to answer.
    pub fn effective_limit(&self) -> usize {
        self.limit
            .unwrap_or(DEFAULT_TRACE_LIMIT)
            .clamp(1, MAX_TRACE_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<TraceQuery, TraceQueryError> {
        TraceQuery::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn every_refusal_names_its_parameter() {
        for (name, value) in [
            ("trace_id", "xyz"),
            ("trace_id", &"0".repeat(32)),
            ("status", "broken"),
            ("min_duration_ms", "-1"),
            ("min_duration_ms", "fast"),
            ("since", "yesterday"),
            ("limit", "0"),
            ("limit", "501"),
            ("colour", "red"),
        ] {
            let error = parse(&[(name, value)]).unwrap_err();
            assert_eq!(error.field(), name, "{name}={value}");
        }
        let twice = parse(&[("limit", "1"), ("limit", "2")]).unwrap_err();
        assert_eq!(twice, TraceQueryError::Repeated("limit".into()));
    }

    #[test]
    fn a_full_query_survives_the_round_trip_through_a_query_string() {
        let query = parse(&[
            ("trace_id", "4BF92F3577B34DA6A3CE929D0E0E4736"),
            ("request_id", "r-1"),
            ("service", "brigade-serve"),
            ("route", "/api/v1/orders"),
            ("status", "error"),
            ("min_duration_ms", "12.5"),
            ("since", "2026-01-01T12:00:00+01:00"),
            ("limit", "20"),
            ("service", ""),
        ]);
        assert_eq!(
            query.unwrap_err().field(),
            "service",
            "repeated even if empty"
        );
        let query = parse(&[
            ("trace_id", "4BF92F3577B34DA6A3CE929D0E0E4736"),
            ("request_id", "r-1"),
            ("status", "error"),
            ("min_duration_ms", "12.5"),
            ("since", "2026-01-01T12:00:00+01:00"),
            ("limit", "20"),
            ("route", ""),
        ])
        .unwrap();
        assert_eq!(
            query.trace_id.as_ref().map(TraceId::as_str),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(query.route, None, "empty means absent");
        let text = serde_urlencoded::to_string(&query).unwrap();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&text).unwrap();
        let again =
            TraceQuery::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))).unwrap();
        assert_eq!(again, query);
        assert_eq!(again.effective_limit(), 20);
    }
}

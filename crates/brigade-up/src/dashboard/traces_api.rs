//! `GET /api/traces?…` and `GET /api/traces/{trace_id}`: watch's trace search, typed, and one
//! trace with the central log lines of each of its spans.
//!
//! Unlike [`super::forward`], which passes bodies through unchanged, these calls read watch's
//! answers into `brigade_watch::contract` types: the one-trace answer is joined with the central
//! logs here, and a search parameter is checked before it leaves (the same parser watch uses),
//! so a bad one is refused naming its field even when watch is down.
//!
//! Lines join spans by `trace_id` and `span_id`, the fields every brigade JSON line written
//! inside a request carries. A line's `span_id` is that of the request span it was written in
//! (the replica's server span), so lines written inside the store or payment spans show under
//! their request; lines whose span is not among the trace's spans are answered apart.
// The error of a refused request is the response body, built once per refusal, so its size
// does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brigade_core::{FieldError, Problem};
use brigade_watch::contract::{
    TraceAnswer, TraceId, TraceQuery, TraceQueryError, TraceSearchAnswer,
};

use super::Dashboard;
use crate::api::{SpanDetail, TraceDetail};
use crate::logs::{LogFilter, LogLine};

/// The most central log lines one trace answer carries.
const MAX_TRACE_LOG_LINES: usize = 500;
/// What a 503 asks the client to wait, in seconds: about one restart of watch.
const RETRY_AFTER_SECONDS: &str = "5";

/// Why a trace call failed; mapped to a status in [`TraceFailure::into_response`].
#[derive(Debug, thiserror::Error)]
enum TraceFailure {
    /// A search parameter or the trace id is malformed.
    #[error("{0}")]
    Refused(#[from] TraceQueryError),
    /// Watch is not configured or has not started yet.
    #[error("watch is not running here")]
    NoWatch,
    /// Watch did not answer (stopped, restarting, or too slow).
    #[error("watch did not answer: {0}")]
    Unreachable(reqwest::Error),
    /// Watch holds no such trace.
    #[error("no trace {0} in watch's window")]
    NotFound(TraceId),
    /// Watch answered something this build cannot read.
    #[error("watch answered {0}")]
    BadAnswer(String),
    /// The central logs cannot be read.
    #[error("the central logs cannot be read")]
    Logs,
}

impl IntoResponse for TraceFailure {
    fn into_response(self) -> Response {
        let detail = self.to_string();
        match self {
            Self::Refused(error) => Problem::invalid(
                StatusCode::BAD_REQUEST,
                vec![FieldError::new(error.field(), error.message())],
            )
            .into_response(),
            Self::NoWatch | Self::Unreachable(_) | Self::Logs => {
                let mut response = Problem::unavailable(detail).into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
                response
            }
            Self::NotFound(_) => Problem::not_found(detail).into_response(),
            Self::BadAnswer(_) => {
                Problem::new(StatusCode::BAD_GATEWAY, "bad-gateway", "Bad gateway")
                    .with_detail(detail)
                    .into_response()
            }
        }
    }
}

/// `GET /api/traces?trace_id=&request_id=&service=&route=&status=&min_duration_ms=&since=&limit=`.
pub(super) async fn search(
    State(dashboard): State<Dashboard>,
    pairs: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(pairs)) = pairs else {
        return Problem::bad_request("the query string cannot be read").into_response();
    };
    let query = match TraceQuery::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
        Ok(query) => query,
        Err(error) => return TraceFailure::from(error).into_response(),
    };
    match watch_search(&dashboard, &query).await {
        Ok(answer) => Json(answer).into_response(),
        Err(failure) => failure.into_response(),
    }
}

/// `GET /api/traces/{trace_id}`: the trace's spans with their log lines.
pub(super) async fn one(
    State(dashboard): State<Dashboard>,
    Path(trace_id): Path<String>,
) -> Response {
    match detail(&dashboard, &trace_id).await {
        Ok(detail) => Json(detail).into_response(),
        Err(failure) => failure.into_response(),
    }
}

async fn watch_search(
    dashboard: &Dashboard,
    query: &TraceQuery,
) -> Result<TraceSearchAnswer, TraceFailure> {
    let watch = dashboard.watch().ok_or(TraceFailure::NoWatch)?;
    // Serialising a flat struct of options cannot fail; an empty query asks for everything.
    let query = serde_urlencoded::to_string(query).unwrap_or_default();
    let answer = dashboard
        .http
        .get(format!("http://{watch}/api/v1/traces?{query}"))
        .send()
        .await
        .map_err(TraceFailure::Unreachable)?;
    read_answer(answer).await
}

async fn detail(dashboard: &Dashboard, trace_id: &str) -> Result<TraceDetail, TraceFailure> {
    let trace_id = TraceId::parse(trace_id)?;
    let watch = dashboard.watch().ok_or(TraceFailure::NoWatch)?;
    let answer = dashboard
        .http
        .get(format!("http://{watch}/api/v1/traces/{trace_id}"))
        .send()
        .await
        .map_err(TraceFailure::Unreachable)?;
    if answer.status() == StatusCode::NOT_FOUND {
        return Err(TraceFailure::NotFound(trace_id));
    }
    let trace: TraceAnswer = read_answer(answer).await?;
    let lines = match dashboard.logs_dir.clone() {
        Some(dir) => {
            let filter = LogFilter {
                grep: Some(trace_id.to_string()),
                ..LogFilter::default()
            };
            tokio::task::spawn_blocking(move || {
                super::logs_api::newest(&dir, &filter, MAX_TRACE_LOG_LINES + 1)
            })
            .await
            .map_err(|_| TraceFailure::Logs)?
            .map_err(|error| {
                tracing::error!(%error, "cannot read the central logs");
                TraceFailure::Logs
            })?
        }
        None => Vec::new(),
    };
    Ok(join(trace, lines))
}

/// Reads a successful answer of watch's, or says why it is not one.
async fn read_answer<T: serde::de::DeserializeOwned>(
    answer: reqwest::Response,
) -> Result<T, TraceFailure> {
    let status = answer.status();
    if !status.is_success() {
        return Err(TraceFailure::BadAnswer(status.to_string()));
    }
    answer
        .json()
        .await
        .map_err(|error| TraceFailure::BadAnswer(format!("a body that does not read: {error}")))
}

/// Puts each line (newest first, as the search returns them; at most one more than
/// [`MAX_TRACE_LOG_LINES`]) under the span it names, oldest first.
fn join(trace: TraceAnswer, mut lines: Vec<LogLine>) -> TraceDetail {
    let logs_truncated = lines.len() > MAX_TRACE_LOG_LINES;
    lines.truncate(MAX_TRACE_LOG_LINES);
    lines.reverse();
    let index: HashMap<&str, usize> = trace
        .spans
        .iter()
        .enumerate()
        .map(|(i, span)| (span.span_id.as_str(), i))
        .collect();
    let mut per_span: Vec<Vec<LogLine>> = vec![Vec::new(); trace.spans.len()];
    let mut other_logs = Vec::new();
    for line in lines {
        // The text search also finds lines that merely mention the id; only the line's own
        // `trace_id` joins it.
        if text_field(&line, "trace_id") != Some(trace.trace_id.as_str()) {
            continue;
        }
        match text_field(&line, "span_id").and_then(|id| index.get(id)) {
            Some(&i) => per_span[i].push(line),
            None => other_logs.push(line),
        }
    }
    TraceDetail {
        trace_id: trace.trace_id,
        spans: trace
            .spans
            .into_iter()
            .zip(per_span)
            .map(|(span, logs)| SpanDetail { span, logs })
            .collect(),
        other_logs,
        logs_truncated,
    }
}

/// A text field of a log line beyond the common ones.
fn text_field<'a>(line: &'a LogLine, name: &str) -> Option<&'a str> {
    line.fields.get(name).and_then(serde_json::Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brigade_watch::contract::{SpanKind, SpanView};

    fn span(id: &str) -> SpanView {
        SpanView {
            trace_id: "ab".repeat(16),
            span_id: id.to_owned(),
            parent_span_id: None,
            name: "GET /".into(),
            service: "brigade-serve".into(),
            kind: SpanKind::Server,
            start_ms: 0.0,
            duration_ms: 1.0,
            error: false,
            status_message: None,
            attributes: Default::default(),
            links: Vec::new(),
        }
    }

    fn line(trace: &str, span: &str, message: &str) -> LogLine {
        LogLine::parse(&format!(
            r#"{{"level":"INFO","message":"{message}","trace_id":"{trace}","span_id":"{span}"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn lines_go_under_their_span_oldest_first() {
        let trace = TraceAnswer {
            trace_id: TraceId::parse(&"ab".repeat(16)).unwrap(),
            spans: vec![span("1111111111111111"), span("2222222222222222")],
        };
        let id = "ab".repeat(16);
        // Newest first, as the log search answers.
        let lines = vec![
            line(&id, "2222222222222222", "third"),
            line(&id, "9999999999999999", "orphan"),
            line(&"cd".repeat(16), "2222222222222222", "another trace"),
            line(&id, "2222222222222222", "second"),
            line(&id, "1111111111111111", "first"),
        ];
        let detail = join(trace, lines);
        let messages = |logs: &[LogLine]| -> Vec<String> {
            logs.iter()
                .filter_map(|l| text_field(l, "message").map(str::to_owned))
                .collect()
        };
        assert_eq!(messages(&detail.spans[0].logs), ["first"]);
        assert_eq!(messages(&detail.spans[1].logs), ["second", "third"]);
        assert_eq!(messages(&detail.other_logs), ["orphan"]);
        assert!(!detail.logs_truncated);
    }

    /// A dashboard whose watch is a closed port: both routes answer 503 with `Retry-After`,
    /// while a malformed query or id is still a 400 naming the field.
    #[tokio::test]
    async fn a_stopped_watch_is_a_503_with_retry_after_and_bad_input_still_a_400() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let watch = closed.local_addr().unwrap().to_string();
        drop(closed);
        let dashboard = Dashboard::standalone("127.0.0.1:1".into(), Some(watch), None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, dashboard.router::<()>())
                .await
                .unwrap();
        });
        for path in [
            "/api/traces?status=error".to_owned(),
            format!("/api/traces/{}", "ab".repeat(16)),
        ] {
            let answer = reqwest::get(format!("{base}{path}")).await.unwrap();
            assert_eq!(answer.status(), 503, "{path}");
            assert_eq!(answer.headers()[header::RETRY_AFTER], RETRY_AFTER_SECONDS);
            assert_eq!(
                answer.headers()[header::CONTENT_TYPE],
                brigade_core::problem::PROBLEM_JSON
            );
        }
        for (path, field) in [
            ("/api/traces?min_duration_ms=slow", "min_duration_ms"),
            ("/api/traces?colour=red", "colour"),
            ("/api/traces/not-a-trace-id", "trace_id"),
        ] {
            let answer = reqwest::get(format!("{base}{path}")).await.unwrap();
            assert_eq!(answer.status(), 400, "{path}");
            let problem: Problem = answer.json().await.unwrap();
            assert_eq!(problem.errors[0].field, field, "{path}");
        }
        server.abort();
    }
}

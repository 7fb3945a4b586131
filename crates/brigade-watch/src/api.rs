//! The HTTP API: alerts, history, rules, targets, silences, ad-hoc and range queries, health,
//! metrics.
//!
//! Bad input is answered with problem+json naming the field; nothing here can panic on input.
// Handlers return `Result<_, Problem>`: the error is the response body, built once per failed
// request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use brigade_core::Problem;
use brigade_core::health::Phase;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::contract::{
    AlertView, AlertsAnswer, ExemplarsAnswer, HistoryAnswer, HistoryEntry, MatrixSeries,
    NewSilence, QueryAnswer, QueryData, SilenceCreated, SilenceStatus, SilenceView, SilencesAnswer,
    TraceAnswer, TraceId, TraceQuery, TraceQueryError, TraceSearchAnswer, VectorSample,
};
use crate::notify::payload::rfc3339;
use crate::notify::silence::Silence;
use crate::promql;
use crate::rules::{AlertState, parse_duration_ms};
use crate::shared::{Shared, lock, now_ms};

/// The API's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/history", get(history))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/query", get(query))
        .route("/api/v1/query_range", get(query_range))
        .route("/api/v1/query_exemplars", get(query_exemplars))
        .route("/api/v1/silences", get(list_silences).post(create_silence))
        .route("/api/v1/silences/{id}", delete(expire_silence))
        .route(
            "/v1/traces",
            post(receive_traces).layer(axum::extract::DefaultBodyLimit::max(MAX_OTLP_BODY)),
        )
        .route("/api/v1/traces", get(search_traces))
        .route("/api/v1/traces/{trace_id}", get(one_trace))
        .with_state(shared)
}

/// Largest OTLP body accepted (the exporters' default batch of 512 spans is far below it);
/// larger ones get 413.
const MAX_OTLP_BODY: usize = 8 * 1024 * 1024;

/// `POST /v1/traces`: OTLP/HTTP with a protobuf body, as every brigade process exports it.
async fn receive_traces(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let media = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !media.starts_with("application/x-protobuf") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        )
        .with_detail("OTLP is accepted as application/x-protobuf"));
    }
    let request = crate::traces::decode(&body).map_err(|error| {
        metrics::counter!(crate::traces::SPANS_RECEIVED, "outcome" => "rejected").increment(1);
        Problem::bad_request(format!("not an OTLP ExportTraceServiceRequest: {error}"))
    })?;
    let offered: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let kept = lock(&shared.traces).ingest(request, now_ms());
    metrics::counter!(crate::traces::SPANS_RECEIVED, "outcome" => "kept").increment(kept as u64);
    metrics::counter!(crate::traces::SPANS_RECEIVED, "outcome" => "rejected")
        .increment(offered.saturating_sub(kept) as u64);
    // An empty ExportTraceServiceResponse: full success.
    Ok(([("content-type", "application/x-protobuf")], Bytes::new()).into_response())
}

/// `GET /api/v1/traces?trace_id=&request_id=&service=&route=&status=&min_duration_ms=&since=&limit=`
/// (see [`TraceQuery`]); a parameter refused is a 400 naming it.
async fn search_traces(
    State(shared): State<Arc<Shared>>,
    pairs: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TraceSearchAnswer>, Problem> {
    let Query(pairs) = pairs.map_err(|error| Problem::bad_request(error.body_text()))?;
    let query = TraceQuery::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .map_err(|error| trace_query_problem(&error))?;
    let traces = lock(&shared.traces).search(&query);
    Ok(Json(TraceSearchAnswer { traces }))
}

/// `GET /api/v1/traces/{trace_id}`: every span held, by start time; 400 for a malformed id,
/// 404 for one not in the window.
async fn one_trace(
    State(shared): State<Arc<Shared>>,
    Path(trace_id): Path<String>,
) -> Result<Json<TraceAnswer>, Problem> {
    let trace_id = TraceId::parse(&trace_id).map_err(|error| trace_query_problem(&error))?;
    let spans = lock(&shared.traces)
        .trace(trace_id.as_str())
        .ok_or_else(|| Problem::not_found(format!("no trace {trace_id} in the window")))?;
    Ok(Json(TraceAnswer { trace_id, spans }))
}

/// A refused trace search parameter as a 400 naming it.
fn trace_query_problem(error: &TraceQueryError) -> Problem {
    Problem::invalid(
        StatusCode::BAD_REQUEST,
        vec![brigade_core::problem::FieldError::new(
            error.field(),
            error.message(),
        )],
    )
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "up" }))
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    match shared.health.phase() {
        Phase::Ready => Json(json!({ "status": "up" })).into_response(),
        phase => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "down", "phase": format!("{phase:?}").to_lowercase() })),
        )
            .into_response(),
    }
}

async fn metrics_text() -> Response {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        brigade_core::metrics::renderer().render(),
    )
        .into_response()
}

async fn alerts(State(shared): State<Arc<Shared>>) -> Json<AlertsAnswer> {
    let now = now_ms();
    let groups = lock(&shared.groups);
    let dispatcher = lock(&shared.dispatcher);
    let mut alerts = Vec::new();
    for group in groups.iter() {
        for rule in group.alerting_rules() {
            for (fingerprint, alert) in &rule.active {
                if alert.state == AlertState::Inactive {
                    continue;
                }
                let as_notified = crate::notify::Alert {
                    fingerprint: fingerprint.clone(),
                    labels: alert.labels.clone(),
                    annotations: alert.annotations.clone(),
                    starts_at: alert.active_at,
                    ends_at: None,
                    generator_url: String::new(),
                };
                let muted = dispatcher.mute_status(&as_notified, now);
                alerts.push(AlertView {
                    fingerprint: fingerprint.clone(),
                    labels: alert.labels.clone(),
                    annotations: alert.annotations.clone(),
                    state: alert.state,
                    value: alert.value.is_finite().then_some(alert.value),
                    active_at: rfc3339(alert.active_at),
                    fired_at: alert.fired_at.map(rfc3339),
                    group: group.name.clone(),
                    silenced_by: muted.silenced_by,
                    inhibited_by: muted.inhibited_by,
                });
            }
        }
    }
    alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
    Json(AlertsAnswer { alerts })
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<String>,
}

async fn history(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HistoryQuery>,
) -> Result<Json<HistoryAnswer>, Problem> {
    let limit = match params.limit.as_deref() {
        None => 100,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(Problem::invalid_field(
                    "limit",
                    "must be a whole number from 1 to 1000",
                ));
            }
        },
    };
    let rows = shared.db.history(limit).await.map_err(|error| {
        tracing::error!(%error, "cannot read alert history");
        Problem::unavailable("the database is unavailable")
    })?;
    let history = rows
        .into_iter()
        .map(|r| HistoryEntry {
            fingerprint: r.fingerprint,
            alertname: r.alertname,
            state: r.state,
            at: rfc3339(r.at_ms),
            alert: r.alert,
        })
        .collect();
    Ok(Json(HistoryAnswer { history }))
}

async fn rules(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let groups = lock(&shared.groups);
    let list: Vec<Value> = groups
        .iter()
        .map(|group| {
            let rules: Vec<Value> = group
                .rules
                .iter()
                .map(|rule| match rule {
                    crate::rules::Rule::Alerting(a) => {
                        let state = if a.active.values().any(|x| x.state == AlertState::Firing) {
                            "firing"
                        } else if a.active.values().any(|x| x.state == AlertState::Pending) {
                            "pending"
                        } else {
                            "inactive"
                        };
                        json!({
                            "type": "alerting",
                            "name": a.name,
                            "query": a.query.text(),
                            "duration": a.for_ms / 1000,
                            "keepFiringFor": a.keep_firing_for_ms / 1000,
                            "labels": a.labels,
                            "annotations": a.annotations,
                            "state": state,
                            "health": if a.last_error.is_some() { "err" } else { "ok" },
                            "lastError": a.last_error,
                        })
                    }
                    crate::rules::Rule::Recording(r) => json!({
                        "type": "recording",
                        "name": r.record,
                        "query": r.query.text(),
                        "labels": r.labels,
                    }),
                })
                .collect();
            json!({ "name": group.name, "file": group.file, "rules": rules })
        })
        .collect();
    Json(json!({ "groups": list }))
}

async fn targets(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let targets = lock(&shared.targets).clone();
    Json(json!({ "targets": targets }))
}

#[derive(Deserialize)]
struct QueryParams {
    query: Option<String>,
    time: Option<String>,
}

async fn query(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<QueryParams>,
) -> Result<Json<QueryAnswer>, Problem> {
    let text = params
        .query
        .ok_or_else(|| Problem::invalid_field("query", "is required"))?;
    let parsed =
        promql::Query::parse(&text).map_err(|e| Problem::invalid_field("query", e.to_string()))?;
    let t = match params.time.as_deref() {
        None => now_ms(),
        Some(time) => time
            .parse::<f64>()
            .map(|s| (s * 1000.0) as i64)
            .map_err(|_| Problem::invalid_field("time", "must be seconds since the epoch"))?,
    };
    let value = parsed
        .eval(&lock(&shared.tsdb), t)
        .map_err(|e| Problem::invalid_field("query", e.to_string()))?;
    let seconds = t as f64 / 1000.0;
    let data = match value {
        promql::Value::Scalar(v) => QueryData::Scalar((seconds, value_text(v))),
        promql::Value::String(s) => QueryData::String((seconds, s)),
        promql::Value::Vector(vector) => QueryData::Vector(
            vector
                .into_iter()
                .map(|s| VectorSample {
                    metric: s.labels,
                    value: (seconds, value_text(s.value)),
                })
                .collect(),
        ),
        promql::Value::Matrix(matrix) => {
            QueryData::Matrix(matrix.into_iter().map(matrix_series).collect())
        }
    };
    Ok(Json(QueryAnswer::success(data)))
}

/// Most points one series of a range query may have (Prometheus's limit), so a query cannot
/// make watch evaluate without end while it holds the sample store.
pub const MAX_RANGE_POINTS: i64 = 11_000;

/// How far back range queries must reach: the ops dashboard charts the last 15 minutes of
/// one-minute rates. Watch keeps at least this much (plus the lookback) whatever its rules read.
pub const RANGE_QUERY_WINDOW_MS: i64 = 16 * 60 * 1000;

#[derive(Deserialize)]
struct RangeParams {
    query: Option<String>,
    start: Option<String>,
    end: Option<String>,
    step: Option<String>,
}

/// A parameter that must be given.
fn required(field: &str, value: Option<String>) -> Result<String, Problem> {
    value.ok_or_else(|| Problem::invalid_field(field, "is required"))
}

/// A time as Prometheus's API takes it: seconds since the epoch (fractions allowed) or RFC 3339.
fn parse_api_time(field: &str, text: &str) -> Result<i64, Problem> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            Problem::invalid_field(field, "must be seconds since the epoch or an RFC 3339 time")
        })
}

/// A series of points in Prometheus's answer shape: seconds, and the value as text.
fn matrix_series(series: promql::RangeSeries) -> MatrixSeries {
    MatrixSeries {
        metric: series.labels,
        values: series
            .points
            .iter()
            .map(|(t, v)| (*t as f64 / 1000.0, value_text(*v)))
            .collect(),
    }
}

/// A sample value as Prometheus writes it (`NaN`, `+Inf`, `-Inf`, else the shortest decimal).
fn value_text(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

/// `GET /api/v1/query_range?query=&start=&end=&step=`: the query at every step from start to
/// end, answered in Prometheus's shape (`resultType: matrix`), so charts and tools written
/// for Prometheus read it unchanged. Only the samples watch still holds can be seen (at least
/// [`RANGE_QUERY_WINDOW_MS`]).
async fn query_range(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<RangeParams>,
) -> Result<Json<QueryAnswer>, Problem> {
    let text = required("query", params.query)?;
    let start = parse_api_time("start", &required("start", params.start)?)?;
    let end = parse_api_time("end", &required("end", params.end)?)?;
    let step_text = required("step", params.step)?;
    let step = match step_text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() => (seconds * 1000.0).round() as i64,
        Ok(_) => 0,
        Err(_) => parse_duration_ms(&step_text)
            .map_err(|e| Problem::invalid_field("step", e.to_string()))?,
    };
    if step <= 0 {
        return Err(Problem::invalid_field(
            "step",
            "must be a positive duration",
        ));
    }
    if end < start {
        return Err(Problem::invalid_field("end", "must not be before start"));
    }
    if (end - start) / step >= MAX_RANGE_POINTS {
        return Err(Problem::invalid_field(
            "step",
            format!("too small for the range: at most {MAX_RANGE_POINTS} points per series"),
        ));
    }
    let parsed =
        promql::Query::parse(&text).map_err(|e| Problem::invalid_field("query", e.to_string()))?;
    let series = parsed
        .eval_range(&lock(&shared.tsdb), start, end, step)
        .map_err(|e| Problem::invalid_field("query", e.to_string()))?;
    let result = series.into_iter().map(matrix_series).collect();
    Ok(Json(QueryAnswer::success(QueryData::Matrix(result))))
}

#[derive(Deserialize)]
struct ExemplarParams {
    query: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

/// `GET /api/v1/query_exemplars?query=&start=&end=`: the exemplars of every series the
/// query's selectors select, in the time range, in Prometheus's answer shape.
async fn query_exemplars(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<ExemplarParams>,
) -> Result<Json<ExemplarsAnswer>, Problem> {
    let text = required("query", params.query)?;
    let start = parse_api_time("start", &required("start", params.start)?)?;
    let end = parse_api_time("end", &required("end", params.end)?)?;
    if end < start {
        return Err(Problem::invalid_field("end", "must not be before start"));
    }
    let parsed =
        promql::Query::parse(&text).map_err(|e| Problem::invalid_field("query", e.to_string()))?;
    let data = lock(&shared.exemplars).select(&parsed, start, end);
    Ok(Json(ExemplarsAnswer {
        status: "success".to_owned(),
        data,
    }))
}

async fn list_silences(State(shared): State<Arc<Shared>>) -> Json<SilencesAnswer> {
    let now = now_ms();
    let silences = lock(&shared.dispatcher).silences.list();
    Json(SilencesAnswer {
        silences: silences.iter().map(|s| silence_view(s, now)).collect(),
    })
}

fn silence_view(silence: &Silence, now: i64) -> SilenceView {
    SilenceView {
        id: silence.id.clone(),
        matchers: silence.matchers.clone(),
        starts_at: rfc3339(silence.starts_at),
        ends_at: rfc3339(silence.ends_at),
        created_by: silence.created_by.clone(),
        comment: silence.comment.clone(),
        status: SilenceStatus {
            state: silence.state(now),
        },
    }
}

fn parse_time(field: &str, text: &str) -> Result<i64, Problem> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| Problem::invalid_field(field, "must be an RFC 3339 time"))
}

async fn create_silence(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, Problem> {
    let new: NewSilence =
        serde_json::from_slice(&body).map_err(|e| Problem::bad_request(e.to_string()))?;
    let now = now_ms();
    let starts_at = match &new.starts_at {
        Some(text) => parse_time("startsAt", text)?,
        None => now,
    };
    let ends_at = match (&new.ends_at, &new.duration) {
        (Some(text), None) => parse_time("endsAt", text)?,
        (None, Some(text)) => {
            let ms = parse_duration_ms(text)
                .map_err(|e| Problem::invalid_field("duration", e.to_string()))?;
            starts_at + ms
        }
        _ => {
            return Err(Problem::invalid_field(
                "endsAt",
                "give exactly one of endsAt and duration",
            ));
        }
    };
    if new.created_by.trim().is_empty() {
        return Err(Problem::invalid_field("createdBy", "must not be empty"));
    }
    if new.comment.trim().is_empty() {
        return Err(Problem::invalid_field("comment", "must not be empty"));
    }
    if ends_at <= now {
        return Err(Problem::invalid_field("endsAt", "must be in the future"));
    }
    let silence = Silence {
        id: uuid::Uuid::now_v7().to_string(),
        matchers: new.matchers,
        starts_at,
        ends_at,
        created_by: new.created_by,
        comment: new.comment,
    };
    lock(&shared.dispatcher)
        .silences
        .upsert(silence.clone())
        .map_err(|e| Problem::invalid_field("matchers", e.to_string()))?;
    save_silence(&shared, &silence).await?;
    tracing::info!(
        id = silence.id,
        created_by = silence.created_by,
        "silence created"
    );
    shared.wake.notify_one();
    Ok((
        StatusCode::CREATED,
        Json(SilenceCreated {
            silence_id: silence.id.clone(),
            silence: silence_view(&silence, now),
        }),
    )
        .into_response())
}

async fn save_silence(shared: &Shared, silence: &Silence) -> Result<(), Problem> {
    let body = serde_json::to_string(silence).unwrap_or_default();
    shared
        .db
        .save_silence(&silence.id, &body, silence.ends_at)
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot save a silence");
            Problem::unavailable("the database is unavailable")
        })
}

async fn expire_silence(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<SilenceView>, Problem> {
    let now = now_ms();
    let silence = lock(&shared.dispatcher)
        .silences
        .expire(&id, now)
        .ok_or_else(|| Problem::not_found(format!("no silence has id {id}")))?;
    save_silence(&shared, &silence).await?;
    tracing::info!(id, "silence expired");
    shared.wake.notify_one();
    Ok(Json(silence_view(&silence, now)))
}

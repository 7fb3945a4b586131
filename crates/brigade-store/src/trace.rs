//! Client spans of store calls, named with OpenTelemetry's database conventions
//! (`db.system.name`, `db.operation.name`, `db.query.summary`), so a trace shows how much of a
//! request the database took and which statement it was.
//!
//! Only the calls on a request's path are spanned (placing and reading orders, idempotency
//! look-ups, the menu, sessions). Every field is a `&'static str` and nothing is made at all
//! when the process does not export traces, so a span costs a request one flag check when
//! export is off and no allocation of its own when on.

use std::future::Future;

use crate::StoreResult;

/// Runs `call` inside a client span for `operation` (`SELECT`, `INSERT`, …) on `summary`
/// (`SELECT orders`), on the backend sqlx names `database` (`SQLite`, `PostgreSQL`); a failed
/// call marks the span as an error.
pub(crate) async fn traced<T>(
    database: &'static str,
    operation: &'static str,
    summary: &'static str,
    call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    use tracing::Instrument as _;
    if !brigade_core::traces::recording() {
        return call.await;
    }
    let system = match database {
        "PostgreSQL" => "postgresql",
        "SQLite" => "sqlite",
        other => other,
    };
    let span = tracing::info_span!(
        "store",
        otel.name = summary,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        db.system.name = system,
        db.operation.name = operation,
        db.query.summary = summary,
    );
    let result = call.instrument(span.clone()).await;
    if result.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    result
}

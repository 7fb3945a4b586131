//! Business and database metrics of the ordering service, and `/metrics` itself.

use axum::extract::State;
use axum::response::IntoResponse;
use http::header;

use crate::state::AppState;

/// Accounts signed up.
pub const SIGNUPS: &str = "brigade_signups_total";
/// Login attempts by outcome.
pub const LOGINS: &str = "brigade_logins_total";
/// Every `outcome` label value of [`LOGINS`].
pub const LOGIN_OUTCOMES: [&str; 3] = ["succeeded", "failed", "limited"];

/// Orders written (idempotent replays excluded).
pub const ORDERS_PLACED: &str = "brigade_orders_placed_total";
/// Revenue of placed orders, minor units, by currency.
pub const ORDER_REVENUE: &str = "brigade_order_revenue_minor_total";
/// Orders placed and status changes requested through the API, by the status entered (the
/// kitchen's own `preparing`/`ready` steps show in the ticket metrics instead).
pub const ORDER_STATUS_CHANGES: &str = "brigade_order_status_changes_total";
/// Tickets the kitchen finished.
pub const TICKETS_COMPLETED: &str = "brigade_tickets_completed_total";
/// Requests answered from a stored idempotent response.
pub const IDEMPOTENT_REPLAYS: &str = "brigade_idempotent_replays_total";
/// Pooled database connections by state.
pub const DB_POOL_CONNECTIONS: &str = "brigade_db_pool_connections";
/// Pool size limit.
pub const DB_POOL_MAX: &str = "brigade_db_pool_max_connections";
/// Always 1; labels say which version and backend run.
pub const BUILD_INFO: &str = "brigade_build_info";

/// Registers help texts for every metric of the service, so the exposition passes
/// `promtool check metrics` from the first scrape.
pub fn describe(backend: &'static str) {
    brigade_core::http_metrics::describe();
    brigade_store::cache::describe_metrics();
    brigade_store::replica::describe_metrics();
    crate::session_cache::describe_metrics();
    brigade_store::pg_archiver::describe_metrics();
    metrics::describe_counter!(SIGNUPS, "Accounts signed up.");
    metrics::describe_counter!(
        brigade_payments::guard::METRIC,
        "Payment provider calls by provider and outcome (approved, declined, error, timeout, \
         circuit_open; captured, capture_failed, voided, void_failed)."
    );
    metrics::describe_counter!(
        LOGINS,
        "Login attempts by outcome (succeeded, failed, limited)."
    );
    metrics::describe_counter!(
        ORDERS_PLACED,
        "Orders placed (idempotent replays excluded)."
    );
    metrics::describe_counter!(
        ORDER_REVENUE,
        "Revenue of placed orders in minor currency units, by ISO 4217 currency."
    );
    metrics::describe_counter!(
        ORDER_STATUS_CHANGES,
        "Orders placed and status changes requested through the API, by the status entered."
    );
    metrics::describe_counter!(TICKETS_COMPLETED, "Kitchen tickets completed.");
    metrics::describe_counter!(
        IDEMPOTENT_REPLAYS,
        "Requests answered with the stored response of an earlier request with the same Idempotency-Key."
    );
    metrics::describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Pooled database connections, by state."
    );
    metrics::describe_gauge!(
        DB_POOL_MAX,
        "Largest number of pooled database connections."
    );
    metrics::describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels name the running version and backend."
    );
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "backend" => backend)
        .set(1.0);
}

/// Creates every counter whose label values are known in advance at zero, so the first event
/// counts: `increase()` and `rate()` need an earlier sample, and a series that first appears
/// with the value 1 has none (the first order, sign-up or failed payment would go unseen by
/// the alerts and charts).
pub fn register_at_zero(payments: &brigade_payments::Payments) {
    for name in [ORDERS_PLACED, TICKETS_COMPLETED, IDEMPOTENT_REPLAYS] {
        metrics::counter!(name).increment(0);
    }
    metrics::counter!(SIGNUPS).increment(0);
    for outcome in LOGIN_OUTCOMES {
        metrics::counter!(LOGINS, "outcome" => outcome).increment(0);
    }
    for status in brigade_domain::order::OrderStatus::ALL {
        metrics::counter!(ORDER_STATUS_CHANGES, "status" => status.as_str()).increment(0);
    }
    payments.register_metrics();
}

/// `GET /metrics`: the Prometheus text exposition, or OpenMetrics with trace exemplars on the
/// request-duration buckets when the scraper asks for it (`Accept: application/openmetrics-text`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4, or OpenMetrics 1.0.0 when asked for", body = String, content_type = "text/plain"))
)]
pub async fn metrics_endpoint(
    State(state): State<AppState>,
    headers: http::HeaderMap,
) -> impl IntoResponse {
    let pool = state.store.pool_stats();
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use")
        .set(f64::from(pool.size.saturating_sub(pool.idle)));
    metrics::gauge!(DB_POOL_MAX).set(f64::from(pool.max));
    let (content_type, text) = brigade_core::http_metrics::negotiate(
        headers.get(header::ACCEPT),
        brigade_core::metrics::renderer().render(),
    );
    ([(header::CONTENT_TYPE, content_type)], text)
}

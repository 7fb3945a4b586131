//! Off-peak work an operator (or `brigade up`'s scheduler) triggers, and what it prepares:
//! the daily sales report per shop, its refresh, and warming this replica's cache.
//!
//! The report is read from precomputed rows (`daily_sales`), so looking at a month of sales
//! costs a range read instead of a scan of a month of orders; the scheduler refreshes today
//! and yesterday every few minutes and once more after midnight UTC.

use axum::extract::State;
use brigade_core::{FieldError, Problem};
use brigade_store::SalesFilter;
use chrono::{DateTime, NaiveDate, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::caller::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::state::AppState;

/// Longest range `GET /admin/reports/daily` serves at once.
const MAX_REPORT_DAYS: i64 = 366;
/// Longest range one refresh recomputes (each day is one transaction over that day's orders).
const MAX_REFRESH_DAYS: i64 = 31;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(daily_report))
        .routes(routes!(refresh_daily_report))
        .routes(routes!(warm_cache))
}

/// Filters of `GET /admin/reports/daily`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// Only this shop.
    shop_id: Option<Uuid>,
    /// First UTC day, `YYYY-MM-DD` (default: six days before `to`).
    #[param(format = Date, example = "2026-11-22")]
    from: Option<String>,
    /// Last UTC day, `YYYY-MM-DD`, inclusive (default: today).
    #[param(format = Date, example = "2026-11-22")]
    to: Option<String>,
}

/// Days of `POST /admin/reports/daily/refresh`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RefreshQuery {
    /// First UTC day to recompute, `YYYY-MM-DD` (default: the day before `to`).
    #[param(format = Date, example = "2026-11-22")]
    from: Option<String>,
    /// Last UTC day to recompute, `YYYY-MM-DD`, inclusive (default: today).
    #[param(format = Date, example = "2026-11-22")]
    to: Option<String>,
}

/// One shop's sales on one UTC day, in one currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DailySalesRow {
    /// The UTC day the orders were placed.
    pub day: NaiveDate,
    /// The shop.
    pub shop_id: Uuid,
    /// Its name.
    pub shop_name: String,
    /// ISO 4217 currency of the orders and the revenue.
    pub currency: String,
    /// Orders placed that day (past payment: not `awaiting_payment` or `payment_failed`).
    pub orders: i64,
    /// Of those, delivered by now.
    pub delivered: i64,
    /// Of those, cancelled by now.
    pub cancelled: i64,
    /// Money captured for those orders, in minor units (delivered orders whose payment was
    /// captured; a capture still in progress counts after the next refresh).
    pub revenue_minor: i64,
    /// When this row was last recomputed.
    pub computed_at: DateTime<Utc>,
}

impl From<brigade_store::DailySales> for DailySalesRow {
    fn from(row: brigade_store::DailySales) -> Self {
        Self {
            day: row.day,
            shop_id: row.shop_id,
            shop_name: row.shop_name,
            currency: row.currency,
            orders: row.orders,
            delivered: row.delivered,
            cancelled: row.cancelled,
            revenue_minor: row.revenue_minor,
            computed_at: row.computed_at,
        }
    }
}

/// Daily sales rows of a range of days.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DailyReport {
    /// First day of the range.
    pub from: NaiveDate,
    /// Last day of the range, inclusive.
    pub to: NaiveDate,
    /// Rows by day, then shop name. A shop without orders on a day has no row for it.
    pub items: Vec<DailySalesRow>,
}

/// What a cache warm-up loaded into the cache of the replica that answered.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CacheWarmed {
    /// `memory` (this process only) or `redis` (shared by every replica).
    pub cache: String,
    /// Shop menus loaded.
    pub menus: usize,
    /// Open shops in the cached list of candidates for orders without a shop.
    pub open_shops: usize,
    /// Shops whose kitchen load was loaded.
    pub loads: usize,
    /// How long it took.
    pub duration_ms: u64,
}

/// Daily sales per shop, precomputed; the newest numbers are at most one refresh old.
///
/// Roles: admin.
#[utoipa::path(get, path = "/api/v1/admin/reports/daily", tag = "reports", security(("bearer" = [])),
    params(DailyQuery),
    responses(
        (status = 200, description = "The rows of the range", body = DailyReport),
        (status = 403, description = "Admins only"),
        (status = 404, description = "No shop with this shop_id"),
    ))]
async fn daily_report(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<DailyQuery>,
) -> ApiResult<axum::Json<DailyReport>> {
    let (from, to) = range(
        query.from.as_deref(),
        query.to.as_deref(),
        6,
        MAX_REPORT_DAYS,
    )?;
    if let Some(shop_id) = query.shop_id {
        state.store.get_shop(shop_id).await?;
    }
    let rows = state
        .store
        .daily_sales(&SalesFilter {
            shop_id: query.shop_id,
            from,
            to,
        })
        .await?;
    Ok(axum::Json(DailyReport {
        from,
        to,
        items: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Recomputes the daily sales of a range of days (default: yesterday and today) from the
/// orders and payments, replacing what was stored; answers the recomputed rows. Running it
/// twice changes nothing. `brigade up`'s scheduler calls it off-peak.
///
/// Roles: admin.
#[utoipa::path(post, path = "/api/v1/admin/reports/daily/refresh", tag = "reports", security(("bearer" = [])),
    params(RefreshQuery),
    responses(
        (status = 200, description = "The recomputed rows", body = DailyReport),
        (status = 403, description = "Admins only"),
    ))]
async fn refresh_daily_report(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<RefreshQuery>,
) -> ApiResult<axum::Json<DailyReport>> {
    let (from, to) = range(
        query.from.as_deref(),
        query.to.as_deref(),
        1,
        MAX_REFRESH_DAYS,
    )?;
    let started = std::time::Instant::now();
    let mut items = Vec::new();
    for day in from.iter_days().take_while(|day| *day <= to) {
        let rows = state.store.refresh_daily_sales(day).await?;
        items.extend(rows.into_iter().map(DailySalesRow::from));
    }
    tracing::info!(
        %from,
        %to,
        rows = items.len(),
        duration_ms = started.elapsed().as_millis() as u64,
        "daily sales refreshed"
    );
    Ok(axum::Json(DailyReport { from, to, items }))
}

/// Loads every shop's menu, the list of open shops and their kitchen load into the cache of
/// the replica that answers (with Redis: into the cache every replica shares), replacing
/// what is there, so the first customers after a quiet spell do not pay for the misses.
///
/// Roles: admin.
#[utoipa::path(post, path = "/api/v1/admin/cache/warm", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "What was loaded into the cache", body = CacheWarmed),
        (status = 403, description = "Admins only"),
    ))]
async fn warm_cache(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<axum::Json<CacheWarmed>> {
    let started = std::time::Instant::now();
    let warmed = crate::catalogue_cache::warm(&state).await?;
    let duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        menus = warmed.menus,
        open_shops = warmed.open_shops,
        loads = warmed.loads,
        duration_ms,
        "cache warmed"
    );
    Ok(axum::Json(CacheWarmed {
        cache: state.cache.kind().to_owned(),
        menus: warmed.menus,
        open_shops: warmed.open_shops,
        loads: warmed.loads,
        duration_ms,
    }))
}

/// `from..=to` from the query: `to` defaults to today (UTC), `from` to `default_span` days
/// before `to`; at most `max_days` days. Problems name the parameter.
fn range(
    from: Option<&str>,
    to: Option<&str>,
    default_span: i64,
    max_days: i64,
) -> ApiResult<(NaiveDate, NaiveDate)> {
    let to = match to {
        Some(text) => day("to", text)?,
        None => brigade_domain::now().date_naive(),
    };
    let from = match from {
        Some(text) => day("from", text)?,
        None => to - chrono::Duration::days(default_span),
    };
    if from > to {
        return Err(bad_query("from", "must not be after to"));
    }
    if (to - from).num_days() >= max_days {
        return Err(bad_query(
            "to",
            &format!("must be less than {max_days} days after from"),
        ));
    }
    Ok((from, to))
}

/// A `YYYY-MM-DD` query parameter.
fn day(field: &str, text: &str) -> ApiResult<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
        .ok_or_else(|| bad_query(field, "must be a date like 2026-11-22 (YYYY-MM-DD, UTC)"))
}

fn bad_query(field: &str, message: &str) -> ApiError {
    Problem::invalid(
        StatusCode::BAD_REQUEST,
        vec![FieldError::new(field, message)],
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn ranges_default_and_are_bounded() {
        let (from, to) = range(None, Some("2026-11-22"), 6, 366).unwrap();
        assert_eq!((from, to), (date("2026-11-16"), date("2026-11-22")));
        let (from, to) = range(Some("2026-11-22"), Some("2026-11-22"), 6, 366).unwrap();
        assert_eq!(from, to);
        assert!(range(Some("2026-11-23"), Some("2026-11-22"), 6, 366).is_err());
        assert!(range(Some("2025-01-01"), Some("2026-11-22"), 6, 366).is_err());
        for bad in [
            "2026-13-01",
            "22.11.2026",
            "2026-1-1",
            "yesterday",
            "2026-11-22T00:00",
        ] {
            assert!(day("from", bad).is_err(), "{bad}");
        }
    }
}

//! Types of the precomputed reports: daily sales per shop.
//!
//! The numbers are computed by [`Reports::refresh_daily_sales`](crate::Reports) off the request
//! path (the supervisor's scheduler calls it every few minutes) and read back cheaply, so an
//! admin looking at a month of sales never scans a month of orders.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

/// One shop's sales on one UTC day, in one currency, as of `computed_at`.
///
/// An order counts on the UTC day it was placed. `orders` counts every order that got past
/// payment (not `awaiting_payment`, not `payment_failed`); `delivered` and `cancelled` are the
/// subsets in those statuses now; `revenue_minor` is the sum of the day's orders' *captured*
/// payments, i.e. money actually taken (a delivered order whose capture is still pending
/// counts once the capture settles and the day is refreshed again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailySales {
    /// The UTC day.
    pub day: NaiveDate,
    /// The shop.
    pub shop_id: Uuid,
    /// The shop's name, for people reading the report.
    pub shop_name: String,
    /// ISO 4217 currency of the orders and revenue.
    pub currency: String,
    /// Orders placed (past payment).
    pub orders: i64,
    /// Of those, delivered.
    pub delivered: i64,
    /// Of those, cancelled.
    pub cancelled: i64,
    /// Captured payments, in minor units of `currency`.
    pub revenue_minor: i64,
    /// When the row was last recomputed.
    pub computed_at: DateTime<Utc>,
}

/// Which daily sales rows to list.
#[derive(Debug, Clone)]
pub struct SalesFilter {
    /// Only this shop's rows.
    pub shop_id: Option<Uuid>,
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
}

/// The half-open UTC interval `[start, end)` of a day, as stored order times are compared.
pub(crate) fn day_bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
    (start, start + chrono::Duration::days(1))
}

#[derive(sqlx::FromRow)]
pub(crate) struct DailySalesRow {
    day: NaiveDate,
    shop_id: Uuid,
    shop_name: String,
    currency: String,
    orders: i64,
    delivered: i64,
    cancelled: i64,
    revenue_minor: i64,
    computed_at: DateTime<Utc>,
}

impl From<DailySalesRow> for DailySales {
    fn from(row: DailySalesRow) -> Self {
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_day_is_midnight_to_midnight_utc() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let (start, end) = super::day_bounds(day);
        assert_eq!(start.to_rfc3339(), "2026-03-29T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-03-30T00:00:00+00:00");
    }
}

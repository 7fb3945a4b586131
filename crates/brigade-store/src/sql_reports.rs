//! Daily sales: recomputing a day and listing rows, expanded inside `impl_store!` for each
//! backend. The same SQL runs on both: a day is compared as a half-open interval of stored
//! timestamps (RFC 3339 text in UTC on SQLite sorts like time), never with date functions,
//! which differ between the two.

/// The `Reports` methods.
macro_rules! report_methods {
    ($store:ty, $db:ty, begin = $begin:literal) => {
        #[async_trait::async_trait]
        impl $crate::Reports for $store {
            async fn refresh_daily_sales(
                &self,
                day: chrono::NaiveDate,
            ) -> $crate::StoreResult<Vec<$crate::DailySales>> {
                use $crate::error::classify;
                let (start, end) = $crate::reports::day_bounds(day);
                let computed_at = brigade_domain::now();
                let _writer = self.writer.enter().await?;
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                // Upsert every (shop, currency) that had orders that day…
                sqlx::query(
                    "INSERT INTO daily_sales (day, shop_id, currency, orders, delivered, \
                     cancelled, revenue_minor, computed_at) \
                     SELECT $1, o.shop_id, o.currency, COUNT(*), \
                     SUM(CASE WHEN o.status = 'delivered' THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN o.status = 'cancelled' THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN p.status = 'captured' THEN p.amount_minor ELSE 0 END), $4 \
                     FROM orders o LEFT JOIN payments p ON p.order_id = o.id \
                     WHERE o.created_at >= $2 AND o.created_at < $3 \
                     AND o.status NOT IN ('awaiting_payment', 'payment_failed') \
                     GROUP BY o.shop_id, o.currency \
                     ON CONFLICT (day, shop_id, currency) DO UPDATE SET \
                     orders = excluded.orders, delivered = excluded.delivered, \
                     cancelled = excluded.cancelled, revenue_minor = excluded.revenue_minor, \
                     computed_at = excluded.computed_at",
                )
                .bind(day)
                .bind(start)
                .bind(end)
                .bind(computed_at)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                // …and drop the day's rows this run did not produce, so running it twice
                // gives the same rows as running it once.
                sqlx::query("DELETE FROM daily_sales WHERE day = $1 AND computed_at <> $2")
                    .bind(day)
                    .bind(computed_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                let rows: Vec<$crate::reports::DailySalesRow> = sqlx::query_as(concat!(
                    $crate::sql_reports::daily_sales_select!(),
                    " WHERE d.day = $1 ORDER BY s.name, d.shop_id, d.currency"
                ))
                .bind(day)
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
                tx.commit().await.map_err(classify)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn daily_sales(
                &self,
                filter: &$crate::SalesFilter,
            ) -> $crate::StoreResult<Vec<$crate::DailySales>> {
                let rows: Vec<$crate::reports::DailySalesRow> = self
                    .stale_read(|pool| async move {
                        sqlx::query_as(concat!(
                            $crate::sql_reports::daily_sales_select!(),
                            " WHERE ($1 IS NULL OR d.shop_id = $1) AND d.day >= $2 \
                             AND d.day <= $3 ORDER BY d.day, s.name, d.shop_id, d.currency"
                        ))
                        .bind(filter.shop_id)
                        .bind(filter.from)
                        .bind(filter.to)
                        .fetch_all(&pool)
                        .await
                    })
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }
        }
    };
}

/// `SELECT … FROM daily_sales d JOIN shops s`, in `DailySalesRow` order.
macro_rules! daily_sales_select {
    () => {
        "SELECT d.day, d.shop_id, s.name AS shop_name, d.currency, d.orders, d.delivered, \
         d.cancelled, d.revenue_minor, d.computed_at \
         FROM daily_sales d JOIN shops s ON s.id = d.shop_id"
    };
}

pub(crate) use {daily_sales_select, report_methods};

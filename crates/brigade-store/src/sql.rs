//! The one implementation of [`Store`](crate::Store), written once and expanded for each backend.
//!
//! Both SQLite and PostgreSQL accept the same SQL here (`$n` parameters, `RETURNING`,
//! `ON CONFLICT`), so the only per-backend inputs are how a write transaction begins (SQLite
//! needs `BEGIN IMMEDIATE` so that concurrent writers queue on the busy timeout instead of
//! failing on lock upgrade) and the row-lock clause (PostgreSQL's `FOR UPDATE`; SQLite has a
//! single writer, so the write transaction itself is the lock). A macro rather than generic code
//! because sqlx's per-database trait bounds would bury the SQL under `where` clauses.
//!
//! Lock order, everywhere: the order row first, then its tickets. Keeping one order makes
//! deadlocks between claims, completions and cancellations impossible.

macro_rules! impl_store {
    ($store:ty, $db:ty, backend = $backend:expr, begin = $begin:literal, lock = $lock:literal) => {
        $crate::sql_ledger::ledger_methods!($store, $db, begin = $begin);
        $crate::sql_reports::report_methods!($store, $db, begin = $begin);
        $crate::sql_catalogue::catalogue_methods!($store, $db, begin = $begin, lock = $lock);
        $crate::sql_orders::orders_methods!($store, $db, begin = $begin, lock = $lock);
        $crate::sql_kitchen::kitchen_methods!($store, $db, begin = $begin, lock = $lock);
        $crate::sql_accounts::accounts_methods!($store, $db, begin = $begin, lock = $lock);

        impl $store {
            /// How this backend's statements of one batch travel (see `batch`).
            const TRAVEL: $crate::batch::Travel = match $backend {
                $crate::Backend::Sqlite => $crate::batch::Travel::Together,
                $crate::Backend::Postgres => $crate::batch::Travel::OneByOne,
            };

            $crate::sql_ledger::ledger_helpers!($db, lock = $lock);
            $crate::sql_settle::settle_helpers!($db, begin = $begin);

            /// Reads one order with lines, tickets and history on an open connection.
            async fn load_order(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
            ) -> $crate::StoreResult<brigade_domain::Order> {
                use $crate::error::classify;
                use $crate::rows::*;
                let row: OrderRow = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::order_columns!(),
                    " FROM orders WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(classify)?
                .ok_or($crate::StoreError::NotFound("order"))?;
                let lines: Vec<LineRow> = sqlx::query_as(
                    "SELECT order_id, item_id, name, quantity, unit_price_minor, station_id \
                     FROM order_lines WHERE order_id = $1 ORDER BY line_no",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await
                .map_err(classify)?;
                let tickets: Vec<TicketRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::ticket_columns!(),
                    " FROM tickets t WHERE t.order_id = $1 ORDER BY t.id"
                ))
                .bind(id)
                .fetch_all(&mut *conn)
                .await
                .map_err(classify)?;
                let events: Vec<EventRow> = sqlx::query_as(
                    "SELECT status, actor, at FROM order_events WHERE order_id = $1 ORDER BY seq",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await
                .map_err(classify)?;
                let tickets = tickets
                    .into_iter()
                    .map(|ticket| ticket.into_ticket(&lines))
                    .collect::<Result<Vec<_>, _>>()?;
                let history = events
                    .into_iter()
                    .map(brigade_domain::OrderEvent::try_from)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(brigade_domain::Order {
                    id: row.id,
                    shop_id: row.shop_id,
                    customer_id: row.customer_id,
                    status: order_status(&row.status)?,
                    version: row.version,
                    lines: lines.into_iter().map(Into::into).collect(),
                    total_minor: row.total_minor,
                    currency: row.currency,
                    delivery: brigade_domain::GeoPoint {
                        lat: row.delivery_lat,
                        lon: row.delivery_lon,
                    },
                    distance_m: row.distance_m,
                    eta_seconds: row.eta_seconds,
                    estimated_ready_at: row.estimated_ready_at,
                    estimated_delivery_at: row.estimated_delivery_at,
                    tickets,
                    history,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                })
            }

            /// Reads one ticket with its items.
            async fn load_ticket(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
            ) -> $crate::StoreResult<brigade_domain::Ticket> {
                use $crate::error::classify;
                use $crate::rows::*;
                let row: TicketRow = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::ticket_columns!(),
                    " FROM tickets t WHERE t.id = $1"
                ))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(classify)?
                .ok_or($crate::StoreError::NotFound("ticket"))?;
                let lines: Vec<LineRow> = sqlx::query_as(
                    "SELECT order_id, item_id, name, quantity, unit_price_minor, station_id \
                     FROM order_lines WHERE order_id = $1 AND station_id = $2 ORDER BY line_no",
                )
                .bind(row.order_id)
                .bind(row.station_id)
                .fetch_all(&mut *conn)
                .await
                .map_err(classify)?;
                row.into_ticket(&lines)
            }

            /// Fails with `NotFound(what)` unless `query` (selecting `1` by `$1`) finds a row.
            async fn require<'e, E>(
                executor: E,
                query: &'static str,
                id: uuid::Uuid,
                what: &'static str,
            ) -> $crate::StoreResult<()>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let found: Option<i32> = sqlx::query_scalar(query)
                    .bind(id)
                    .fetch_optional(executor)
                    .await
                    .map_err($crate::error::classify)?;
                found.map(drop).ok_or($crate::StoreError::NotFound(what))
            }

            /// Locks an order row (on PostgreSQL) and returns its status and version.
            async fn lock_order(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
            ) -> $crate::StoreResult<(brigade_domain::OrderStatus, i64)> {
                let row: Option<(String, i64)> = sqlx::query_as(concat!(
                    "SELECT status, version FROM orders WHERE id = $1",
                    $lock
                ))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
                .map_err($crate::error::classify)?;
                let (status, version) = row.ok_or($crate::StoreError::NotFound("order"))?;
                Ok(($crate::rows::order_status(&status)?, version))
            }

            /// Moves a locked order from `from` to `status`, bumping its version and recording
            /// the event in its history and in the audit trail.
            async fn set_order_status(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
                from: brigade_domain::OrderStatus,
                status: brigade_domain::OrderStatus,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<()> {
                use $crate::error::classify;
                let now = brigade_domain::now();
                sqlx::query(
                    "UPDATE orders SET status = $1, version = version + 1, updated_at = $2 \
                     WHERE id = $3",
                )
                .bind(status.as_str())
                .bind(now)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
                sqlx::query(
                    "INSERT INTO order_events (order_id, seq, status, actor, at) \
                     SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 \
                     FROM order_events WHERE order_id = $1",
                )
                .bind(id)
                .bind(status.as_str())
                .bind(&actor.0)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
                Self::record(
                    conn,
                    actor,
                    $crate::AuditEntry::new("order.status_changed", "order", id)
                        .before(serde_json::json!({ "status": from }))
                        .after(serde_json::json!({ "status": status })),
                )
                .await
            }

            /// Claims a queued ticket of a locked order; the first claim starts the order.
            async fn claim_locked(
                conn: &mut <$db as sqlx::Database>::Connection,
                ticket_id: uuid::Uuid,
                order_id: uuid::Uuid,
                order_status: brigade_domain::OrderStatus,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<bool> {
                let claimed = sqlx::query(
                    "UPDATE tickets SET status = 'claimed', claimed_by = $1, claimed_at = $2 \
                     WHERE id = $3 AND status = 'queued'",
                )
                .bind(&actor.0)
                .bind(brigade_domain::now())
                .bind(ticket_id)
                .execute(&mut *conn)
                .await
                .map_err($crate::error::classify)?
                .rows_affected();
                if claimed == 0 {
                    return Ok(false);
                }
                Self::record(
                    conn,
                    actor,
                    $crate::AuditEntry::new("ticket.claimed", "ticket", ticket_id)
                        .before(serde_json::json!({ "status": "queued" }))
                        .after(serde_json::json!({ "status": "claimed", "claimed_by": actor })),
                )
                .await?;
                if order_status == brigade_domain::OrderStatus::Accepted {
                    Self::set_order_status(
                        conn,
                        order_id,
                        order_status,
                        brigade_domain::OrderStatus::Preparing,
                        actor,
                    )
                    .await?;
                }
                Ok(true)
            }

            /// The oldest claimable ticket of a station.
            async fn next_claimable(
                conn: &mut <$db as sqlx::Database>::Connection,
                station_id: uuid::Uuid,
            ) -> $crate::StoreResult<Option<(uuid::Uuid, uuid::Uuid)>> {
                sqlx::query_as(concat!(
                    "SELECT t.id, t.order_id FROM tickets t JOIN orders o ON o.id = t.order_id \
                     WHERE t.station_id = $1 AND t.status = 'queued' AND o.status IN ",
                    $crate::sql_shared::cookable_order!(),
                    " ORDER BY t.id LIMIT 1"
                ))
                .bind(station_id)
                .fetch_optional(&mut *conn)
                .await
                .map_err($crate::error::classify)
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> $crate::Backend {
                $backend
            }

            fn pool_stats(&self) -> $crate::PoolStats {
                $crate::PoolStats {
                    size: self.pool.size(),
                    idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                    max: self.pool.options().get_max_connections(),
                }
            }

            async fn ping(&self) -> $crate::StoreResult<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err($crate::error::classify)?;
                Ok(())
            }

            async fn probe_write(&self) -> $crate::StoreResult<()> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                // A probe runs while writes fail: it starts from a fresh write connection.
                self.renew_write_connection();
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                sqlx::query(
                    "INSERT INTO write_probe (id, probed_at) VALUES (1, $1) \
                     ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
                )
                .bind(brigade_domain::now())
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                tx.commit().await.map_err(classify)?;
                Ok(())
            }

            async fn migrate(&self) -> $crate::StoreResult<usize> {
                use sqlx::migrate::Migrate;
                let mut conn = self.pool.acquire().await.map_err($crate::error::classify)?;
                conn.ensure_migrations_table(self.migrator.table_name.as_ref()).await?;
                let applied: std::collections::HashSet<i64> = conn
                    .list_applied_migrations(self.migrator.table_name.as_ref())
                    .await?
                    .into_iter()
                    .map(|m| m.version)
                    .collect();
                drop(conn);
                self.migrator.run(&self.pool).await?;
                Ok(self
                    .migrator
                    .iter()
                    .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
                    .count())
            }

            async fn read_fence(&self) -> $crate::StoreResult<Option<$crate::replica::Lsn>> {
                self.read_fence_now().await
            }

            async fn close(&self) {
                self.close_pools().await;
            }
        }
    };
}

pub(crate) use impl_store;

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

/// Columns of `orders`, in `OrderRow` order.
macro_rules! order_columns {
    () => {
        "id, shop_id, status, version, total_minor, currency, delivery_lat, delivery_lon, \
         distance_m, eta_seconds, estimated_ready_at, estimated_delivery_at, created_at, updated_at, \
         customer_id"
    };
}

/// Binds an order's first 14 `orders` columns (id … updated_at, in `order_columns!` order) to
/// a query; both ways of writing an order use it, so their column lists cannot drift apart.
macro_rules! bind_order_row {
    ($query:expr, $order:expr) => {
        $query
            .bind($order.id)
            .bind($order.shop_id)
            .bind($order.status.as_str())
            .bind($order.version)
            .bind($order.total_minor)
            .bind(&$order.currency)
            .bind($order.delivery.lat)
            .bind($order.delivery.lon)
            .bind($order.distance_m)
            .bind($order.eta_seconds)
            .bind($order.estimated_ready_at)
            .bind($order.estimated_delivery_at)
            .bind($order.created_at)
            .bind($order.updated_at)
    };
}

/// Columns of `payments`, in `PaymentRow` order.
macro_rules! payment_columns {
    () => {
        "id, order_id, provider, status, reference, amount_minor, currency, reason, created_at, \
         updated_at"
    };
}

/// Columns of `shops`, in `ShopRow` order.
macro_rules! shop_columns {
    () => {
        "id, name, region, lat, lon, open, created_at, updated_at"
    };
}

/// Columns of `items`, in `ItemRow` order.
macro_rules! item_columns {
    () => {
        "id, sku, name, description, category, price_minor, currency, created_at"
    };
}

/// Columns of `accounts` prefixed with `a.`, in `AccountRow` order.
macro_rules! account_columns {
    () => {
        "a.id, a.email, a.role, a.shop_id, a.created_at"
    };
}

/// Columns of `tickets` prefixed with `t.`, in `TicketRow` order.
macro_rules! ticket_columns {
    () => {
        "t.id, t.order_id, t.shop_id, t.station_id, t.status, t.work_seconds, t.claimed_by, \
         t.created_at, t.claimed_at, t.completed_at"
    };
}

/// Ticket statuses that still count as kitchen work.
macro_rules! open_ticket {
    () => {
        "('queued', 'claimed')"
    };
}

/// Order statuses whose tickets may be claimed.
macro_rules! cookable_order {
    () => {
        "('accepted', 'preparing')"
    };
}

macro_rules! impl_store {
    ($store:ty, $db:ty, backend = $backend:expr, begin = $begin:literal, lock = $lock:literal) => {
        $crate::sql_ledger::ledger_methods!($store, $db, begin = $begin);
        $crate::sql_reports::report_methods!($store, $db, begin = $begin);

        impl $store {
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
                    $crate::sql::order_columns!(),
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
                    $crate::sql::ticket_columns!(),
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
                    $crate::sql::ticket_columns!(),
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
                    $crate::sql::cookable_order!(),
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
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
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

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn create_shop(
                &self,
                shop: &brigade_domain::NewShop,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Shop> {
                use $crate::error::classify;
                let now = brigade_domain::now();
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                let row: $crate::rows::ShopRow = sqlx::query_as(concat!(
                    "INSERT INTO shops (",
                    $crate::sql::shop_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
                    $crate::sql::shop_columns!()
                ))
                .bind(uuid::Uuid::now_v7())
                .bind(&shop.name)
                .bind(&shop.region)
                .bind(shop.location.lat)
                .bind(shop.location.lon)
                .bind(shop.open)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::error::unique_as("a shop with this name already exists"))?;
                let shop: brigade_domain::Shop = row.into();
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("shop.created", "shop", shop.id).after(&shop),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(shop)
            }

            async fn list_shops(
                &self,
                filter: &$crate::ShopFilter,
            ) -> $crate::StoreResult<Vec<brigade_domain::Shop>> {
                let rows: Vec<$crate::rows::ShopRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::shop_columns!(),
                    " FROM shops WHERE ($1 IS NULL OR region = $1) AND ($2 IS NULL OR open = $2) \
                     ORDER BY name"
                ))
                .bind(filter.region.as_deref())
                .bind(filter.open)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn get_shop(&self, id: uuid::Uuid) -> $crate::StoreResult<brigade_domain::Shop> {
                let row: Option<$crate::rows::ShopRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::shop_columns!(),
                    " FROM shops WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                row.map(Into::into).ok_or($crate::StoreError::NotFound("shop"))
            }

            async fn update_shop(
                &self,
                id: uuid::Uuid,
                patch: &brigade_domain::ShopPatch,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Shop> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                let before: Option<$crate::rows::ShopRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::shop_columns!(),
                    " FROM shops WHERE id = $1",
                    $lock
                ))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                let before: brigade_domain::Shop =
                    before.ok_or($crate::StoreError::NotFound("shop"))?.into();
                let row: Option<$crate::rows::ShopRow> = sqlx::query_as(concat!(
                    "UPDATE shops SET name = COALESCE($1, name), region = COALESCE($2, region), \
                     lat = COALESCE($3, lat), lon = COALESCE($4, lon), open = COALESCE($5, open), \
                     updated_at = $6 WHERE id = $7 RETURNING ",
                    $crate::sql::shop_columns!()
                ))
                .bind(patch.name.as_deref())
                .bind(patch.region.as_deref())
                .bind(patch.location.map(|l| l.lat))
                .bind(patch.location.map(|l| l.lon))
                .bind(patch.open)
                .bind(brigade_domain::now())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::error::unique_as("a shop with this name already exists"))?;
                let shop: brigade_domain::Shop =
                    row.ok_or($crate::StoreError::NotFound("shop"))?.into();
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("shop.updated", "shop", id)
                        .before(&before)
                        .after(&shop),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(shop)
            }

            async fn create_station(
                &self,
                shop_id: uuid::Uuid,
                station: &brigade_domain::NewStation,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Station> {
                use $crate::error::{classify, unique_as};
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                Self::require(&mut *tx, "SELECT 1 FROM shops WHERE id = $1", shop_id, "shop")
                    .await?;
                let id = uuid::Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO stations (id, shop_id, name, capacity, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(shop_id)
                .bind(&station.name)
                .bind(station.capacity)
                .bind(brigade_domain::now())
                .execute(&mut *tx)
                .await
                .map_err(unique_as("this shop already has a station with this name"))?;
                for (category, seconds) in &station.prep_seconds {
                    let detail = format!(
                        "category {category} is already cooked at another station of this shop"
                    );
                    sqlx::query(
                        "INSERT INTO station_categories (station_id, shop_id, category, prep_seconds) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(id)
                    .bind(shop_id)
                    .bind(category)
                    .bind(*seconds)
                    .execute(&mut *tx)
                    .await
                    .map_err(unique_as(&detail))?;
                }
                let station = brigade_domain::Station {
                    id,
                    shop_id,
                    name: station.name.clone(),
                    capacity: station.capacity,
                    prep_seconds: station.prep_seconds.clone(),
                };
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("station.created", "station", id).after(&station),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(station)
            }

            async fn list_stations(
                &self,
                shop_id: uuid::Uuid,
            ) -> $crate::StoreResult<Vec<brigade_domain::Station>> {
                use $crate::error::classify;
                use $crate::rows::*;
                let stations: Vec<StationRow> = sqlx::query_as(
                    "SELECT id, shop_id, name, capacity FROM stations WHERE shop_id = $1 ORDER BY name",
                )
                .bind(shop_id)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
                let categories: Vec<StationCategoryRow> = sqlx::query_as(
                    "SELECT station_id, category, prep_seconds FROM station_categories \
                     WHERE shop_id = $1 ORDER BY category",
                )
                .bind(shop_id)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
                Ok(stations
                    .into_iter()
                    .map(|station| station.into_station(&categories))
                    .collect())
            }

            async fn station_loads(
                &self,
                shop_id: uuid::Uuid,
            ) -> $crate::StoreResult<Vec<brigade_domain::StationLoad>> {
                let rows: Vec<$crate::rows::LoadRow> = sqlx::query_as(concat!(
                    "SELECT s.id AS station_id, s.shop_id, s.capacity, \
                     CAST(COALESCE(SUM(t.work_seconds), 0) AS BIGINT) AS queued_work_seconds \
                     FROM stations s LEFT JOIN tickets t ON t.station_id = s.id AND t.status IN ",
                    $crate::sql::open_ticket!(),
                    " WHERE s.shop_id = $1 GROUP BY s.id, s.shop_id, s.capacity"
                ))
                .bind(shop_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn create_item(
                &self,
                item: &brigade_domain::NewItem,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Item> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                let row: $crate::rows::ItemRow = sqlx::query_as(concat!(
                    "INSERT INTO items (",
                    $crate::sql::item_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
                    $crate::sql::item_columns!()
                ))
                .bind(uuid::Uuid::now_v7())
                .bind(&item.sku)
                .bind(&item.name)
                .bind(&item.description)
                .bind(&item.category)
                .bind(item.price_minor)
                .bind(&item.currency)
                .bind(brigade_domain::now())
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::error::unique_as("an item with this sku already exists"))?;
                let item: brigade_domain::Item = row.into();
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("item.created", "item", item.id).after(&item),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(item)
            }

            async fn list_items(&self) -> $crate::StoreResult<Vec<brigade_domain::Item>> {
                let rows: Vec<$crate::rows::ItemRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::item_columns!(),
                    " FROM items ORDER BY category, name"
                ))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn get_item(&self, id: uuid::Uuid) -> $crate::StoreResult<brigade_domain::Item> {
                let row: Option<$crate::rows::ItemRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::item_columns!(),
                    " FROM items WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                row.map(Into::into).ok_or($crate::StoreError::NotFound("item"))
            }

            async fn set_availability(
                &self,
                shop_id: uuid::Uuid,
                item_id: uuid::Uuid,
                available: bool,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<()> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                Self::require(&mut *tx, "SELECT 1 FROM shops WHERE id = $1", shop_id, "shop")
                    .await?;
                Self::require(&mut *tx, "SELECT 1 FROM items WHERE id = $1", item_id, "item")
                    .await?;
                let before: Option<bool> = sqlx::query_scalar(
                    "SELECT available FROM shop_items WHERE shop_id = $1 AND item_id = $2",
                )
                .bind(shop_id)
                .bind(item_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                let mut entry =
                    $crate::AuditEntry::new("menu.availability_set", "menu", format!("{shop_id}/{item_id}"))
                        .after(serde_json::json!({ "shop_id": shop_id, "item_id": item_id, "available": available }));
                if let Some(before) = before {
                    entry = entry.before(serde_json::json!({ "available": before }));
                }
                Self::record(&mut tx, actor, entry).await?;
                sqlx::query(
                    "INSERT INTO shop_items (shop_id, item_id, available) VALUES ($1, $2, $3) \
                     ON CONFLICT (shop_id, item_id) DO UPDATE SET available = excluded.available",
                )
                .bind(shop_id)
                .bind(item_id)
                .bind(available)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                tx.commit().await.map_err(classify)?;
                Ok(())
            }

            async fn menu(
                &self,
                shop_id: uuid::Uuid,
            ) -> $crate::StoreResult<Vec<brigade_domain::MenuItem>> {
                let rows: Vec<$crate::rows::MenuRow> = sqlx::query_as(
                    "SELECT i.id AS item_id, i.sku, i.name, i.description, i.category, \
                     i.price_minor, i.currency, si.available, sc.station_id, sc.prep_seconds \
                     FROM shop_items si JOIN items i ON i.id = si.item_id \
                     JOIN station_categories sc ON sc.shop_id = si.shop_id AND sc.category = i.category \
                     WHERE si.shop_id = $1 ORDER BY i.category, i.name",
                )
                .bind(shop_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn place_order(
                &self,
                placement: $crate::Placement,
            ) -> $crate::StoreResult<$crate::PlaceOutcome> {
                use $crate::error::classify;
                use $crate::{ConflictKind, PlaceOutcome, StoreError};
                if let Some(outcome) = self.place_in_one_statement(&placement).await? {
                    return Ok(outcome);
                }
                let $crate::Placement { mut order, actor, idempotency, payment } = placement;
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                if let Some(key) = &idempotency {
                    // Claim the key first: a concurrent request with the same key waits here
                    // (PostgreSQL's unique index, SQLite's write lock) and then replays.
                    // The answer is written when the payment settles; until then a retry
                    // hears that the first request is still in progress.
                    let inserted = sqlx::query(
                        "INSERT INTO idempotency_keys \
                         (scope, key, request_hash, status, response_body, created_at, order_id) \
                         VALUES ($1, $2, $3, 0, '', $4, $5) ON CONFLICT (scope, key) DO NOTHING",
                    )
                    .bind(&key.scope)
                    .bind(&key.key)
                    .bind(&key.request_hash)
                    .bind(order.created_at)
                    .bind(order.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?
                    .rows_affected();
                    if inserted == 0 {
                        let row: $crate::rows::IdempotencyRow = sqlx::query_as(
                            "SELECT order_id, request_hash, status, response_body FROM idempotency_keys \
                             WHERE scope = $1 AND key = $2",
                        )
                        .bind(&key.scope)
                        .bind(&key.key)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(classify)?;
                        return Ok(if row.request_hash != key.request_hash {
                            PlaceOutcome::KeyReused
                        } else if row.response_body.is_empty() {
                            PlaceOutcome::InProgress { order_id: row.order_id }
                        } else {
                            PlaceOutcome::Replayed($crate::StoredResponse {
                                status: u16::try_from(row.status).unwrap_or(201),
                                body: row.response_body,
                            })
                        });
                    }
                }
                // One query re-reads the shop and every item as they are now, not as cached:
                // open, available here, cooked by the same station, and the current price.
                let mut check = sqlx::QueryBuilder::<$db>::new(
                    "SELECT i.id, i.name, i.price_minor, i.currency, si.available, \
                     sc.station_id, s.open FROM shops s JOIN items i ON i.id IN (",
                );
                let mut ids = check.separated(", ");
                for line in &order.lines {
                    ids.push_bind(line.item_id);
                }
                check.push(
                    ") LEFT JOIN shop_items si ON si.item_id = i.id AND si.shop_id = s.id \
                     LEFT JOIN station_categories sc ON sc.shop_id = s.id AND sc.category = i.category \
                     WHERE s.id = ",
                );
                check.push_bind(order.shop_id);
                let rows: Vec<$crate::rows::PricedItemRow> = check
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(classify)?;
                match rows.first() {
                    None => {
                        Self::require(&mut *tx, "SELECT 1 FROM shops WHERE id = $1", order.shop_id, "shop")
                            .await?;
                    }
                    Some(row) if !row.open => {
                        return Err(StoreError::conflict(
                            ConflictKind::ShopClosed,
                            "the shop closed before the order could be placed",
                        ));
                    }
                    Some(_) => {}
                }
                let mut total: i64 = 0;
                for line in &mut order.lines {
                    let usable = rows.iter().find(|row| {
                        row.id == line.item_id
                            && row.available == Some(true)
                            && row.station_id == Some(line.station_id)
                            && row.currency == order.currency
                    });
                    let Some(row) = usable else {
                        return Err(StoreError::conflict(
                            ConflictKind::ItemUnavailable,
                            format!("{} is no longer available at this shop", line.name),
                        ));
                    };
                    line.name.clone_from(&row.name);
                    line.unit_price_minor = row.price_minor;
                    total = total.saturating_add(row.price_minor.saturating_mul(line.quantity));
                }
                order.total_minor = total;
                // Names may have changed with the prices re-read above.
                for ticket in &mut order.tickets {
                    ticket.items = order
                        .lines
                        .iter()
                        .filter(|line| line.station_id == ticket.station_id)
                        .map(|line| brigade_domain::TicketItem {
                            name: line.name.clone(),
                            quantity: line.quantity,
                        })
                        .collect();
                }
                $crate::sql::bind_order_row!(
                    sqlx::query(concat!(
                        "INSERT INTO orders (",
                        $crate::sql::order_columns!(),
                        ", placed_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
                    )),
                    order
                )
                .bind(order.customer_id)
                .bind(&actor.0)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                // Lines, tickets and the first event: one multi-row INSERT each, so the number
                // of round trips does not grow with the size of the order.
                sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO order_lines \
                     (order_id, line_no, item_id, name, quantity, unit_price_minor, station_id) ",
                )
                .push_values(order.lines.iter().enumerate(), |mut row, (line_no, line)| {
                    row.push_bind(order.id)
                        .push_bind(line_no as i64)
                        .push_bind(line.item_id)
                        .push_bind(line.name.as_str())
                        .push_bind(line.quantity)
                        .push_bind(line.unit_price_minor)
                        .push_bind(line.station_id);
                })
                .build()
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO tickets \
                     (id, order_id, shop_id, station_id, status, work_seconds, created_at) ",
                )
                .push_values(order.tickets.iter(), |mut row, ticket| {
                    row.push_bind(ticket.id)
                        .push_bind(order.id)
                        .push_bind(order.shop_id)
                        .push_bind(ticket.station_id)
                        .push_bind(ticket.status.as_str())
                        .push_bind(ticket.work_seconds)
                        .push_bind(ticket.created_at);
                })
                .build()
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO order_events (order_id, seq, status, actor, at) ",
                )
                .push_values(order.history.iter().enumerate(), |mut row, (seq, event)| {
                    row.push_bind(order.id)
                        .push_bind(seq as i64 + 1)
                        .push_bind(event.status.as_str())
                        .push_bind(event.actor.0.as_str())
                        .push_bind(event.at);
                })
                .build()
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                sqlx::query(
                    "INSERT INTO payments (id, order_id, provider, status, amount_minor, currency, \
                     created_at, updated_at) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $6)",
                )
                .bind(payment.id)
                .bind(order.id)
                .bind(&payment.provider)
                .bind(order.total_minor)
                .bind(&order.currency)
                .bind(order.created_at)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                Self::record(&mut tx, &actor, $crate::sql::placed_audit(&order, &payment)).await?;
                tx.commit().await.map_err(classify)?;
                Ok(PlaceOutcome::Created(Box::new(order)))
            }

            async fn find_idempotent(
                &self,
                scope: &str,
                key: &str,
            ) -> $crate::StoreResult<Option<(String, $crate::StoredResponse)>> {
                let row: Option<$crate::rows::IdempotencyRow> = sqlx::query_as(
                    "SELECT order_id, request_hash, status, response_body FROM idempotency_keys \
                     WHERE scope = $1 AND key = $2 AND response_body <> ''",
                )
                .bind(scope)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                Ok(row.map(|row| {
                    (
                        row.request_hash,
                        $crate::StoredResponse {
                            status: u16::try_from(row.status).unwrap_or(201),
                            body: row.response_body,
                        },
                    )
                }))
            }

            async fn purge_idempotency_keys(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<u64> {
                Ok(sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::error::classify)?
                    .rows_affected())
            }

            async fn get_order(&self, id: uuid::Uuid) -> $crate::StoreResult<brigade_domain::Order> {
                let mut conn = self.pool.acquire().await.map_err($crate::error::classify)?;
                Self::load_order(&mut conn, id).await
            }

            async fn list_orders(
                &self,
                filter: &$crate::OrderFilter,
            ) -> $crate::StoreResult<Vec<brigade_domain::OrderSummary>> {
                use $crate::order_list::OrderListBind;
                let (tail, binds) = $crate::order_list::order_list_tail(filter);
                let sql = format!(
                    "SELECT {} FROM orders{tail}",
                    $crate::sql::order_columns!()
                );
                let mut query = sqlx::query_as::<_, $crate::rows::OrderRow>(sqlx::AssertSqlSafe(sql));
                for bind in binds {
                    query = match bind {
                        OrderListBind::Shop(id)
                        | OrderListBind::Customer(id)
                        | OrderListBind::Before(id) => query.bind(id),
                        OrderListBind::Status(status) => query.bind(status.as_str()),
                    };
                }
                let rows = query
                    .bind(i64::from(filter.limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::error::classify)?;
                rows.into_iter().map($crate::rows::OrderRow::summary).collect()
            }

            async fn transition_order(
                &self,
                id: uuid::Uuid,
                expected_version: i64,
                to: brigade_domain::OrderStatus,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Order> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                let (from, version) = Self::lock_order(&mut tx, id).await?;
                if version != expected_version {
                    return Err($crate::StoreError::VersionMismatch { current: version });
                }
                from.request(to)?;
                Self::set_order_status(&mut tx, id, from, to, actor).await?;
                // An authorised payment follows the order: captured on delivery, released on
                // cancellation. The provider call happens after commit; until it succeeds the
                // payment stays capturing/voiding and the reconciler retries it.
                let payment_to = match to {
                    brigade_domain::OrderStatus::Delivered => Some((
                        brigade_domain::PaymentStatus::Capturing,
                        "payment.capture_requested",
                    )),
                    brigade_domain::OrderStatus::Cancelled => Some((
                        brigade_domain::PaymentStatus::Voiding,
                        "payment.void_requested",
                    )),
                    _ => None,
                };
                if let Some((payment_to, action)) = payment_to {
                    let payment_id: Option<uuid::Uuid> = sqlx::query_scalar(
                        "SELECT id FROM payments WHERE order_id = $1 AND status = 'authorized'",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(classify)?;
                    if let Some(payment_id) = payment_id {
                        let payment = Self::load_payment(&mut tx, payment_id).await?;
                        Self::set_payment_status(&mut tx, &payment, payment_to, action, actor)
                            .await?;
                    }
                }
                if to == brigade_domain::OrderStatus::Cancelled {
                    sqlx::query(concat!(
                        "UPDATE tickets SET status = 'cancelled' WHERE order_id = $1 AND status IN ",
                        $crate::sql::open_ticket!()
                    ))
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                }
                let order = Self::load_order(&mut tx, id).await?;
                tx.commit().await.map_err(classify)?;
                Ok(order)
            }

            async fn station_queue(
                &self,
                station_id: uuid::Uuid,
            ) -> $crate::StoreResult<Vec<brigade_domain::QueuedTicket>> {
                use $crate::error::classify;
                use $crate::rows::*;
                Self::require(&self.pool, "SELECT 1 FROM stations WHERE id = $1", station_id, "station")
                    .await?;
                let rows: Vec<QueueRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::ticket_columns!(),
                    ", o.status AS order_status FROM tickets t JOIN orders o ON o.id = t.order_id \
                     WHERE t.station_id = $1 AND t.status IN ",
                    $crate::sql::open_ticket!(),
                    " ORDER BY t.id"
                ))
                .bind(station_id)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
                let lines: Vec<LineRow> = sqlx::query_as(concat!(
                    "SELECT order_id, item_id, name, quantity, unit_price_minor, station_id \
                     FROM order_lines WHERE station_id = $1 AND order_id IN \
                     (SELECT order_id FROM tickets WHERE station_id = $1 AND status IN ",
                    $crate::sql::open_ticket!(),
                    ") ORDER BY line_no"
                ))
                .bind(station_id)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
                rows.into_iter()
                    .map(|row| {
                        let order_status = order_status(&row.order_status)?;
                        let ticket = row.ticket.into_ticket(&lines)?;
                        let claimable = ticket.status == brigade_domain::TicketStatus::Queued
                            && order_status.kitchen_may_cook();
                        Ok(brigade_domain::QueuedTicket {
                            ticket,
                            order_status,
                            claimable,
                        })
                    })
                    .collect()
            }

            async fn claim_next(
                &self,
                station_id: uuid::Uuid,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<Option<brigade_domain::Ticket>> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                Self::require(&mut *tx, "SELECT 1 FROM stations WHERE id = $1", station_id, "station")
                    .await?;
                // Another chef may take the head of the queue between our read and our claim;
                // then the next one is tried. Bounded so a stampede ends in a clear conflict.
                for _ in 0..8 {
                    let Some((ticket_id, order_id)) = Self::next_claimable(&mut tx, station_id).await?
                    else {
                        tx.commit().await.map_err(classify)?;
                        return Ok(None);
                    };
                    let (status, _) = Self::lock_order(&mut tx, order_id).await?;
                    if !status.kitchen_may_cook() {
                        continue;
                    }
                    if Self::claim_locked(&mut tx, ticket_id, order_id, status, actor).await? {
                        let ticket = Self::load_ticket(&mut tx, ticket_id).await?;
                        tx.commit().await.map_err(classify)?;
                        return Ok(Some(ticket));
                    }
                }
                Err($crate::StoreError::conflict(
                    $crate::ConflictKind::TicketTaken,
                    "other chefs claimed every ticket tried; try again",
                ))
            }

            async fn claim_ticket(
                &self,
                ticket_id: uuid::Uuid,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Ticket> {
                use $crate::error::classify;
                use $crate::{ConflictKind, StoreError};
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                let row: Option<(uuid::Uuid, uuid::Uuid)> =
                    sqlx::query_as("SELECT order_id, station_id FROM tickets WHERE id = $1")
                        .bind(ticket_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(classify)?;
                let (order_id, station_id) = row.ok_or(StoreError::NotFound("ticket"))?;
                let (order_status, _) = Self::lock_order(&mut tx, order_id).await?;
                let ticket = Self::load_ticket(&mut tx, ticket_id).await?;
                match ticket.status {
                    brigade_domain::TicketStatus::Queued => {}
                    brigade_domain::TicketStatus::Claimed => {
                        return Err(StoreError::conflict(
                            ConflictKind::TicketTaken,
                            format!(
                                "the ticket was already claimed by {}",
                                ticket.claimed_by.as_deref().unwrap_or("someone else")
                            ),
                        ));
                    }
                    other => {
                        return Err(StoreError::conflict(
                            ConflictKind::TicketState,
                            format!("the ticket is {}", other.as_str()),
                        ));
                    }
                }
                if !order_status.kitchen_may_cook() {
                    return Err(StoreError::conflict(
                        ConflictKind::OrderNotCookable,
                        format!("the order is {order_status}; only accepted orders are cooked"),
                    ));
                }
                if let Some((next, _)) = Self::next_claimable(&mut tx, station_id).await?
                    && next != ticket_id
                {
                    return Err(StoreError::conflict(
                        ConflictKind::NotNextInQueue,
                        format!("ticket {next} is older and must be claimed first"),
                    ));
                }
                if !Self::claim_locked(&mut tx, ticket_id, order_id, order_status, actor).await? {
                    return Err(StoreError::conflict(
                        ConflictKind::TicketTaken,
                        "the ticket was already claimed",
                    ));
                }
                let ticket = Self::load_ticket(&mut tx, ticket_id).await?;
                tx.commit().await.map_err(classify)?;
                Ok(ticket)
            }

            async fn complete_ticket(
                &self,
                ticket_id: uuid::Uuid,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Ticket> {
                use $crate::error::classify;
                use $crate::{ConflictKind, StoreError};
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                let order_id: Option<uuid::Uuid> =
                    sqlx::query_scalar("SELECT order_id FROM tickets WHERE id = $1")
                        .bind(ticket_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(classify)?;
                let order_id = order_id.ok_or(StoreError::NotFound("ticket"))?;
                let (order_status, _) = Self::lock_order(&mut tx, order_id).await?;
                let done = sqlx::query(
                    "UPDATE tickets SET status = 'done', completed_at = $1 \
                     WHERE id = $2 AND status = 'claimed'",
                )
                .bind(brigade_domain::now())
                .bind(ticket_id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
                if done == 0 {
                    let ticket = Self::load_ticket(&mut tx, ticket_id).await?;
                    return Err(StoreError::conflict(
                        ConflictKind::TicketState,
                        format!(
                            "only a claimed ticket can be completed; this one is {}",
                            ticket.status.as_str()
                        ),
                    ));
                }
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("ticket.completed", "ticket", ticket_id)
                        .before(serde_json::json!({ "status": "claimed" }))
                        .after(serde_json::json!({ "status": "done" })),
                )
                .await?;
                let remaining: i64 = sqlx::query_scalar(concat!(
                    "SELECT COUNT(*) FROM tickets WHERE order_id = $1 AND status IN ",
                    $crate::sql::open_ticket!()
                ))
                .bind(order_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
                if remaining == 0 && order_status == brigade_domain::OrderStatus::Preparing {
                    Self::set_order_status(
                        &mut tx,
                        order_id,
                        order_status,
                        brigade_domain::OrderStatus::Ready,
                        actor,
                    )
                    .await?;
                }
                let ticket = Self::load_ticket(&mut tx, ticket_id).await?;
                tx.commit().await.map_err(classify)?;
                Ok(ticket)
            }

            async fn create_account(
                &self,
                account: &$crate::NewAccountRecord,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Account> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                let row: $crate::rows::AccountRow = sqlx::query_as(
                    "INSERT INTO accounts (id, email, password_hash, role, shop_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     RETURNING id, email, role, shop_id, created_at",
                )
                .bind(account.id)
                .bind(&account.email)
                .bind(&account.password_hash)
                .bind(account.role.as_str())
                .bind(account.shop_id)
                .bind(brigade_domain::now())
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::error::unique_as("an account with this e-mail address exists"))?;
                let created: brigade_domain::Account = row.try_into()?;
                // The account as the API shows it: never the password hash.
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("account.created", "account", created.id).after(&created),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(created)
            }

            async fn account_credentials(
                &self,
                email: &str,
            ) -> $crate::StoreResult<Option<(brigade_domain::Account, String)>> {
                let row: Option<$crate::rows::CredentialsRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::account_columns!(),
                    ", a.password_hash FROM accounts a WHERE a.email = $1"
                ))
                .bind(email)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                row.map(|row| Ok((row.account.try_into()?, row.password_hash)))
                    .transpose()
            }

            async fn get_account(
                &self,
                id: uuid::Uuid,
            ) -> $crate::StoreResult<brigade_domain::Account> {
                let row: Option<$crate::rows::AccountRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::account_columns!(),
                    " FROM accounts a WHERE a.id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                row.ok_or($crate::StoreError::NotFound("account"))?.try_into()
            }

            async fn create_session(
                &self,
                account_id: uuid::Uuid,
                expires_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<uuid::Uuid> {
                use $crate::error::classify;
                let id = uuid::Uuid::now_v7();
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                sqlx::query(
                    "INSERT INTO sessions (id, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(account_id)
                .bind(brigade_domain::now())
                .bind(expires_at)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                Self::record(
                    &mut tx,
                    &brigade_domain::Actor::account(account_id),
                    $crate::AuditEntry::new("session.created", "session", id)
                        .after(serde_json::json!({ "account_id": account_id, "expires_at": expires_at })),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(id)
            }

            async fn session(
                &self,
                id: uuid::Uuid,
            ) -> $crate::StoreResult<Option<$crate::SessionRecord>> {
                let row: Option<$crate::rows::SessionRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::account_columns!(),
                    ", s.expires_at, s.revoked_at FROM sessions s \
                     JOIN accounts a ON a.id = s.account_id WHERE s.id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                row.map(|row| {
                    Ok($crate::SessionRecord {
                        account: row.account.try_into()?,
                        expires_at: row.expires_at,
                        revoked_at: row.revoked_at,
                    })
                })
                .transpose()
            }

            async fn shop_of_station(&self, station_id: uuid::Uuid) -> $crate::StoreResult<uuid::Uuid> {
                let shop: Option<uuid::Uuid> =
                    sqlx::query_scalar("SELECT shop_id FROM stations WHERE id = $1")
                        .bind(station_id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($crate::error::classify)?;
                shop.ok_or($crate::StoreError::NotFound("station"))
            }

            async fn shop_of_ticket(&self, ticket_id: uuid::Uuid) -> $crate::StoreResult<uuid::Uuid> {
                let shop: Option<uuid::Uuid> =
                    sqlx::query_scalar("SELECT shop_id FROM tickets WHERE id = $1")
                        .bind(ticket_id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($crate::error::classify)?;
                shop.ok_or($crate::StoreError::NotFound("ticket"))
            }

            async fn list_accounts(&self) -> $crate::StoreResult<Vec<brigade_domain::Account>> {
                let rows: Vec<$crate::rows::AccountRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::account_columns!(),
                    " FROM accounts a ORDER BY a.email"
                ))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn set_password_hash(
                &self,
                id: uuid::Uuid,
                password_hash: &str,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<()> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                let updated = sqlx::query(
                    "UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(password_hash)
                .bind(brigade_domain::now())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                if updated.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound("account"));
                }
                // Never the hash itself: only that it changed.
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("account.password_reset", "account", id),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(())
            }

            async fn set_role(
                &self,
                id: uuid::Uuid,
                role: brigade_domain::Role,
                shop_id: Option<uuid::Uuid>,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<brigade_domain::Account> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                let before: Option<$crate::rows::AccountRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::account_columns!(),
                    " FROM accounts a WHERE a.id = $1",
                    $lock
                ))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                let before: brigade_domain::Account =
                    before.ok_or($crate::StoreError::NotFound("account"))?.try_into()?;
                let row: Option<$crate::rows::AccountRow> = sqlx::query_as(
                    "UPDATE accounts SET role = $1, shop_id = $2, updated_at = $3 WHERE id = $4 \
                     RETURNING id, email, role, shop_id, created_at",
                )
                .bind(role.as_str())
                .bind(shop_id)
                .bind(brigade_domain::now())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                let after: brigade_domain::Account =
                    row.ok_or($crate::StoreError::NotFound("account"))?.try_into()?;
                Self::record(
                    &mut tx,
                    actor,
                    $crate::AuditEntry::new("account.role_changed", "account", id)
                        .before(serde_json::json!({ "role": before.role, "shop_id": before.shop_id }))
                        .after(serde_json::json!({ "role": after.role, "shop_id": after.shop_id })),
                )
                .await?;
                tx.commit().await.map_err(classify)?;
                Ok(after)
            }

            async fn revoke_session(
                &self,
                id: uuid::Uuid,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<bool> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self.pool.begin_with($begin).await.map_err(classify)?;
                let revoked = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(brigade_domain::now())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
                if revoked == 1 {
                    Self::record(
                        &mut tx,
                        actor,
                        $crate::AuditEntry::new("session.revoked", "session", id)
                            .before(serde_json::json!({ "revoked": false }))
                            .after(serde_json::json!({ "revoked": true })),
                    )
                    .await?;
                }
                tx.commit().await.map_err(classify)?;
                Ok(revoked == 1)
            }

            async fn signing_key(&self, id: &str, candidate: &str) -> $crate::StoreResult<String> {
                sqlx::query(
                    "INSERT INTO signing_keys (id, secret, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(candidate)
                .bind(brigade_domain::now())
                .execute(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                sqlx::query_scalar("SELECT secret FROM signing_keys WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::error::classify)
            }
        }
    };
}

pub(crate) use {
    account_columns, bind_order_row, cookable_order, impl_store, item_columns, open_ticket,
    order_columns, payment_columns, shop_columns, ticket_columns,
};

/// The audit entry of a newly placed order: what was ordered, for how much, paid how.
pub(crate) fn placed_audit(
    order: &brigade_domain::Order,
    payment: &crate::NewPayment,
) -> crate::AuditEntry {
    crate::AuditEntry::new("order.placed", "order", order.id).after(serde_json::json!({
        "status": order.status,
        "shop_id": order.shop_id,
        "customer_id": order.customer_id,
        "total_minor": order.total_minor,
        "currency": order.currency,
        "lines": order.lines.iter().map(|line| serde_json::json!({
            "item_id": line.item_id,
            "quantity": line.quantity,
            "unit_price_minor": line.unit_price_minor,
        })).collect::<Vec<_>>(),
        "payment_id": payment.id,
        "payment_provider": payment.provider,
    }))
}

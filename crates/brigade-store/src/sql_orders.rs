//! The `Orders` methods — placing orders (with their idempotency keys), reading, listing and moving them through their states — expanded inside `impl_store!` for each backend, with
//! the same SQL text on both.

/// `impl Orders` for one backend's store.
macro_rules! orders_methods {
    ($store:ty, $db:ty, begin = $begin:literal, lock = $lock:literal) => {
        #[async_trait::async_trait]
        impl $crate::Orders for $store {
            async fn place_order(
                &self,
                placement: $crate::Placement,
            ) -> $crate::StoreResult<$crate::PlaceOutcome> {
                $crate::trace::traced(<$db as sqlx::Database>::NAME, "INSERT", "INSERT orders", async move {
                    use $crate::error::classify;
                    if let Some(outcome) = self.place_in_one_statement(&placement).await? {
                        return Ok(outcome);
                    }
                    let $crate::Placement { mut order, actor, idempotency, payment } = placement;
                    let _writer = self.writer.enter().await?;
                    let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
                    if let Some(key) = &idempotency
                        && let Some(earlier) =
                            Self::claim_idempotency_key(&mut tx, key, order.id, order.created_at).await?
                    {
                        return Ok(earlier);
                    }
                    Self::reprice(&mut tx, &mut order).await?;
                    let mut batch = $crate::batch::Batch::new(Self::TRAVEL);
                    Self::insert_placed(&mut batch, &mut tx, &order, &actor, &payment).await?;
                    let audit = $crate::sql_shared::placed_audit(&order, &payment);
                    Self::push_audit(&mut batch, &actor, brigade_domain::now(), &audit);
                    batch.end_statement(&mut tx).await?;
                    batch.send(&mut tx).await?;
                    tx.commit().await.map_err(classify)?;
                    Ok($crate::PlaceOutcome::Created(Box::new(order)))
                })
                .await
            }

            async fn find_idempotent(
                &self,
                scope: &str,
                key: &str,
            ) -> $crate::StoreResult<Option<(String, $crate::StoredResponse)>> {
                $crate::trace::traced(<$db as sqlx::Database>::NAME, "SELECT", "SELECT idempotency_keys", async move {
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
                })
                .await
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
                $crate::trace::traced(<$db as sqlx::Database>::NAME, "SELECT", "SELECT orders", async move {
                    let mut conn = self.pool.acquire().await.map_err($crate::error::classify)?;
                    Self::load_order(&mut conn, id).await
                })
                .await
            }

            async fn list_orders(
                &self,
                filter: &$crate::OrderFilter,
            ) -> $crate::StoreResult<Vec<brigade_domain::OrderSummary>> {
                use $crate::order_list::OrderListBind;
                let (tail, binds) = $crate::order_list::order_list_tail(filter);
                let sql = format!(
                    "SELECT {} FROM orders{tail}",
                    $crate::sql_shared::order_columns!()
                );
                let (sql, binds) = (&sql, &binds);
                let rows = self
                    .stale_read(|pool| async move {
                        let mut query = sqlx::query_as::<_, $crate::rows::OrderRow>(
                            sqlx::AssertSqlSafe(sql.as_str()),
                        );
                        for bind in binds {
                            query = match *bind {
                                OrderListBind::Shop(id)
                                | OrderListBind::Customer(id)
                                | OrderListBind::Before(id) => query.bind(id),
                                OrderListBind::Status(status) => query.bind(status.as_str()),
                            };
                        }
                        query.bind(i64::from(filter.limit)).fetch_all(&pool).await
                    })
                    .await?;
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
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
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
                        $crate::sql_shared::open_ticket!()
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
        }

        impl $store {
            /// Claims an order's idempotency key first: a concurrent request with the same key
            /// waits here (PostgreSQL's unique index, SQLite's write lock) and then replays. The
            /// answer is written when the payment settles; until then a retry hears that the
            /// first request is still in progress. `Some` is the outcome for a key already
            /// claimed.
            async fn claim_idempotency_key(
                conn: &mut <$db as sqlx::Database>::Connection,
                key: &$crate::IdempotencyKey,
                order_id: uuid::Uuid,
                created_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Option<$crate::PlaceOutcome>> {
                use $crate::error::classify;
                use $crate::PlaceOutcome;
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
                    .bind(created_at)
                    .bind(order_id)
                    .execute(&mut *conn)
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
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(classify)?;
                        return Ok(Some(if row.request_hash != key.request_hash {
                            PlaceOutcome::KeyReused
                        } else if row.response_body.is_empty() {
                            PlaceOutcome::InProgress { order_id: row.order_id }
                        } else {
                            PlaceOutcome::Replayed($crate::StoredResponse {
                                status: u16::try_from(row.status).unwrap_or(201),
                                body: row.response_body,
                            })
                        }));
                    }
                Ok(None)
            }

            /// Re-reads the shop and every item as they are now, not as cached — open,
            /// available here, cooked by the same station — and prices the order with the
            /// current prices and names.
            async fn reprice(
                conn: &mut <$db as sqlx::Database>::Connection,
                order: &mut brigade_domain::Order,
            ) -> $crate::StoreResult<()> {
                use $crate::error::classify;
                use $crate::{ConflictKind, StoreError};
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
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(classify)?;
                match rows.first() {
                    None => {
                        Self::require(&mut *conn, "SELECT 1 FROM shops WHERE id = $1", order.shop_id, "shop")
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
                Ok(())
            }

            /// Writes the placed order into `batch`: its row, lines, tickets and first event
            /// (one multi-row INSERT each, so the number of statements does not grow with the
            /// size of the order) and its pending payment.
            async fn insert_placed(
                batch: &mut $crate::batch::Batch<$db>,
                conn: &mut <$db as sqlx::Database>::Connection,
                order: &brigade_domain::Order,
                actor: &brigade_domain::Actor,
                payment: &$crate::NewPayment,
            ) -> $crate::StoreResult<()> {
                let sql = batch.sql();
                sql.push(concat!(
                    "INSERT INTO orders (",
                    $crate::sql_shared::order_columns!(),
                    ", placed_by) VALUES ("
                ));
                let mut values = sql.separated(", ");
                $crate::sql_shared::bind_order_row!(values, order, push_bind)
                    .push_bind(order.customer_id)
                    .push_bind(actor.0.as_str());
                sql.push(")");
                batch.end_statement(&mut *conn).await?;
                batch
                    .sql()
                    .push(
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
                    });
                batch.end_statement(&mut *conn).await?;
                Self::insert_tickets_and_events(batch, &mut *conn, order).await?;
                let sql = batch.sql();
                sql.push(
                    "INSERT INTO payments (id, order_id, provider, status, amount_minor, currency, \
                     created_at, updated_at) VALUES (",
                );
                sql.separated(", ")
                    .push_bind(payment.id)
                    .push_bind(order.id)
                    .push_bind(payment.provider.as_str())
                    .push("'pending'")
                    .push_bind(order.total_minor)
                    .push_bind(order.currency.as_str())
                    .push_bind(order.created_at)
                    .push_bind(order.created_at);
                sql.push(")");
                batch.end_statement(&mut *conn).await
            }

            /// The placed order's kitchen tickets and its first event: one multi-row INSERT
            /// each (a step of [`insert_placed`](Self::insert_placed), in its batch).
            async fn insert_tickets_and_events(
                batch: &mut $crate::batch::Batch<$db>,
                conn: &mut <$db as sqlx::Database>::Connection,
                order: &brigade_domain::Order,
            ) -> $crate::StoreResult<()> {
                batch
                    .sql()
                    .push(
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
                    });
                batch.end_statement(&mut *conn).await?;
                batch
                    .sql()
                    .push("INSERT INTO order_events (order_id, seq, status, actor, at) ")
                    .push_values(order.history.iter().enumerate(), |mut row, (seq, event)| {
                        row.push_bind(order.id)
                            .push_bind(seq as i64 + 1)
                            .push_bind(event.status.as_str())
                            .push_bind(event.actor.0.as_str())
                            .push_bind(event.at);
                    });
                batch.end_statement(&mut *conn).await
            }
        }
    };
}

pub(crate) use orders_methods;

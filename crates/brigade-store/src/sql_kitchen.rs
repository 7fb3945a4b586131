//! The `Kitchen` methods — station queues and the tickets chefs claim and complete — expanded inside `impl_store!` for each backend, with
//! the same SQL text on both.

/// `impl Kitchen` for one backend's store.
macro_rules! kitchen_methods {
    ($store:ty, $db:ty, begin = $begin:literal, lock = $lock:literal) => {
        #[async_trait::async_trait]
        impl $crate::Kitchen for $store {
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
                    $crate::sql_shared::ticket_columns!(),
                    ", o.status AS order_status FROM tickets t JOIN orders o ON o.id = t.order_id \
                     WHERE t.station_id = $1 AND t.status IN ",
                    $crate::sql_shared::open_ticket!(),
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
                    $crate::sql_shared::open_ticket!(),
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
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
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
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
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
                let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
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
                    $crate::sql_shared::open_ticket!()
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
        }
    };
}

pub(crate) use kitchen_methods;

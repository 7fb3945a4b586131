//! Payments and the audit trail: the part of the one [`Store`](crate::Store) implementation
//! that keeps the money and the history, expanded inside `impl_store!` for each backend.

/// The audit row written for every change, in the caller's transaction.
macro_rules! ledger_helpers {
    ($db:ty, lock = $lock:literal) => {
        /// Appends one audit event on `conn` (inside the change's transaction). The request id
        /// comes from the request being served, if any.
        async fn record(
            conn: &mut <$db as sqlx::Database>::Connection,
            actor: &brigade_domain::Actor,
            entry: $crate::AuditEntry,
        ) -> $crate::StoreResult<()> {
            let mut batch = $crate::batch::Batch::new(Self::TRAVEL);
            Self::push_audit(&mut batch, actor, brigade_domain::now(), &entry);
            batch.end_statement(&mut *conn).await?;
            batch.send(conn).await
        }

        /// Writes the INSERT of one audit entry, stamped `at`, into `batch` (the statement is
        /// left for the caller to end).
        fn push_audit(
            batch: &mut $crate::batch::Batch<$db>,
            actor: &brigade_domain::Actor,
            at: chrono::DateTime<chrono::Utc>,
            entry: &$crate::AuditEntry,
        ) {
            let request_id = brigade_core::request::current().map(|context| context.request_id);
            let sql = batch.sql();
            sql.push(
                "INSERT INTO audit_events \
                 (id, at, actor, action, entity, entity_id, before, after, request_id) VALUES (",
            );
            sql.separated(", ")
                .push_bind(uuid::Uuid::now_v7())
                .push_bind(at)
                .push_bind(actor.0.as_str())
                .push_bind(entry.action)
                .push_bind(entry.entity)
                .push_bind(entry.entity_id.as_str())
                .push_bind(entry.before.as_ref().map(ToString::to_string))
                .push_bind(entry.after.as_ref().map(ToString::to_string))
                .push_bind(request_id);
            sql.push(")");
        }

        /// One payment, locked on PostgreSQL.
        async fn load_payment(
            conn: &mut <$db as sqlx::Database>::Connection,
            id: uuid::Uuid,
        ) -> $crate::StoreResult<brigade_domain::Payment> {
            let row: Option<$crate::rows::PaymentRow> = sqlx::query_as(concat!(
                "SELECT ",
                $crate::sql_shared::payment_columns!(),
                " FROM payments WHERE id = $1",
                $lock
            ))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err($crate::error::classify)?;
            row.ok_or($crate::StoreError::NotFound("payment"))?
                .try_into()
        }

        /// Moves a locked payment to `to`, recording the change.
        async fn set_payment_status(
            conn: &mut <$db as sqlx::Database>::Connection,
            payment: &brigade_domain::Payment,
            to: brigade_domain::PaymentStatus,
            action: &'static str,
            actor: &brigade_domain::Actor,
        ) -> $crate::StoreResult<()> {
            sqlx::query("UPDATE payments SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(to.as_str())
                .bind(brigade_domain::now())
                .bind(payment.id)
                .execute(&mut *conn)
                .await
                .map_err($crate::error::classify)?;
            Self::record(
                conn,
                actor,
                $crate::AuditEntry::new(action, "payment", payment.id)
                    .before(serde_json::json!({ "status": payment.status }))
                    .after(serde_json::json!({ "status": to })),
            )
            .await
        }

        /// Ends the idempotency key of a settled order: kept with a final answer, released by one
        /// that says "try again" (in the settling transaction, after the order is read back).
        async fn keep_or_release_key(
            conn: &mut <$db as sqlx::Database>::Connection,
            order_id: uuid::Uuid,
            answer: $crate::StoredResponse,
        ) -> $crate::StoreResult<()> {
                // A final answer (the order, a decline) is kept for replays; an answer that says
                // "try again" (5xx: payments unavailable or failed, nothing charged or the hold
                // released) releases the key, so a retry with it places the order anew.
                let keep_or_release = if answer.status < 500 {
                    sqlx::query(
                        "UPDATE idempotency_keys SET status = $1, response_body = $2 \
                     WHERE order_id = $3",
                    )
                    .bind(i64::from(answer.status))
                    .bind(answer.body)
                    .bind(order_id)
                } else {
                    sqlx::query("DELETE FROM idempotency_keys WHERE order_id = $1").bind(order_id)
                };
                keep_or_release.execute(&mut *conn).await.map_err($crate::error::classify)?;
            Ok(())
        }
    };
}

/// The `Store` methods of payments and the audit trail.
macro_rules! ledger_methods {
    ($store:ty, $db:ty, begin = $begin:literal) => {
        #[async_trait::async_trait]
        impl $crate::Ledger for $store {
            async fn settle_placed(
                &self,
                placed: &brigade_domain::Order,
                payment: &brigade_domain::Payment,
                settlement: &$crate::Settlement,
                actor: &brigade_domain::Actor,
                render: &$crate::RenderAnswer,
            ) -> $crate::StoreResult<$crate::Settled> {
                self.settle_placed_here(placed, payment, settlement, actor, render)
                    .await
            }

            async fn settle_authorization(
                &self,
                payment_id: uuid::Uuid,
                settlement: &$crate::Settlement,
                actor: &brigade_domain::Actor,
                render: &$crate::RenderAnswer,
            ) -> $crate::StoreResult<$crate::Settled> {
                use brigade_domain::{OrderStatus, PaymentStatus};
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self
                    .write_pool()
                    .begin_with($begin)
                    .await
                    .map_err(classify)?;
                let order_id: Option<uuid::Uuid> =
                    sqlx::query_scalar("SELECT order_id FROM payments WHERE id = $1")
                        .bind(payment_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(classify)?;
                let order_id = order_id.ok_or($crate::StoreError::NotFound("payment"))?;
                // Lock order: the order first, then what hangs off it.
                let (order_status, _) = Self::lock_order(&mut tx, order_id).await?;
                let payment = Self::load_payment(&mut tx, payment_id).await?;
                if payment.status != PaymentStatus::Pending
                    || order_status != OrderStatus::AwaitingPayment
                {
                    let order = Self::load_order(&mut tx, order_id).await?;
                    tx.commit().await.map_err(classify)?;
                    return Ok($crate::Settled {
                        order,
                        payment,
                        changed: false,
                    });
                }
                sqlx::query(
                    "UPDATE payments SET status = $1, reference = COALESCE($2, reference), \
                 reason = $3, updated_at = $4 WHERE id = $5",
                )
                .bind(settlement.status.as_str())
                .bind(settlement.reference.as_deref())
                .bind(settlement.reason.as_deref())
                .bind(brigade_domain::now())
                .bind(payment_id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                Self::record(
                    &mut tx,
                    actor,
                    $crate::settle::payment_audit(&payment, settlement),
                )
                .await?;
                let (to, tickets) = if settlement.status == PaymentStatus::Authorized {
                    (OrderStatus::Placed, "queued")
                } else {
                    (OrderStatus::PaymentFailed, "cancelled")
                };
                Self::set_order_status(&mut tx, order_id, order_status, to, actor).await?;
                sqlx::query(
                    "UPDATE tickets SET status = $1 WHERE order_id = $2 AND status = 'held'",
                )
                .bind(tickets)
                .bind(order_id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                let order = Self::load_order(&mut tx, order_id).await?;
                let payment = Self::load_payment(&mut tx, payment_id).await?;
                let answer = render(&order, &payment);
                Self::keep_or_release_key(&mut tx, order_id, answer).await?;
                tx.commit().await.map_err(classify)?;
                Ok($crate::Settled {
                    order,
                    payment,
                    changed: true,
                })
            }

            async fn finish_payment(
                &self,
                payment_id: uuid::Uuid,
                from: brigade_domain::PaymentStatus,
                to: brigade_domain::PaymentStatus,
                actor: &brigade_domain::Actor,
            ) -> $crate::StoreResult<Option<brigade_domain::Payment>> {
                use $crate::error::classify;
                let _writer = self.writer.enter().await?;
                let mut tx = self
                    .write_pool()
                    .begin_with($begin)
                    .await
                    .map_err(classify)?;
                let payment = Self::load_payment(&mut tx, payment_id).await?;
                if payment.status != from {
                    return Ok(None);
                }
                let action = match to {
                    brigade_domain::PaymentStatus::Captured => "payment.captured",
                    brigade_domain::PaymentStatus::Voided => "payment.voided",
                    _ => "payment.changed",
                };
                Self::set_payment_status(&mut tx, &payment, to, action, actor).await?;
                let payment = Self::load_payment(&mut tx, payment_id).await?;
                tx.commit().await.map_err(classify)?;
                Ok(Some(payment))
            }

            async fn payment_attempt_failed(
                &self,
                payment_id: uuid::Uuid,
                reason: &str,
            ) -> $crate::StoreResult<()> {
                let _writer = self.writer.enter().await?;
                sqlx::query(
                    "UPDATE payments SET attempts = attempts + 1, reason = $1, updated_at = $2 \
                 WHERE id = $3",
                )
                .bind(reason)
                .bind(brigade_domain::now())
                .bind(payment_id)
                .execute(self.write_pool())
                .await
                .map_err($crate::error::classify)?;
                Ok(())
            }

            async fn payment_of_order(
                &self,
                order_id: uuid::Uuid,
            ) -> $crate::StoreResult<Option<brigade_domain::Payment>> {
                let row: Option<$crate::rows::PaymentRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::payment_columns!(),
                    " FROM payments WHERE order_id = $1"
                ))
                .bind(order_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                row.map(TryInto::try_into).transpose()
            }

            async fn lease_unsettled_payments(
                &self,
                stale_before: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<brigade_domain::Payment>> {
                use $crate::error::classify;
                let rows: Vec<$crate::rows::PaymentRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql_shared::payment_columns!(),
                    " FROM payments WHERE status IN ('pending', 'capturing', 'voiding') \
                 AND updated_at < $1 ORDER BY updated_at LIMIT $2"
                ))
                .bind(stale_before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
                let mut leased = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut payment: brigade_domain::Payment = row.try_into()?;
                    let now = brigade_domain::now();
                    // Whoever moves updated_at first owns the retry; the others see 0 rows.
                    let _writer = self.writer.enter().await?;
                    let won = sqlx::query(
                        "UPDATE payments SET updated_at = $1 WHERE id = $2 AND updated_at = $3",
                    )
                    .bind(now)
                    .bind(payment.id)
                    .bind(payment.updated_at)
                    .execute(self.write_pool())
                    .await
                    .map_err(classify)?
                    .rows_affected();
                    if won == 1 {
                        payment.updated_at = now;
                        leased.push(payment);
                    }
                }
                Ok(leased)
            }

            async fn audit_events(
                &self,
                filter: &$crate::AuditFilter,
            ) -> $crate::StoreResult<Vec<brigade_domain::AuditEvent>> {
                let rows: Vec<$crate::rows::AuditRow> = sqlx::query_as(
                    "SELECT id, at, actor, action, entity, entity_id, before, after, request_id \
                 FROM audit_events WHERE ($1 IS NULL OR entity = $1) \
                 AND ($2 IS NULL OR entity_id = $2) AND ($3 IS NULL OR actor = $3) \
                 AND ($4 IS NULL OR action = $4) AND ($5 IS NULL OR at >= $5) \
                 AND ($6 IS NULL OR at < $6) AND ($7 IS NULL OR id < $7) \
                 ORDER BY id DESC LIMIT $8",
                )
                .bind(filter.entity.as_deref())
                .bind(filter.entity_id.as_deref())
                .bind(filter.actor.as_deref())
                .bind(filter.action.as_deref())
                .bind(filter.since)
                .bind(filter.until)
                .bind(filter.before)
                .bind(i64::from(filter.limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::error::classify)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }
        }
    };
}

pub(crate) use {ledger_helpers, ledger_methods};

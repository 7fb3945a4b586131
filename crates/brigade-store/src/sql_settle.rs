//! Settling a placement the caller holds (see `settle`): the guarded writes of a
//! [`SettlePlan`](crate::settle::SettlePlan), expanded inside `impl_store!` for each backend.
//! PostgreSQL writes a plan in one statement (`PostgresStore::settle_in_one_statement`); this
//! transaction is what SQLite runs, and what PostgreSQL would run if that statement declined.

/// `settle_planned`, inside the backend's `impl` block.
macro_rules! settle_helpers {
    ($db:ty, begin = $begin:literal) => {
        /// Writes `plan`: true when written, false (nothing written) when the order or its
        /// payment changed since the caller placed the order.
        async fn settle_planned(
            &self,
            plan: &$crate::settle::SettlePlan,
        ) -> $crate::StoreResult<bool> {
            use $crate::error::classify;
            if let Some(done) = self.settle_in_one_statement(plan).await? {
                return Ok(done);
            }
            let (order, payment) = (&plan.order, &plan.payment);
            let _writer = self.writer.enter().await?;
            let mut tx = self.write_pool().begin_with($begin).await.map_err(classify)?;
            // The order first (the lock order everywhere), then the payment; each guarded by
            // what the caller wrote. Returning early rolls the transaction back.
            let moved = sqlx::query(
                "UPDATE orders SET status = $1, version = $2, updated_at = $3 \
                 WHERE id = $4 AND status = $5 AND version = $6",
            )
            .bind(order.status.as_str())
            .bind(order.version)
            .bind(order.updated_at)
            .bind(order.id)
            .bind(brigade_domain::OrderStatus::AwaitingPayment.as_str())
            .bind(plan.from_version)
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
            if moved != 1 {
                return Ok(false);
            }
            let paid = sqlx::query(
                "UPDATE payments SET status = $1, reference = COALESCE($2, reference), \
                 reason = $3, updated_at = $4 WHERE id = $5 AND order_id = $6 AND status = 'pending'",
            )
            .bind(payment.status.as_str())
            .bind(payment.reference.as_deref())
            .bind(payment.reason.as_deref())
            .bind(payment.updated_at)
            .bind(payment.id)
            .bind(order.id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
            if paid != 1 {
                return Ok(false);
            }
            let mut batch = $crate::batch::Batch::new(Self::TRAVEL);
            Self::record_settlement(&mut batch, &mut tx, plan).await?;
            batch.send(&mut tx).await?;
            tx.commit().await.map_err(classify)?;
            Ok(true)
        }

        /// What follows a settled order and payment, in their transaction and in this order:
        /// the order's event, its held tickets, the idempotency key (kept with the answer or
        /// released) and the audit entries, written into `batch`.
        async fn record_settlement(
            batch: &mut $crate::batch::Batch<$db>,
            conn: &mut <$db as sqlx::Database>::Connection,
            plan: &$crate::settle::SettlePlan,
        ) -> $crate::StoreResult<()> {
            let order = &plan.order;
            let sql = batch.sql();
            sql.push("INSERT INTO order_events (order_id, seq, status, actor, at) VALUES (");
            sql.separated(", ")
                .push_bind(order.id)
                .push_bind(plan.event_seq)
                .push_bind(order.status.as_str())
                .push_bind(plan.actor())
                .push_bind(order.updated_at);
            sql.push(")");
            batch.end_statement(&mut *conn).await?;
            batch
                .sql()
                .push("UPDATE tickets SET status = ")
                .push_bind(plan.tickets.as_str())
                .push(" WHERE order_id = ")
                .push_bind(order.id)
                .push(" AND status = 'held'");
            batch.end_statement(&mut *conn).await?;
            let sql = batch.sql();
            if plan.keeps_answer() {
                sql.push("UPDATE idempotency_keys SET status = ")
                    .push_bind(i64::from(plan.answer.status))
                    .push(", response_body = ")
                    .push_bind(plan.answer.body.as_str())
                    .push(" WHERE order_id = ")
                    .push_bind(order.id);
            } else {
                sql.push("DELETE FROM idempotency_keys WHERE order_id = ")
                    .push_bind(order.id);
            }
            batch.end_statement(&mut *conn).await?;
            let request_id = brigade_core::request::current().map(|context| context.request_id);
            batch
                .sql()
                .push(
                    "INSERT INTO audit_events \
                     (id, at, actor, action, entity, entity_id, before, after, request_id) ",
                )
                .push_values(plan.audit.iter(), |mut row, entry| {
                    row.push_bind(uuid::Uuid::now_v7())
                        .push_bind(order.updated_at)
                        .push_bind(plan.actor())
                        .push_bind(entry.action)
                        .push_bind(entry.entity)
                        .push_bind(entry.entity_id.as_str())
                        .push_bind(entry.before.as_ref().map(ToString::to_string))
                        .push_bind(entry.after.as_ref().map(ToString::to_string))
                        .push_bind(request_id.clone());
                });
            batch.end_statement(&mut *conn).await
        }

        /// `Ledger::settle_placed`: the plan when it holds, else the general path.
        async fn settle_placed_here(
            &self,
            placed: &brigade_domain::Order,
            payment: &brigade_domain::Payment,
            settlement: &$crate::Settlement,
            actor: &brigade_domain::Actor,
            render: &$crate::RenderAnswer,
        ) -> $crate::StoreResult<$crate::Settled> {
            use $crate::Ledger as _;
            if let Some(plan) = $crate::settle::plan(placed, payment, settlement, actor, render)
                && self.settle_planned(&plan).await?
            {
                return Ok($crate::Settled {
                    order: plan.order,
                    payment: plan.payment,
                    changed: true,
                });
            }
            self.settle_authorization(payment.id, settlement, actor, render)
                .await
        }
    };
}

pub(crate) use settle_helpers;

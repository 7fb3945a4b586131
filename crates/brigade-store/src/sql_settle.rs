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
            Self::record_settlement(&mut tx, plan).await?;
            tx.commit().await.map_err(classify)?;
            Ok(true)
        }

        /// What follows a settled order and payment, in their transaction and in this order:
        /// the order's event, its held tickets, the idempotency key (kept with the answer or
        /// released) and the audit entries.
        async fn record_settlement(
            conn: &mut <$db as sqlx::Database>::Connection,
            plan: &$crate::settle::SettlePlan,
        ) -> $crate::StoreResult<()> {
            use $crate::error::classify;
            let order = &plan.order;
            sqlx::query(
                "INSERT INTO order_events (order_id, seq, status, actor, at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(order.id)
            .bind(plan.event_seq)
            .bind(order.status.as_str())
            .bind(plan.actor())
            .bind(order.updated_at)
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
            sqlx::query("UPDATE tickets SET status = $1 WHERE order_id = $2 AND status = 'held'")
                .bind(plan.tickets.as_str())
                .bind(order.id)
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            let keep_or_release = if plan.keeps_answer() {
                sqlx::query(
                    "UPDATE idempotency_keys SET status = $1, response_body = $2 \
                     WHERE order_id = $3",
                )
                .bind(i64::from(plan.answer.status))
                .bind(plan.answer.body.as_str())
                .bind(order.id)
            } else {
                sqlx::query("DELETE FROM idempotency_keys WHERE order_id = $1").bind(order.id)
            };
            keep_or_release.execute(&mut *conn).await.map_err(classify)?;
            let request_id = brigade_core::request::current().map(|context| context.request_id);
            sqlx::QueryBuilder::<$db>::new(
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
            })
            .build()
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
            Ok(())
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

//! payment-outage's check of the money: every order placed during the drill, its payment's
//! last status from the audit trail, and whether any order the customer was told failed still
//! holds (or took) money.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use brigade_domain::AuditEvent;

use super::DrillError;
use super::client;
use super::inject::Ctx;
use super::report::PaymentCheck;

/// How long the drill waits for the holds of failed orders to be released (the reconciler
/// retries a failed release after `payments.reconcile_after_secs`, 30 s by default).
const RELEASE_LIMIT: Duration = Duration::from_secs(90);

/// Reads the payments of the drill's orders (request ids starting with `key_prefix`) placed
/// since `since`; waits (bounded) until no failed
/// order's payment is still being released.
pub async fn check(
    ctx: &Ctx,
    since: chrono::DateTime<chrono::Utc>,
    acknowledged: &[String],
    key_prefix: &str,
    breakers_closed: bool,
) -> Result<PaymentCheck, DrillError> {
    let admin = ctx.admin_token().await?;
    let deadline = Instant::now() + RELEASE_LIMIT;
    loop {
        let placed = client::audit(
            &ctx.http,
            &ctx.public,
            &admin,
            &[("action", "order.placed")],
            since,
        )
        .await?;
        let changes = client::audit(
            &ctx.http,
            &ctx.public,
            &admin,
            &[("entity", "payment")],
            since,
        )
        .await?;
        // Newest first: the first event of a payment has its last status.
        let mut last: HashMap<&str, String> = HashMap::new();
        for event in &changes {
            if let Some(status) = Changed::after(event).status {
                last.entry(event.entity_id.as_str()).or_insert(status);
            }
        }
        // Only the drill's own orders: other customers may be ordering at the same time.
        let own = |event: &&AuditEvent| {
            event
                .request_id
                .as_deref()
                .is_some_and(|id| id.starts_with(key_prefix))
        };
        let placed: Vec<&AuditEvent> = placed.iter().filter(own).collect();
        let mut check = PaymentCheck {
            orders: placed.len(),
            breakers_closed,
            ..PaymentCheck::default()
        };
        for order in placed {
            let order_id = order.entity_id.as_str();
            let payment_id = Changed::after(order).payment_id.unwrap_or_default();
            let status = last
                .get(payment_id.as_str())
                .map_or("pending", String::as_str);
            *check.payments.entry(status.to_owned()).or_default() += 1;
            let told_ok = acknowledged
                .binary_search_by(|id| id.as_str().cmp(order_id))
                .is_ok();
            if told_ok {
                continue;
            }
            match status {
                "authorized" | "capturing" | "captured" => check.charged_but_failed += 1,
                "voiding" | "pending" => check.releasing += 1,
                _ => {}
            }
        }
        if check.releasing == 0 || Instant::now() > deadline {
            return Ok(check);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The fields of an audit event's `after` the check reads: a payment's new status, the payment
/// of a placed order.
#[derive(Debug, Default, serde::Deserialize)]
struct Changed {
    status: Option<String>,
    payment_id: Option<String>,
}

impl Changed {
    fn after(event: &AuditEvent) -> Self {
        event
            .after
            .clone()
            .and_then(|after| serde_json::from_value(after).ok())
            .unwrap_or_default()
    }
}

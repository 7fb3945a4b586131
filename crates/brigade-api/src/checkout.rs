//! Taking the money: the payment step of placing an order, capture on delivery, void on
//! cancellation, and the reconciler that finishes what a dead replica left half done.
//!
//! The payment row is written `pending` in the same transaction as the order (see the store's
//! `place_order`), *before* the provider is called. Then:
//! - the provider answers → [`settle`] records the answer, the order becomes `placed` or
//!   `payment_failed`, and the `Idempotency-Key` answer is stored, in one transaction;
//! - the provider does not answer (error, timeout) → the payment is recorded as `voiding`: a
//!   charge may exist, so it is released, now or by the reconciler;
//! - the replica dies mid-call, or the answer cannot be recorded (the database became
//!   unavailable) → the row stays `pending` and the client got no answer or a 5xx. A retry
//!   with the same `Idempotency-Key` settles it (see [`take_over`]) and gets the real answer.
//!   Without one, after `payments.reconcile_after_secs` the reconciler of any replica
//!   abandons it: the order ends `payment_failed` and any charge the call may have made is
//!   released. brigade takes money only for an order it acknowledged with 201, to the request
//!   or to a retry of it.
//!
//! So no order is acknowledged without an authorisation, no authorisation exists without a
//! payment row that ends captured or voided, and no order its client never saw acknowledged is
//! charged.

use std::time::Duration;

use brigade_core::Problem;
use brigade_domain::{Actor, Order, OrderStatus, Payment, PaymentStatus};
use brigade_payments::{Authorization, Charge};
use brigade_store::{NewPayment, Settled, Settlement, StoredResponse};
use http::StatusCode;

use crate::error::ApiResult;
use crate::state::AppState;

/// How many unsettled payments one reconciler round takes on.
const RECONCILE_BATCH: u32 = 50;

/// What the provider is asked to charge for `payment`.
fn charge(payment: &Payment) -> Charge {
    Charge {
        payment_id: payment.id,
        order_id: payment.order_id,
        amount_minor: payment.amount_minor,
        currency: payment.currency.clone(),
    }
}

/// Asks the provider to authorise the payment of an order this request just placed and
/// records the answer, from the order and payment as the request wrote them (see the store's
/// `settle_placed`).
pub async fn authorize(
    state: &AppState,
    order: &Order,
    payment: &NewPayment,
    actor: &Actor,
) -> ApiResult<Settled> {
    let pending = payment.pending(order);
    let charge = charge(&pending);
    let settlement = ask_provider(state, &charge).await;
    let settled = state
        .store
        .settle_placed(order, &pending, &settlement, actor, &render_answer)
        .await?;
    Ok(after_settling(state, &charge, &settlement, settled).await)
}

/// Settles the pending payment of `order_id` on behalf of a retry of the request that placed
/// it (same idempotency key at the provider, so at most one charge).
pub async fn take_over(state: &AppState, order_id: uuid::Uuid, actor: &Actor) -> ApiResult<()> {
    if let Some(payment) = state.store.payment_of_order(order_id).await?
        && payment.status == PaymentStatus::Pending
    {
        tracing::info!(order_id = %order_id, payment_id = %payment.id, "a retry settles the payment its first request left");
        settle(state, &charge(&payment), actor).await?;
    }
    Ok(())
}

/// Calls the provider for `charge` and records what it said.
async fn settle(state: &AppState, charge: &Charge, actor: &Actor) -> ApiResult<Settled> {
    let settlement = ask_provider(state, charge).await;
    let settled = state
        .store
        .settle_authorization(charge.payment_id, &settlement, actor, &render_answer)
        .await?;
    Ok(after_settling(state, charge, &settlement, settled).await)
}

/// What the provider says to authorising `charge`, as it is to be recorded.
async fn ask_provider(state: &AppState, charge: &Charge) -> Settlement {
    match state.payments.authorize(charge).await {
        Ok(Authorization::Approved { reference }) => Settlement {
            status: PaymentStatus::Authorized,
            reference: Some(reference),
            reason: None,
        },
        Ok(Authorization::Declined { reason }) => Settlement {
            status: PaymentStatus::Declined,
            reference: None,
            reason: Some(reason),
        },
        Err(error) => Settlement {
            // An error or timeout may hide a charge that went through: release it.
            status: if error.may_have_charged() {
                PaymentStatus::Voiding
            } else {
                PaymentStatus::Failed
            },
            reference: None,
            reason: Some(error.to_string()),
        },
    }
}

/// What is owed once an authorisation was recorded: the release of a charge that may exist
/// (`voiding`), or of an authorisation that came after the payment was given up.
async fn after_settling(
    state: &AppState,
    charge: &Charge,
    settlement: &Settlement,
    settled: Settled,
) -> Settled {
    if settled.changed && settled.payment.status == PaymentStatus::Voiding {
        finish(state, &settled.payment).await;
    }
    if !settled.changed
        && settlement.status == PaymentStatus::Authorized
        && !matches!(
            settled.payment.status,
            PaymentStatus::Authorized | PaymentStatus::Capturing | PaymentStatus::Captured
        )
    {
        // The payment was settled as failed or abandoned meanwhile (the reconciler), after
        // this call's authorisation was made: release it, nobody will capture it.
        tracing::info!(payment_id = %charge.payment_id, "an authorisation that came too late is released");
        if let Err(error) = state
            .payments
            .void(charge, settlement.reference.as_deref())
            .await
        {
            tracing::warn!(error = %error, payment_id = %charge.payment_id, "releasing a late authorisation failed");
        }
    }
    settled
}

/// Gives up a payment still `pending` after `payments.reconcile_after_secs`: the request that
/// placed its order never answered 201 (its replica died, or it answered 5xx), and no retry
/// with its key came to settle it. The order ends `payment_failed`, the key is released, and
/// whatever the provider call may have charged is released now (or by a later round).
async fn abandon(state: &AppState, payment: &Payment) -> ApiResult<()> {
    let settlement = Settlement {
        status: PaymentStatus::Voiding,
        reference: None,
        reason: Some("abandoned: the request that placed the order was never answered".to_owned()),
    };
    let settled = state
        .store
        .settle_authorization(payment.id, &settlement, &Actor::system(), &render_answer)
        .await?;
    if settled.changed {
        finish(state, &settled.payment).await;
    }
    Ok(())
}

/// The answer to the placing request once its payment settled; stored for `Idempotency-Key`
/// replays in the settling transaction.
fn render_answer(order: &Order, payment: &Payment) -> StoredResponse {
    if order.status == OrderStatus::AwaitingPayment || order.status == OrderStatus::PaymentFailed {
        let problem = payment_problem(order, payment);
        StoredResponse {
            status: problem.status,
            body: serde_json::to_string(&problem).unwrap_or_default(),
        }
    } else {
        StoredResponse {
            status: StatusCode::CREATED.as_u16(),
            body: serde_json::to_string(order).unwrap_or_default(),
        }
    }
}

/// The problem+json answer for an order whose payment did not go through. The order id is in
/// the detail so that people and pages can find the order that was not charged.
pub fn payment_problem(order: &Order, payment: &Payment) -> Problem {
    let reason = payment.reason.as_deref().unwrap_or("no reason given");
    let problem = match payment.status {
        PaymentStatus::Declined => Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment-declined",
            "Payment declined",
        )
        .with_detail(format!(
            "the payment was declined ({reason}); order {} was not placed and nothing was charged",
            order.id
        )),
        PaymentStatus::Failed => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "payment-unavailable",
            "Payments are unavailable",
        )
        .with_detail(format!(
            "payments cannot be taken right now ({reason}); order {} was not placed and nothing \
             was charged; try again shortly",
            order.id
        )),
        _ => Problem::new(
            StatusCode::BAD_GATEWAY,
            "payment-failed",
            "Payment failed",
        )
        .with_detail(format!(
            "the payment provider did not confirm the payment ({reason}); order {} was not placed \
             and any hold on the money is released",
            order.id
        )),
    };
    Problem {
        instance: brigade_core::request::current()
            .map(|context| format!("urn:brigade:request:{}", context.request_id)),
        ..problem
    }
}

/// After an order was delivered or cancelled: captures or releases its payment. A failure
/// leaves the payment `capturing`/`voiding` for the reconciler; the order change stands.
pub async fn follow_order(state: &AppState, order: &Order) {
    if !matches!(
        order.status,
        OrderStatus::Delivered | OrderStatus::Cancelled
    ) {
        return;
    }
    match state.store.payment_of_order(order.id).await {
        Ok(Some(payment)) if payment.status.unsettled() => finish(state, &payment).await,
        Ok(_) => {}
        Err(error) => tracing::warn!(
            error = &error as &dyn std::error::Error,
            order_id = %order.id,
            "cannot read the payment to settle; the reconciler will"
        ),
    }
}

/// Makes the provider call a `capturing` or `voiding` payment owes, and records the result.
async fn finish(state: &AppState, payment: &Payment) {
    let charge = charge(payment);
    let (result, done) = match payment.status {
        PaymentStatus::Capturing => {
            let Some(reference) = payment.reference.as_deref() else {
                tracing::error!(payment_id = %payment.id, "authorised payment without a reference");
                return;
            };
            (
                state.payments.capture(&charge, reference).await,
                PaymentStatus::Captured,
            )
        }
        PaymentStatus::Voiding => (
            state
                .payments
                .void(&charge, payment.reference.as_deref())
                .await,
            PaymentStatus::Voided,
        ),
        _ => return,
    };
    let recorded = match result {
        Ok(()) => state
            .store
            .finish_payment(payment.id, payment.status, done, &Actor::system())
            .await
            .map(drop),
        Err(error) => {
            state
                .store
                .payment_attempt_failed(payment.id, &error.to_string())
                .await
        }
    };
    if let Err(error) = recorded {
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            payment_id = %payment.id,
            "cannot record a payment call; the reconciler will repeat it"
        );
    }
}

/// One reconciler round: every payment left owing a provider call for longer than
/// `payments.reconcile_after_secs` gets it, on whichever replica leases it first.
pub async fn reconcile(state: &AppState) {
    let after = Duration::from_secs(state.settings.payments.reconcile_after_secs);
    let stale_before =
        brigade_domain::now() - chrono::Duration::from_std(after).unwrap_or_default();
    let payments = match state
        .store
        .lease_unsettled_payments(stale_before, RECONCILE_BATCH)
        .await
    {
        Ok(payments) => payments,
        Err(error) => {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "payment reconciler cannot read"
            );
            return;
        }
    };
    for payment in payments {
        tracing::info!(payment_id = %payment.id, order_id = %payment.order_id,
            status = payment.status.as_str(), "reconciling payment");
        match payment.status {
            PaymentStatus::Pending => {
                if let Err(error) = abandon(state, &payment).await {
                    tracing::warn!(error = ?error, payment_id = %payment.id, "reconciling failed");
                }
            }
            _ => finish(state, &payment).await,
        }
    }
}

//! Settling the payment of an order that the settling request placed itself.
//!
//! The general `settle_authorization` knows only a payment id: it locks and re-reads the
//! order, the payment and everything hanging off them, then re-reads them again to render the
//! answer — eighteen statements. The request that just placed the order already holds both
//! rows exactly as it wrote them, so the result of settling can be worked out in memory
//! ([`plan`]) and written with guards that make the store refuse the plan when anything
//! changed since (the order's status and version, the payment's status): the writes are those
//! of the general path, the answer the same, and a refused plan falls back to the general path.

use brigade_domain::{Actor, Order, OrderEvent, OrderStatus, Payment, PaymentStatus, TicketStatus};

use crate::{AuditEntry, RenderAnswer, Settlement, StoredResponse};

/// The settled order and payment, worked out before anything is written, with the rows to
/// write.
#[derive(Debug, Clone)]
pub(crate) struct SettlePlan {
    /// The order after settling (`placed` or `payment_failed`, version bumped, event added).
    pub order: Order,
    /// The payment after settling.
    pub payment: Payment,
    /// The version the order must still have for the plan to hold.
    pub from_version: i64,
    /// `seq` of the order event the plan adds.
    pub event_seq: i64,
    /// What the held tickets become.
    pub tickets: TicketStatus,
    /// The answer for `Idempotency-Key` replays; kept when below 500, else the key is released.
    pub answer: StoredResponse,
    /// The payment's and the order's audit entries, in the general path's order.
    pub audit: [AuditEntry; 2],
}

impl SettlePlan {
    /// Whether the answer is final (kept for replays) rather than "try again" (key released).
    pub fn keeps_answer(&self) -> bool {
        self.answer.status < 500
    }

    /// Who settles: the actor of the event the plan adds.
    pub fn actor(&self) -> &str {
        self.order
            .history
            .last()
            .map_or("", |event| event.actor.0.as_str())
    }
}

/// Works out what settling `payment` of the freshly written `placed` order with `settlement`
/// writes and answers; `None` when they are not a fresh placement (the general path then).
pub(crate) fn plan(
    placed: &Order,
    payment: &Payment,
    settlement: &Settlement,
    actor: &Actor,
    render: &RenderAnswer,
) -> Option<SettlePlan> {
    if placed.status != OrderStatus::AwaitingPayment
        || payment.status != PaymentStatus::Pending
        || payment.order_id != placed.id
    {
        return None;
    }
    let now = brigade_domain::now();
    let (to, tickets) = if settlement.status == PaymentStatus::Authorized {
        (OrderStatus::Placed, TicketStatus::Queued)
    } else {
        (OrderStatus::PaymentFailed, TicketStatus::Cancelled)
    };
    let mut order = placed.clone();
    order.status = to;
    order.version = placed.version + 1;
    order.updated_at = now;
    order.history.push(OrderEvent {
        status: to,
        at: now,
        actor: actor.clone(),
    });
    for ticket in &mut order.tickets {
        if ticket.status == TicketStatus::Held {
            ticket.status = tickets;
        }
    }
    let mut settled = payment.clone();
    settled.status = settlement.status;
    if settlement.reference.is_some() {
        settled.reference.clone_from(&settlement.reference);
    }
    settled.reason.clone_from(&settlement.reason);
    settled.updated_at = now;
    let audit = [
        payment_audit(payment, settlement),
        AuditEntry::new("order.status_changed", "order", placed.id)
            .before(serde_json::json!({ "status": placed.status }))
            .after(serde_json::json!({ "status": to })),
    ];
    let answer = render(&order, &settled);
    Some(SettlePlan {
        from_version: placed.version,
        event_seq: i64::try_from(order.history.len()).unwrap_or(i64::MAX),
        tickets,
        answer,
        audit,
        order,
        payment: settled,
    })
}

/// The audit entry of recording `settlement` on the pending `payment`, on either path.
pub(crate) fn payment_audit(payment: &Payment, settlement: &Settlement) -> AuditEntry {
    let action = match settlement.status {
        PaymentStatus::Authorized => "payment.authorized",
        PaymentStatus::Declined => "payment.declined",
        _ => "payment.failed",
    };
    AuditEntry::new(action, "payment", payment.id)
        .before(serde_json::json!({ "status": payment.status }))
        .after(serde_json::json!({
            "status": settlement.status,
            "reference": settlement.reference,
            "reason": settlement.reason,
            "amount_minor": payment.amount_minor,
            "currency": payment.currency,
        }))
}

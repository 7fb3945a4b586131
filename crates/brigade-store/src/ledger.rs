//! Types of the two ledgers kept beside the orders: payments and the audit trail.

use brigade_domain::{Order, Payment, PaymentStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::StoredResponse;

/// One change to record in the audit trail, in the transaction making the change.
///
/// The actor comes from the store call, the request id from the request being served
/// (`brigade_core::request::current`), the time from the clock.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// `<entity>.<verb>`, e.g. `order.status_changed`.
    pub action: &'static str,
    /// `order`, `ticket`, `payment`, `account`, `session`, `shop`, `station`, `item`, `menu`.
    pub entity: &'static str,
    /// The entity's id.
    pub entity_id: String,
    /// Changed fields before the change.
    pub before: Option<serde_json::Value>,
    /// Changed fields after the change.
    pub after: Option<serde_json::Value>,
}

impl AuditEntry {
    /// An entry for `entity` `id` with neither side filled in yet.
    pub fn new(action: &'static str, entity: &'static str, id: impl ToString) -> Self {
        Self {
            action,
            entity,
            entity_id: id.to_string(),
            before: None,
            after: None,
        }
    }

    /// Sets the "before" side from anything serialisable (never pass secrets).
    pub fn before(mut self, value: impl Serialize) -> Self {
        self.before = serde_json::to_value(value).ok();
        self
    }

    /// Sets the "after" side from anything serialisable (never pass secrets).
    pub fn after(mut self, value: impl Serialize) -> Self {
        self.after = serde_json::to_value(value).ok();
        self
    }
}

/// Which audit events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this kind of entity.
    pub entity: Option<String>,
    /// Only this entity.
    pub entity_id: Option<String>,
    /// Only changes by this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only events older than this one (the cursor of the previous page).
    pub before: Option<Uuid>,
    /// Page size.
    pub limit: u32,
}

/// The payment written with a new order, before the provider is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    /// Payment id (the provider idempotency keys derive from it).
    pub id: Uuid,
    /// Provider name.
    pub provider: String,
}

impl NewPayment {
    /// The payment row as `place_order` writes it for `order`: pending, for the order's total.
    pub fn pending(&self, order: &Order) -> Payment {
        Payment {
            id: self.id,
            order_id: order.id,
            provider: self.provider.clone(),
            status: PaymentStatus::Pending,
            reference: None,
            amount_minor: order.total_minor,
            currency: order.currency.clone(),
            reason: None,
            created_at: order.created_at,
            updated_at: order.created_at,
        }
    }
}

/// What the provider said to an authorisation, as it is to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// `Authorized`, `Declined`, `Failed` (no call made) or `Voiding` (a charge may exist).
    pub status: PaymentStatus,
    /// The provider's id, when it answered with one.
    pub reference: Option<String>,
    /// Why it did not go through.
    pub reason: Option<String>,
}

/// Renders the answer an `Idempotency-Key` replay of the placing request gets once the
/// payment settled (the order with 201, or the payment problem). The store calls it inside the
/// settling transaction, so the stored answer and the order can never disagree.
pub type RenderAnswer = dyn Fn(&Order, &Payment) -> StoredResponse + Send + Sync;

/// The result of settling an authorisation.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The order after settling.
    pub order: Order,
    /// The payment after settling.
    pub payment: Payment,
    /// False when it was already settled (by another replica's reconciler): nothing changed.
    pub changed: bool,
}

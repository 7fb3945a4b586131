//! Orders and their lifecycle.
//!
//! ```text
//! awaiting_payment → placed → accepted → preparing → ready → out_for_delivery → delivered
//!        └→ payment_failed └────────┴──→ cancelled
//! ```
//! `placed` and `payment_failed` are set by the payment step (authorised or not), `preparing`
//! and `ready` through the kitchen (first ticket claimed, last ticket done); the other steps
//! are requested through the API. Every other transition is refused.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Actor;
use crate::geo::GeoPoint;
use crate::ticket::Ticket;
use crate::validate::{Violation, Violations};

/// Most lines one order may have.
pub const MAX_LINES: usize = 50;
/// Most items of one kind on one line.
pub const MAX_QUANTITY: i64 = 99;

/// Status of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Written, while the payment provider authorises the charge; the kitchen does not see it.
    AwaitingPayment,
    /// The payment was declined or could not be taken; nothing will be cooked or charged.
    PaymentFailed,
    /// Paid (authorised); tickets are queued but the shop has not accepted it yet.
    Placed,
    /// The shop accepted it; its tickets may be claimed.
    Accepted,
    /// At least one ticket is being cooked.
    Preparing,
    /// Every ticket is done; waiting at the pass for a courier.
    Ready,
    /// A courier has it.
    OutForDelivery,
    /// Handed to the customer.
    Delivered,
    /// Cancelled before cooking started.
    Cancelled,
}

/// Why a status change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The lifecycle has no such step.
    #[error("an order cannot go from {from} to {to}")]
    NotAllowed {
        /// Current status.
        from: OrderStatus,
        /// Requested status.
        to: OrderStatus,
    },
    /// The step exists but only the kitchen takes it.
    #[error("{to} is set by the kitchen (claim or complete the order's tickets)")]
    KitchenOnly {
        /// Requested status.
        to: OrderStatus,
    },
    /// The step exists but only the payment step takes it.
    #[error("{to} is set by the payment step, not requested")]
    PaymentOnly {
        /// Requested status.
        to: OrderStatus,
    },
}

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [OrderStatus; 9] = [
        Self::AwaitingPayment,
        Self::PaymentFailed,
        Self::Placed,
        Self::Accepted,
        Self::Preparing,
        Self::Ready,
        Self::OutForDelivery,
        Self::Delivered,
        Self::Cancelled,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingPayment => "awaiting_payment",
            Self::PaymentFailed => "payment_failed",
            Self::Placed => "placed",
            Self::Accepted => "accepted",
            Self::Preparing => "preparing",
            Self::Ready => "ready",
            Self::OutForDelivery => "out_for_delivery",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored or query-string name.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
    }

    /// Whether the lifecycle has a step from `self` to `to`.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (AwaitingPayment, Placed | PaymentFailed)
                | (Placed, Accepted)
                | (Accepted, Preparing)
                | (Preparing, Ready)
                | (Ready, OutForDelivery)
                | (OutForDelivery, Delivered)
                | (Placed | Accepted, Cancelled)
        )
    }

    /// Checks a change requested through the API (not by the kitchen).
    pub fn request(self, to: OrderStatus) -> Result<(), TransitionError> {
        if matches!(to, Self::Preparing | Self::Ready) {
            return Err(TransitionError::KitchenOnly { to });
        }
        if matches!(to, Self::Placed | Self::PaymentFailed) && self.can_become(to) {
            return Err(TransitionError::PaymentOnly { to });
        }
        if self.can_become(to) {
            Ok(())
        } else {
            Err(TransitionError::NotAllowed { from: self, to })
        }
    }

    /// Whether the kitchen may claim this order's tickets.
    pub fn kitchen_may_cook(self) -> bool {
        matches!(self, Self::Accepted | Self::Preparing)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of `POST /api/v1/orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// The shop to order from; when absent brigade picks the open shop with the shortest ETA.
    #[serde(default)]
    pub shop_id: Option<Uuid>,
    /// What to order: 1–50 lines, each item at most once.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<NewOrderLine>,
    /// Where to deliver.
    pub delivery: GeoPoint,
}

/// One line of a new order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderLine {
    /// Catalogue item id.
    pub item_id: Uuid,
    /// How many, 1–99.
    #[schema(minimum = 1, maximum = 99)]
    pub quantity: i64,
}

impl NewOrder {
    /// Checks shape and ranges; whether the items exist is checked against the menu later.
    pub fn validate(self) -> Result<Self, Vec<Violation>> {
        let mut v = Violations::new();
        v.check(
            !self.items.is_empty(),
            "items",
            "must contain at least one item",
        );
        v.check(
            self.items.len() <= MAX_LINES,
            "items",
            format!("must contain at most {MAX_LINES} lines"),
        );
        let mut seen = HashSet::new();
        for (index, line) in self.items.iter().enumerate() {
            v.check(
                (1..=MAX_QUANTITY).contains(&line.quantity),
                format!("items[{index}].quantity"),
                format!("must be between 1 and {MAX_QUANTITY}"),
            );
            v.check(
                seen.insert(line.item_id),
                format!("items[{index}].item_id"),
                "lists an item already listed; raise its quantity instead",
            );
        }
        self.delivery.validate("delivery", &mut v);
        v.finish(self)
    }
}

/// One line of a placed order, priced when the order was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    /// Catalogue item id.
    pub item_id: Uuid,
    /// Item name at the time of ordering.
    pub name: String,
    /// How many.
    pub quantity: i64,
    /// Price of one at the time of ordering, minor units.
    pub unit_price_minor: i64,
    /// The station cooking it.
    pub station_id: Uuid,
}

/// A status change in an order's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderEvent {
    /// The status entered.
    pub status: OrderStatus,
    /// When.
    pub at: DateTime<Utc>,
    /// Who made the change.
    pub actor: Actor,
}

/// An order with its lines, tickets and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// Order id (UUID v7).
    pub id: Uuid,
    /// The shop cooking it.
    pub shop_id: Uuid,
    /// The customer account that placed it (absent for anonymous orders).
    pub customer_id: Option<Uuid>,
    /// Lifecycle status.
    pub status: OrderStatus,
    /// Increases on every change; send it back in `If-Match` to update the order.
    pub version: i64,
    /// What was ordered.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines, minor units.
    pub total_minor: i64,
    /// ISO 4217 currency of every line.
    pub currency: String,
    /// Where to deliver.
    pub delivery: GeoPoint,
    /// Distance from the shop, metres.
    pub distance_m: i64,
    /// Estimated seconds from placement to delivery, as computed at placement.
    pub eta_seconds: i64,
    /// When the kitchen is expected to finish.
    pub estimated_ready_at: DateTime<Utc>,
    /// When the customer is expected to have it.
    pub estimated_delivery_at: DateTime<Utc>,
    /// One ticket per station involved.
    pub tickets: Vec<Ticket>,
    /// Every status the order went through, oldest first.
    pub history: Vec<OrderEvent>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// The short form used in listings.
    pub fn summary(&self) -> OrderSummary {
        OrderSummary {
            id: self.id,
            shop_id: self.shop_id,
            customer_id: self.customer_id,
            status: self.status,
            version: self.version,
            total_minor: self.total_minor,
            currency: self.currency.clone(),
            estimated_delivery_at: self.estimated_delivery_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// An order as listed by `GET /api/v1/orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderSummary {
    /// Order id.
    pub id: Uuid,
    /// The shop cooking it.
    pub shop_id: Uuid,
    /// The customer account that placed it.
    pub customer_id: Option<Uuid>,
    /// Lifecycle status.
    pub status: OrderStatus,
    /// Current version (for `If-Match`).
    pub version: i64,
    /// Total, minor units.
    pub total_minor: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// When the customer is expected to have it.
    pub estimated_delivery_at: DateTime<Utc>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    #[test]
    fn only_lifecycle_steps_are_allowed() {
        let allowed = [
            (AwaitingPayment, Placed),
            (AwaitingPayment, PaymentFailed),
            (Placed, Accepted),
            (Accepted, Preparing),
            (Preparing, Ready),
            (Ready, OutForDelivery),
            (OutForDelivery, Delivered),
            (Placed, Cancelled),
            (Accepted, Cancelled),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn payment_steps_cannot_be_requested() {
        assert_eq!(
            AwaitingPayment.request(Placed),
            Err(TransitionError::PaymentOnly { to: Placed })
        );
        assert_eq!(
            AwaitingPayment.request(PaymentFailed),
            Err(TransitionError::PaymentOnly { to: PaymentFailed })
        );
        assert!(matches!(
            Placed.request(PaymentFailed),
            Err(TransitionError::NotAllowed { .. })
        ));
    }

    #[test]
    fn kitchen_steps_cannot_be_requested() {
        assert_eq!(
            Accepted.request(Preparing),
            Err(TransitionError::KitchenOnly { to: Preparing })
        );
        assert!(Placed.request(Accepted).is_ok());
        assert!(matches!(
            Delivered.request(Cancelled),
            Err(TransitionError::NotAllowed { .. })
        ));
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::String(status.as_str().into())
            );
        }
    }

    #[test]
    fn new_order_names_each_bad_line() {
        let item = Uuid::now_v7();
        let order = NewOrder {
            shop_id: None,
            items: vec![
                NewOrderLine {
                    item_id: item,
                    quantity: -1,
                },
                NewOrderLine {
                    item_id: item,
                    quantity: 2,
                },
            ],
            delivery: GeoPoint { lat: 0.0, lon: 0.0 },
        };
        let fields: Vec<_> = order
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["items[0].quantity", "items[1].item_id"]);
    }
}

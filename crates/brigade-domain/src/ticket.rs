//! Tickets: the part of an order one station cooks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a ticket is in the kitchen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Written with its order but not cooked until the payment is authorised.
    Held,
    /// Waiting at the station; counts towards the station's queue.
    Queued,
    /// A chef is cooking it.
    Claimed,
    /// Cooked; waiting at the pass.
    Done,
    /// The order was cancelled before the ticket was done.
    Cancelled,
}

impl TicketStatus {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Queued => "queued",
            Self::Claimed => "claimed",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "held" => Self::Held,
            "queued" => Self::Queued,
            "claimed" => Self::Claimed,
            "done" => Self::Done,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// One item line on a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketItem {
    /// Item name.
    pub name: String,
    /// How many to cook.
    pub quantity: i64,
}

/// A ticket: what one station must cook for one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ticket {
    /// Ticket id (UUID v7; its order is the queue order).
    pub id: Uuid,
    /// The order it belongs to.
    pub order_id: Uuid,
    /// The shop cooking it.
    pub shop_id: Uuid,
    /// The station cooking it.
    pub station_id: Uuid,
    /// Kitchen status.
    pub status: TicketStatus,
    /// Seconds of chef work (quantity × prep time, summed over its items).
    pub work_seconds: i64,
    /// What to cook.
    pub items: Vec<TicketItem>,
    /// Who claimed it.
    pub claimed_by: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When a chef claimed it.
    pub claimed_at: Option<DateTime<Utc>>,
    /// When it was done.
    pub completed_at: Option<DateTime<Utc>>,
}

/// A ticket in a station's queue, with what the kitchen needs to decide whether to cook it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueuedTicket {
    /// The ticket.
    #[serde(flatten)]
    pub ticket: Ticket,
    /// Status of its order: tickets of orders not yet accepted wait in the queue but cannot
    /// be claimed.
    pub order_status: crate::OrderStatus,
    /// Whether it can be claimed now.
    pub claimable: bool,
}

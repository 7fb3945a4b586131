//! Payments: the money side of an order.
//!
//! ```text
//! pending → authorized → capturing → captured      (order delivered)
//!    │          └──────→ voiding  → voided        (order cancelled)
//!    ├→ declined                                   (the provider said no)
//!    ├→ failed                                     (no call was made: breaker open)
//!    └→ voiding → voided                           (error or timeout: a charge may exist)
//! ```
//! Every arrow out of `pending`, `capturing` and `voiding` follows a provider call. The row is
//! written before the call, so a replica that dies mid-call leaves a record another replica's
//! reconciler finishes: no charge exists without a record, no order is acknowledged uncharged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a payment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Written; the authorisation call is under way (or its replica died during it).
    Pending,
    /// The provider holds the money for the order.
    Authorized,
    /// The provider refused the charge.
    Declined,
    /// No charge was attempted (the provider was known to be down).
    Failed,
    /// The order was delivered; the capture call is under way or will be retried.
    Capturing,
    /// The money moved.
    Captured,
    /// A possible or certain authorisation is being released.
    Voiding,
    /// Released; nothing is charged.
    Voided,
}

impl PaymentStatus {
    /// Every status.
    pub const ALL: [PaymentStatus; 8] = [
        Self::Pending,
        Self::Authorized,
        Self::Declined,
        Self::Failed,
        Self::Capturing,
        Self::Captured,
        Self::Voiding,
        Self::Voided,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Authorized => "authorized",
            Self::Declined => "declined",
            Self::Failed => "failed",
            Self::Capturing => "capturing",
            Self::Captured => "captured",
            Self::Voiding => "voiding",
            Self::Voided => "voided",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
    }

    /// Whether a provider call is still owed (the reconciler's work list).
    pub fn unsettled(self) -> bool {
        matches!(self, Self::Pending | Self::Capturing | Self::Voiding)
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One order's payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    /// Payment id; also the provider idempotency key's stem.
    pub id: Uuid,
    /// The order it pays for.
    pub order_id: Uuid,
    /// Provider name (`simulated`, `stripe`).
    pub provider: String,
    /// Where it is.
    pub status: PaymentStatus,
    /// The provider's id for it (e.g. a PaymentIntent id), once known.
    pub reference: Option<String>,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// Why it was declined or failed, as the provider said.
    pub reason: Option<String>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

//! brigade-domain: shops, stations, the catalogue, orders, tickets and delivery estimates.
//!
//! Pure types and rules, no I/O: everything here can be tested without a database or a server,
//! and both storage backends and every HTTP route share exactly the same rules. Nothing here
//! knows what is cooked — a "pizza" is a category string in the data, so adding burgers is a
//! catalogue change, not a code change.

pub mod account;
pub mod audit;
pub mod catalogue;
pub mod eta;
pub mod geo;
pub mod order;
pub mod payment;
pub mod shop;
pub mod ticket;
pub mod validate;

pub use account::{Account, Credentials, Role};
pub use audit::AuditEvent;
pub use catalogue::{Availability, Item, MenuItem, NewItem};
pub use eta::{Eta, EtaInputs, StationLoad, estimate};
pub use geo::GeoPoint;
pub use order::{
    NewOrder, NewOrderLine, Order, OrderEvent, OrderLine, OrderStatus, OrderSummary,
    TransitionError,
};
pub use payment::{Payment, PaymentStatus};
pub use shop::{NewShop, NewStation, Shop, ShopPatch, Station};
pub use ticket::{QueuedTicket, Ticket, TicketItem, TicketStatus};
pub use validate::{CONTROL_CHARACTER_MESSAGE, Violation, Violations, has_control_character};

/// Who did something: recorded on every state change (the audit hook).
///
/// Requests are anonymous until accounts exist; the value is kept as a string so that later
/// principals (`account:<id>`, `system:kitchen`) need no schema change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Actor(pub String);

impl Actor {
    /// An unauthenticated caller.
    pub fn anonymous() -> Self {
        Self("anonymous".to_owned())
    }
    /// A change made by brigade itself (e.g. an order becoming ready when its last ticket is done).
    pub fn system() -> Self {
        Self("system".to_owned())
    }
    /// A signed-in account.
    pub fn account(id: uuid::Uuid) -> Self {
        Self(format!("account:{id}"))
    }
}

/// The current time, truncated to microseconds: the precision PostgreSQL keeps, so a value
/// returned when something is created equals the value read back later on either backend.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

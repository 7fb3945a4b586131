//! Database rows and their conversion to domain types. The same row types decode on both
//! backends because every column uses a type both drivers map to the same Rust type.

use std::collections::BTreeMap;

use brigade_domain::{
    Actor, GeoPoint, Item, MenuItem, OrderEvent, OrderLine, OrderStatus, OrderSummary, Shop,
    StationLoad, Ticket, TicketItem, TicketStatus,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;

#[derive(sqlx::FromRow)]
pub(crate) struct ShopRow {
    id: Uuid,
    name: String,
    region: String,
    lat: f64,
    lon: f64,
    open: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ShopRow> for Shop {
    fn from(row: ShopRow) -> Self {
        Shop {
            id: row.id,
            name: row.name,
            region: row.region,
            location: GeoPoint {
                lat: row.lat,
                lon: row.lon,
            },
            open: row.open,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StationRow {
    pub id: Uuid,
    pub shop_id: Uuid,
    pub name: String,
    pub capacity: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct StationCategoryRow {
    pub station_id: Uuid,
    pub category: String,
    pub prep_seconds: i64,
}

impl StationRow {
    pub fn into_station(self, categories: &[StationCategoryRow]) -> brigade_domain::Station {
        let prep_seconds: BTreeMap<String, i64> = categories
            .iter()
            .filter(|c| c.station_id == self.id)
            .map(|c| (c.category.clone(), c.prep_seconds))
            .collect();
        brigade_domain::Station {
            id: self.id,
            shop_id: self.shop_id,
            name: self.name,
            capacity: self.capacity,
            prep_seconds,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ItemRow {
    id: Uuid,
    sku: String,
    name: String,
    description: String,
    category: String,
    price_minor: i64,
    currency: String,
    created_at: DateTime<Utc>,
}

impl From<ItemRow> for Item {
    fn from(row: ItemRow) -> Self {
        Item {
            id: row.id,
            sku: row.sku,
            name: row.name,
            description: row.description,
            category: row.category,
            price_minor: row.price_minor,
            currency: row.currency,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MenuRow {
    item_id: Uuid,
    sku: String,
    name: String,
    description: String,
    category: String,
    price_minor: i64,
    currency: String,
    available: bool,
    station_id: Uuid,
    prep_seconds: i64,
}

impl From<MenuRow> for MenuItem {
    fn from(row: MenuRow) -> Self {
        MenuItem {
            item_id: row.item_id,
            sku: row.sku,
            name: row.name,
            description: row.description,
            category: row.category,
            price_minor: row.price_minor,
            currency: row.currency,
            available: row.available,
            station_id: row.station_id,
            prep_seconds: row.prep_seconds,
        }
    }
}

/// What the placement transaction re-reads about an item at the shop.
#[derive(sqlx::FromRow)]
pub(crate) struct PricedItemRow {
    pub id: Uuid,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub available: Option<bool>,
    pub station_id: Option<Uuid>,
    pub open: bool,
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrderRow {
    pub id: Uuid,
    pub shop_id: Uuid,
    pub status: String,
    pub version: i64,
    pub total_minor: i64,
    pub currency: String,
    pub delivery_lat: f64,
    pub delivery_lon: f64,
    pub distance_m: i64,
    pub eta_seconds: i64,
    pub estimated_ready_at: DateTime<Utc>,
    pub estimated_delivery_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub customer_id: Option<Uuid>,
}

impl OrderRow {
    pub fn summary(self) -> Result<OrderSummary, StoreError> {
        Ok(OrderSummary {
            id: self.id,
            shop_id: self.shop_id,
            customer_id: self.customer_id,
            status: order_status(&self.status)?,
            version: self.version,
            total_minor: self.total_minor,
            currency: self.currency,
            estimated_delivery_at: self.estimated_delivery_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LineRow {
    pub order_id: Uuid,
    pub item_id: Uuid,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub station_id: Uuid,
}

impl From<LineRow> for OrderLine {
    fn from(row: LineRow) -> Self {
        OrderLine {
            item_id: row.item_id,
            name: row.name,
            quantity: row.quantity,
            unit_price_minor: row.unit_price_minor,
            station_id: row.station_id,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TicketRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub shop_id: Uuid,
    pub station_id: Uuid,
    pub status: String,
    pub work_seconds: i64,
    pub claimed_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl TicketRow {
    /// The ticket, with its items taken from the order lines cooked at its station.
    pub fn into_ticket(self, lines: &[LineRow]) -> Result<Ticket, StoreError> {
        let status = TicketStatus::parse(&self.status)
            .ok_or_else(|| StoreError::Corrupt(format!("ticket status {:?}", self.status)))?;
        let items = lines
            .iter()
            .filter(|line| line.order_id == self.order_id && line.station_id == self.station_id)
            .map(|line| TicketItem {
                name: line.name.clone(),
                quantity: line.quantity,
            })
            .collect();
        Ok(Ticket {
            id: self.id,
            order_id: self.order_id,
            shop_id: self.shop_id,
            station_id: self.station_id,
            status,
            work_seconds: self.work_seconds,
            items,
            claimed_by: self.claimed_by,
            created_at: self.created_at,
            claimed_at: self.claimed_at,
            completed_at: self.completed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct QueueRow {
    #[sqlx(flatten)]
    pub ticket: TicketRow,
    pub order_status: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    status: String,
    actor: String,
    at: DateTime<Utc>,
}

impl TryFrom<EventRow> for OrderEvent {
    type Error = StoreError;
    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(OrderEvent {
            status: order_status(&row.status)?,
            at: row.at,
            actor: Actor(row.actor),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LoadRow {
    station_id: Uuid,
    shop_id: Uuid,
    capacity: i64,
    queued_work_seconds: i64,
}

impl From<LoadRow> for StationLoad {
    fn from(row: LoadRow) -> Self {
        StationLoad {
            station_id: row.station_id,
            shop_id: row.shop_id,
            capacity: row.capacity,
            queued_work_seconds: row.queued_work_seconds,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    pub order_id: Option<Uuid>,
    pub request_hash: String,
    pub status: i64,
    pub response_body: String,
}

pub(crate) fn order_status(value: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::parse(value).ok_or_else(|| StoreError::Corrupt(format!("order status {value:?}")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub shop_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<AccountRow> for brigade_domain::Account {
    type Error = StoreError;
    fn try_from(row: AccountRow) -> Result<Self, StoreError> {
        Ok(brigade_domain::Account {
            id: row.id,
            email: row.email,
            role: brigade_domain::Role::parse(&row.role)
                .ok_or_else(|| StoreError::Corrupt(format!("role {:?}", row.role)))?,
            shop_id: row.shop_id,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CredentialsRow {
    #[sqlx(flatten)]
    pub account: AccountRow,
    pub password_hash: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    #[sqlx(flatten)]
    pub account: AccountRow,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct PaymentRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub provider: String,
    pub status: String,
    pub reference: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<PaymentRow> for brigade_domain::Payment {
    type Error = StoreError;
    fn try_from(row: PaymentRow) -> Result<Self, StoreError> {
        Ok(brigade_domain::Payment {
            id: row.id,
            order_id: row.order_id,
            provider: row.provider,
            status: brigade_domain::PaymentStatus::parse(&row.status)
                .ok_or_else(|| StoreError::Corrupt(format!("payment status {:?}", row.status)))?,
            reference: row.reference,
            amount_minor: row.amount_minor,
            currency: row.currency,
            reason: row.reason,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub request_id: Option<String>,
}

impl From<AuditRow> for brigade_domain::AuditEvent {
    fn from(row: AuditRow) -> Self {
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        brigade_domain::AuditEvent {
            id: row.id,
            at: row.at,
            actor: row.actor,
            action: row.action,
            entity: row.entity,
            entity_id: row.entity_id,
            before: json(row.before),
            after: json(row.after),
            request_id: row.request_id,
        }
    }
}

//! Pieces every aggregate's statements share: the column lists of the tables (in the order
//! the row types read them), the order-row binding, SQL fragments, and the audit entry of a
//! placed order. Apart from `sql` (which assembles the `Store` implementation from the
//! aggregates' `sql_*` files) so that those files need not import it.

/// Columns of `orders`, in `OrderRow` order.
macro_rules! order_columns {
    () => {
        "id, shop_id, status, version, total_minor, currency, delivery_lat, delivery_lon, \
         distance_m, eta_seconds, estimated_ready_at, estimated_delivery_at, created_at, updated_at, \
         customer_id"
    };
}

/// Binds an order's first 14 `orders` columns (id … updated_at, in `order_columns!` order) to
/// a query (`bind`), or pushes them to a builder's separated list (`push_bind`); both ways of
/// writing an order use it, so their column lists cannot drift apart.
macro_rules! bind_order_row {
    ($query:expr, $order:expr) => {
        $crate::sql_shared::bind_order_row!($query, $order, bind)
    };
    ($query:expr, $order:expr, $bind:ident) => {
        $query
            .$bind($order.id)
            .$bind($order.shop_id)
            .$bind($order.status.as_str())
            .$bind($order.version)
            .$bind($order.total_minor)
            .$bind(&$order.currency)
            .$bind($order.delivery.lat)
            .$bind($order.delivery.lon)
            .$bind($order.distance_m)
            .$bind($order.eta_seconds)
            .$bind($order.estimated_ready_at)
            .$bind($order.estimated_delivery_at)
            .$bind($order.created_at)
            .$bind($order.updated_at)
    };
}

/// Columns of `payments`, in `PaymentRow` order.
macro_rules! payment_columns {
    () => {
        "id, order_id, provider, status, reference, amount_minor, currency, reason, created_at, \
         updated_at"
    };
}

/// Columns of `shops`, in `ShopRow` order.
macro_rules! shop_columns {
    () => {
        "id, name, region, lat, lon, open, created_at, updated_at"
    };
}

/// Columns of `items`, in `ItemRow` order.
macro_rules! item_columns {
    () => {
        "id, sku, name, description, category, price_minor, currency, created_at"
    };
}

/// Columns of `accounts` prefixed with `a.`, in `AccountRow` order.
macro_rules! account_columns {
    () => {
        "a.id, a.email, a.role, a.shop_id, a.created_at"
    };
}

/// Columns of `tickets` prefixed with `t.`, in `TicketRow` order.
macro_rules! ticket_columns {
    () => {
        "t.id, t.order_id, t.shop_id, t.station_id, t.status, t.work_seconds, t.claimed_by, \
         t.created_at, t.claimed_at, t.completed_at"
    };
}

/// Ticket statuses that still count as kitchen work.
macro_rules! open_ticket {
    () => {
        "('queued', 'claimed')"
    };
}

/// Order statuses whose tickets may be claimed.
macro_rules! cookable_order {
    () => {
        "('accepted', 'preparing')"
    };
}

pub(crate) use {
    account_columns, bind_order_row, cookable_order, item_columns, open_ticket, order_columns,
    payment_columns, shop_columns, ticket_columns,
};

/// The audit entry of a newly placed order: what was ordered, for how much, paid how.
pub(crate) fn placed_audit(
    order: &brigade_domain::Order,
    payment: &crate::NewPayment,
) -> crate::AuditEntry {
    crate::AuditEntry::new("order.placed", "order", order.id).after(serde_json::json!({
        "status": order.status,
        "shop_id": order.shop_id,
        "customer_id": order.customer_id,
        "total_minor": order.total_minor,
        "currency": order.currency,
        "lines": order.lines.iter().map(|line| serde_json::json!({
            "item_id": line.item_id,
            "quantity": line.quantity,
            "unit_price_minor": line.unit_price_minor,
        })).collect::<Vec<_>>(),
        "payment_id": payment.id,
        "payment_provider": payment.provider,
    }))
}

//! Placing an order: choose the shop, price the lines, split into tickets, estimate delivery.
//!
//! When the order names no shop, every open shop that can make all of its items is a candidate
//! and the one with the shortest ETA wins (ties: nearer shop). Everything here reads cached
//! data; the store re-checks what matters (shop open, items available, prices) inside the
//! transaction that writes the order, so a stale cache can cost a retry, never a wrong order.

use std::collections::{BTreeMap, HashMap};

use brigade_core::{FieldError, Problem};
use brigade_domain::{
    Actor, EtaInputs, MenuItem, NewOrder, Order, OrderEvent, OrderLine, OrderStatus, Shop, Ticket,
    TicketItem, TicketStatus, estimate,
};
use brigade_store::{IdempotencyKey, NewPayment, Placement, StoreError};
use http::StatusCode;
use uuid::Uuid;

use crate::catalogue_cache;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// An order priced from one shop's menu.
struct Priced {
    lines: Vec<OrderLine>,
    /// Seconds of chef work per station of that shop.
    work_by_station: BTreeMap<Uuid, i64>,
    currency: String,
}

/// A candidate shop that can make the whole order, with its estimate.
struct Candidate {
    shop: Shop,
    priced: Priced,
    prep_seconds: i64,
    delivery_seconds: i64,
    distance_m: f64,
}

/// Builds the placement for a validated order.
pub async fn prepare(
    state: &AppState,
    order: &NewOrder,
    actor: Actor,
    customer_id: Option<Uuid>,
    idempotency: Option<IdempotencyKey>,
) -> ApiResult<Placement> {
    let shops = shops_to_try(state, order).await?;

    let mut candidates = Vec::new();
    let mut first_refusal = None;
    for shop in shops {
        let menu = catalogue_cache::menu(state, shop.id).await?;
        match lines_from_menu(order, &menu) {
            Ok(priced) => {
                let loads: HashMap<Uuid, _> = catalogue_cache::loads(state, shop.id)
                    .await?
                    .into_iter()
                    .map(|load| (load.station_id, load))
                    .collect();
                let distance_m = shop.location.distance_m(&order.delivery);
                let eta = estimate(&EtaInputs {
                    work_by_station: &priced.work_by_station,
                    loads: &loads,
                    distance_m,
                    courier_speed_kmh: state.settings.delivery.courier_speed_kmh,
                    handover_seconds: i64::from(state.settings.delivery.handover_seconds),
                });
                candidates.push(Candidate {
                    shop,
                    priced,
                    prep_seconds: eta.prep_seconds,
                    delivery_seconds: eta.delivery_seconds,
                    distance_m,
                });
            }
            Err(refusal) => {
                first_refusal.get_or_insert(refusal);
            }
        }
    }

    let best = candidates.into_iter().min_by(|a, b| {
        (a.prep_seconds + a.delivery_seconds)
            .cmp(&(b.prep_seconds + b.delivery_seconds))
            .then(a.distance_m.total_cmp(&b.distance_m))
            .then(a.shop.id.cmp(&b.shop.id))
    });
    let Some(best) = best else {
        return Err(no_shop_can_serve(state, order, first_refusal).await);
    };
    Ok(Placement {
        order: build_order(best, order, &actor, customer_id),
        actor,
        idempotency,
        payment: NewPayment {
            id: Uuid::now_v7(),
            provider: state.payments.provider_name().to_owned(),
        },
    })
}

/// The shops that may make `order`: the one it names (refused when unknown or closed), else
/// every open shop.
async fn shops_to_try(state: &AppState, order: &NewOrder) -> ApiResult<Vec<Shop>> {
    let open_shops = catalogue_cache::open_shops(state).await?;
    let shops = match order.shop_id {
        // The cached list of open shops answers the common case without a query.
        Some(shop_id) => match open_shops.into_iter().find(|shop| shop.id == shop_id) {
            Some(shop) => vec![shop],
            None => {
                let shop = state
                    .store
                    .get_shop(shop_id)
                    .await
                    .map_err(|error| match error {
                        StoreError::NotFound(_) => ApiError::from(Problem::invalid_field(
                            "shop_id",
                            "no shop with this id",
                        )),
                        other => other.into(),
                    })?;
                if shop.open {
                    vec![shop]
                } else {
                    return Err(Problem::conflict(
                        "shop-closed",
                        format!("{} is closed and takes no orders", shop.name),
                    )
                    .into());
                }
            }
        },
        None => open_shops,
    };
    Ok(shops)
}

/// Why one shop cannot make an order.
enum Refusal {
    /// A line's item is not on this shop's menu or not available now.
    Unavailable(Vec<FieldError>),
    /// The items are priced in different currencies.
    MixedCurrencies,
}

/// Prices the order from one shop's menu and sums the work per station.
fn lines_from_menu(order: &NewOrder, menu: &[MenuItem]) -> Result<Priced, Refusal> {
    let by_id: HashMap<Uuid, &MenuItem> = menu.iter().map(|item| (item.item_id, item)).collect();
    let mut lines = Vec::with_capacity(order.items.len());
    let mut work_by_station = BTreeMap::new();
    let mut missing = Vec::new();
    let mut currency: Option<&str> = None;
    for (index, wanted) in order.items.iter().enumerate() {
        let Some(item) = by_id.get(&wanted.item_id).filter(|item| item.available) else {
            missing.push(FieldError::new(
                format!("items[{index}].item_id"),
                "is not available at this shop right now",
            ));
            continue;
        };
        if *currency.get_or_insert(&item.currency) != item.currency {
            return Err(Refusal::MixedCurrencies);
        }
        *work_by_station.entry(item.station_id).or_insert(0) += item.prep_seconds * wanted.quantity;
        lines.push(OrderLine {
            item_id: item.item_id,
            name: item.name.clone(),
            quantity: wanted.quantity,
            unit_price_minor: item.price_minor,
            station_id: item.station_id,
        });
    }
    if !missing.is_empty() {
        return Err(Refusal::Unavailable(missing));
    }
    Ok(Priced {
        lines,
        work_by_station,
        currency: currency.unwrap_or_default().to_owned(),
    })
}

/// The answer when no shop can take the order: 422 naming items that do not exist at all,
/// else 409 naming what the (named or nearest) shop lacks.
async fn no_shop_can_serve(
    state: &AppState,
    order: &NewOrder,
    refusal: Option<Refusal>,
) -> ApiError {
    let mut unknown = Vec::new();
    for (index, line) in order.items.iter().enumerate() {
        match state.store.get_item(line.item_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => unknown.push(FieldError::new(
                format!("items[{index}].item_id"),
                "no item with this id",
            )),
            Err(other) => return other.into(),
        }
    }
    if !unknown.is_empty() {
        return Problem::invalid(StatusCode::UNPROCESSABLE_ENTITY, unknown).into();
    }
    match refusal {
        Some(Refusal::MixedCurrencies) => Problem::invalid_field(
            "items",
            "all items of one order must have the same currency",
        )
        .into(),
        Some(Refusal::Unavailable(errors)) if order.shop_id.is_some() => Problem {
            errors,
            ..Problem::conflict(
                "item-unavailable",
                "the shop cannot make every item of this order right now",
            )
        }
        .into(),
        _ => Problem::conflict(
            "no-shop-available",
            "no open shop can make every item of this order right now",
        )
        .into(),
    }
}

fn build_order(
    best: Candidate,
    request: &NewOrder,
    actor: &Actor,
    customer_id: Option<Uuid>,
) -> Order {
    let Candidate {
        shop,
        priced,
        prep_seconds,
        delivery_seconds,
        distance_m,
    } = best;
    let now = brigade_domain::now();
    let id = Uuid::now_v7();
    let tickets = priced
        .work_by_station
        .iter()
        .map(|(station_id, work_seconds)| Ticket {
            id: Uuid::now_v7(),
            order_id: id,
            shop_id: shop.id,
            station_id: *station_id,
            // Held until the payment is authorised: the kitchen does not see unpaid orders.
            status: TicketStatus::Held,
            work_seconds: *work_seconds,
            items: priced
                .lines
                .iter()
                .filter(|line| line.station_id == *station_id)
                .map(|line| TicketItem {
                    name: line.name.clone(),
                    quantity: line.quantity,
                })
                .collect(),
            claimed_by: None,
            created_at: now,
            claimed_at: None,
            completed_at: None,
        })
        .collect();
    let total_minor = priced
        .lines
        .iter()
        .map(|line| line.unit_price_minor * line.quantity)
        .sum();
    let total_seconds = prep_seconds + delivery_seconds;
    Order {
        id,
        shop_id: shop.id,
        customer_id,
        status: OrderStatus::AwaitingPayment,
        version: 1,
        lines: priced.lines,
        total_minor,
        currency: priced.currency,
        delivery: request.delivery,
        distance_m: distance_m.round() as i64,
        eta_seconds: total_seconds,
        estimated_ready_at: now + chrono::Duration::seconds(prep_seconds),
        estimated_delivery_at: now + chrono::Duration::seconds(total_seconds),
        tickets,
        history: vec![OrderEvent {
            status: OrderStatus::AwaitingPayment,
            at: now,
            actor: actor.clone(),
        }],
        created_at: now,
        updated_at: now,
    }
}

//! The ordering page (`/`): shops and the chosen shop's menu rendered on the server, cart,
//! log-in and checkout in `ordering.js`; and the live order page (`/orders/{id}`).

use axum::extract::State;
use brigade_domain::{MenuItem, Shop};
use brigade_store::ShopFilter;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{self, Section};
use crate::catalogue_cache;
use crate::error::ApiResult;
use crate::extract::{Path, Query};
use crate::state::AppState;

/// Query of `GET /`: the shop whose menu to show (default: the first open shop).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IndexQuery {
    shop: Option<Uuid>,
}

/// The statuses an order moves through on its way to the door, in order; the timeline shows
/// them all and marks those reached.
const TIMELINE: &[(&str, &str)] = &[
    ("placed", "Placed"),
    ("accepted", "Accepted by the shop"),
    ("preparing", "In the kitchen"),
    ("ready", "Ready for the courier"),
    ("out_for_delivery", "On its way"),
    ("delivered", "Delivered"),
];

/// `GET /`: pick a shop, browse its menu, fill the cart, log in and order.
pub(super) async fn index(
    State(state): State<AppState>,
    Query(query): Query<IndexQuery>,
) -> ApiResult<Markup> {
    let shops = state.store.list_shops(&ShopFilter::default()).await?;
    let chosen = match query.shop {
        Some(id) => Some(state.store.get_shop(id).await?),
        None => shops
            .iter()
            .find(|shop| shop.open)
            .or(shops.first())
            .cloned(),
    };
    let menu: Vec<MenuItem> = match &chosen {
        Some(shop) => {
            let json = catalogue_cache::menu_json(&state, shop.id).await?;
            serde_json::from_slice(&json).unwrap_or_default()
        }
        None => Vec::new(),
    };
    Ok(layout::page(
        "Order food",
        Section::Order,
        "ordering.js",
        render_index(&shops, chosen.as_ref(), &menu),
    ))
}

/// The body of the ordering page; separate from the handler so it reads as a template.
fn render_index(shops: &[Shop], chosen: Option<&Shop>, menu: &[MenuItem]) -> Markup {
    html! {
        (shop_picker(shops, chosen))
        @if let Some(shop) = chosen {
            (menu_section(shop, menu))
        }
        (cart_section())
        (layout::login_panel(true))
    }
}

/// The shop chooser, and a notice when the chosen shop is closed.
fn shop_picker(shops: &[Shop], chosen: Option<&Shop>) -> Markup {
    html! {
        section aria-labelledby="shop-title" {
            h2 #shop-title { "Shop" }
            @if shops.is_empty() {
                p { "No shop is open for orders yet." }
            } @else {
                form #shop-form method="get" action="/" {
                    div.field {
                        label for="shop-select" { "Order from" }
                        select #shop-select name="shop" {
                            @for shop in shops {
                                option value=(shop.id) selected[chosen.is_some_and(|c| c.id == shop.id)] {
                                    (shop.name) " (" (shop.region) ")" @if !shop.open { " — closed" }
                                }
                            }
                        }
                    }
                    button type="submit" { "Show menu" }
                }
            }
            @if let Some(shop) = chosen {
                @if !shop.open {
                    p.notice #shop-closed { (shop.name) " is closed right now. Pick another shop, or let brigade choose one below." }
                }
            }
        }
    }
}

/// The chosen shop's menu, each available item with its "Add" button.
fn menu_section(shop: &Shop, menu: &[MenuItem]) -> Markup {
    html! {
        section #menu aria-labelledby="menu-title" data-shop-id=(shop.id) data-shop-open=(shop.open) {
            h2 #menu-title { "Menu of " (shop.name) }
            @if menu.is_empty() {
                p { "This shop has nothing on its menu yet." }
            }
            ul.menu {
                @for item in menu {
                    li.menu-item {
                        div {
                            h3 { (item.name) }
                            p.description { (item.description) }
                            p.price { (money(item.price_minor, &item.currency)) }
                        }
                        @if item.available {
                            button.add type="button"
                                data-item-id=(item.item_id)
                                data-name=(item.name)
                                data-price=(item.price_minor)
                                data-currency=(item.currency)
                                aria-label={ "Add " (item.name) " to the cart" } { "Add" }
                        } @else {
                            button.add type="button" disabled aria-label={ (item.name) " is sold out" } { "Sold out" }
                        }
                    }
                }
            }
        }
    }
}

/// The cart, the delivery address and the order button (filled in by `ordering.js`).
fn cart_section() -> Markup {
    html! {
        section #cart aria-labelledby="cart-title" {
            h2 #cart-title { "Your cart" }
            p #cart-empty { "The cart is empty." }
            ul #cart-lines {}
            p { "Total: " strong #cart-total { "—" } }
            fieldset {
                legend { "Deliver to" }
                div.row {
                    div.field {
                        label for="delivery-lat" { "Latitude" }
                        input #delivery-lat type="number" step="0.0001" min="-90" max="90" value="52.5200" required;
                    }
                    div.field {
                        label for="delivery-lon" { "Longitude" }
                        input #delivery-lon type="number" step="0.0001" min="-180" max="180" value="13.4050" required;
                    }
                }
                button #locate type="button" { "Use my location" }
            }
            div.field.check {
                input #auto-shop type="checkbox";
                label for="auto-shop" { "Let brigade pick the shop that delivers soonest" }
            }
            button #place-order type="button" disabled { "Place order" }
        }
    }
}

/// `GET /orders/{id}`: the order's status timeline and ETA, refreshed by `order.js`.
pub(super) async fn order_page(Path(order_id): Path<Uuid>) -> Markup {
    layout::page(
        "Your order",
        Section::Order,
        "order.js",
        render_order(order_id),
    )
}

fn render_order(order_id: Uuid) -> Markup {
    html! {
        section #order data-order-id=(order_id) aria-labelledby="order-title" {
            h2 #order-title { "Order " code { (order_id) } }
            p { "From: " strong #order-shop { "—" } }
            p { "Status: " strong #order-status aria-live="polite" { "loading…" } }
            p { "Expected at your door: " strong #order-eta { "—" } }
            p { "Total: " span #order-total { "—" } }
            ol #timeline.timeline aria-label="Progress" {
                @for (status, label) in TIMELINE {
                    li data-status=(status) { (label) }
                }
            }
            ul #order-lines {}
            p.small #order-updated {}
        }
        (layout::login_panel(false))
    }
}

/// Minor units as a price, e.g. `1250, "EUR"` → `12.50 EUR`.
pub(super) fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", minor / 100, minor % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money(1250, "EUR"), "12.50 EUR");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(-199, "EUR"), "-1.99 EUR");
    }
}

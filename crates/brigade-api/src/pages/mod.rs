//! Web pages for the people who order, cook and deliver: server-rendered HTML (maud) plus small
//! dependency-free scripts that call the JSON API with the caller's token.
//!
//! Served by every replica, so through the balancer at `/`. Everything a page needs (CSS,
//! scripts) is embedded in the binary: the pages work offline and need no front-end server.

mod assets;
mod courier;
mod kitchen;
mod layout;
mod ordering;

use axum::Router;
use axum::routing::get;

use crate::AppState;

/// The page routes and their assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(ordering::index))
        .route("/orders/{order_id}", get(ordering::order_page))
        .route("/kitchen", get(kitchen::page))
        .route("/courier", get(courier::page))
        .route("/assets/{name}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
}

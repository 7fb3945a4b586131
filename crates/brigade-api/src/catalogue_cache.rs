//! Cached reads of what changes rarely (menus, the list of open shops) and what may be a
//! second stale (station load for ETAs). Each has one key builder, one loader and one
//! invalidation, so writers and readers cannot disagree on a key.

use std::time::Duration;

use brigade_domain::{MenuItem, Shop, StationLoad};
use brigade_store::{ShopFilter, StoreResult};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::state::AppState;

fn menu_key(shop_id: Uuid) -> String {
    format!("menu:{shop_id}")
}

fn load_key(shop_id: Uuid) -> String {
    format!("load:{shop_id}")
}

const OPEN_SHOPS_KEY: &str = "shops:open";

/// A shop's menu as JSON bytes, ready to send. The shop must exist (callers check).
pub async fn menu_json(state: &AppState, shop_id: Uuid) -> StoreResult<Bytes> {
    cached(state, &menu_key(shop_id), menu_ttl(state), || {
        state.store.menu(shop_id)
    })
    .await
}

/// A shop's menu, parsed.
pub async fn menu(state: &AppState, shop_id: Uuid) -> StoreResult<Vec<MenuItem>> {
    parse_or_reload(state, menu_json(state, shop_id).await?, || {
        state.store.menu(shop_id)
    })
    .await
}

/// Forgets a shop's menu after availability, stations or items changed.
pub async fn forget_menu(state: &AppState, shop_id: Uuid) {
    state.cache.delete(&menu_key(shop_id)).await;
}

/// Work queued at each station of a shop.
pub async fn loads(state: &AppState, shop_id: Uuid) -> StoreResult<Vec<StationLoad>> {
    let ttl = Duration::from_millis(state.settings.cache.load_ttl_ms);
    let bytes = cached(state, &load_key(shop_id), ttl, || {
        state.store.station_loads(shop_id)
    })
    .await?;
    parse_or_reload(state, bytes, || state.store.station_loads(shop_id)).await
}

/// Forgets a shop's load after tickets were added, finished or cancelled.
pub async fn forget_load(state: &AppState, shop_id: Uuid) {
    state.cache.delete(&load_key(shop_id)).await;
}

/// Every open shop: the candidates when an order names no shop.
pub async fn open_shops(state: &AppState) -> StoreResult<Vec<Shop>> {
    let filter = ShopFilter {
        region: None,
        open: Some(true),
    };
    let ttl = Duration::from_millis(state.settings.cache.load_ttl_ms);
    let bytes = cached(state, OPEN_SHOPS_KEY, ttl, || {
        state.store.list_shops(&filter)
    })
    .await?;
    parse_or_reload(state, bytes, || state.store.list_shops(&filter)).await
}

/// Forgets the open-shop list after a shop was created, opened or closed.
pub async fn forget_open_shops(state: &AppState) {
    state.cache.delete(OPEN_SHOPS_KEY).await;
}

fn menu_ttl(state: &AppState) -> Duration {
    Duration::from_millis(state.settings.cache.menu_ttl_ms)
}

async fn cached<T, F, Fut>(
    state: &AppState,
    key: &str,
    ttl: Duration,
    load: F,
) -> StoreResult<Bytes>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    if let Some(bytes) = state.cache.get(key).await {
        return Ok(bytes);
    }
    let value = load().await?;
    let bytes = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
    state.cache.set(key, bytes.clone(), ttl).await;
    Ok(bytes)
}

/// Parses cached bytes; an entry written by another brigade version that no longer parses is
/// treated as a miss rather than an error.
async fn parse_or_reload<T, F, Fut>(state: &AppState, bytes: Bytes, load: F) -> StoreResult<T>
where
    T: DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok(value),
        Err(error) => {
            tracing::warn!(%error, cache = state.cache.kind(), "unreadable cache entry; reloading");
            load().await
        }
    }
}

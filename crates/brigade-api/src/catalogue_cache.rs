//! Cached reads of what changes rarely (menus, the list of open shops) and what may be a
//! second stale (station load for ETAs). Each has one key builder, one loader and one
//! invalidation, so writers and readers cannot disagree on a key.
//!
//! Entries are filled from the primary, never from a standby ([`ReadScope::Primary`]): an
//! entry is shared by every client for its lifetime, so one filled from a standby that had
//! not yet replayed a change would hide that change from the client that made it, whatever
//! its `Brigade-Read-After` fence says. The standby takes the reads the cache does not hold.

use std::collections::BTreeMap;
use std::time::Duration;

use brigade_core::clock::now_ms;
use brigade_domain::{MenuItem, Shop, StationLoad};
use brigade_store::{ShopFilter, StoreResult};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use brigade_store::replica::{ReadScope, with_read_scope};

use crate::state::AppState;

fn menu_key(shop_id: Uuid) -> String {
    shop_key("menu:", shop_id)
}

fn load_key(shop_id: Uuid) -> String {
    shop_key("load:", shop_id)
}

/// `prefix` and the shop's hyphenated id, without the formatting machinery (every cached read
/// builds one).
fn shop_key(prefix: &str, shop_id: Uuid) -> String {
    let mut buffer = Uuid::encode_buffer();
    let id = shop_id.hyphenated().encode_lower(&mut buffer);
    let mut key = String::with_capacity(prefix.len() + id.len());
    key.push_str(prefix);
    key.push_str(id);
    key
}

const OPEN_SHOPS_KEY: &str = "shops:open";

/// A shop's menu as JSON bytes, ready to send. The shop must exist (callers check).
pub async fn menu_json(state: &AppState, shop_id: Uuid) -> StoreResult<Bytes> {
    cached(
        state,
        &menu_key(shop_id),
        "GET menu",
        menu_ttl(state),
        || state.store.menu(shop_id),
    )
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

/// Work queued at each station of a shop, as of at most `cache.load_ttl_ms` ago, plus what
/// this process added since (see [`add_load`]).
pub async fn loads(state: &AppState, shop_id: Uuid) -> StoreResult<Vec<StationLoad>> {
    let key = load_key(shop_id);
    if let Some(snapshot) = cache_get(state, &key, "GET load").await
        && let Ok(snapshot) = serde_json::from_slice::<LoadSnapshot>(&snapshot)
    {
        return Ok(snapshot.loads);
    }
    let loads = state.store.station_loads(shop_id).await?;
    let snapshot = LoadSnapshot {
        taken_at_ms: now_ms(),
        loads,
    };
    let bytes = Bytes::from(serde_json::to_vec(&snapshot).unwrap_or_default());
    state.cache.set(&key, bytes, load_ttl(state)).await;
    Ok(snapshot.loads)
}

/// Adds a placed order's work to the cached load of its shop, keeping the snapshot's deadline.
///
/// Re-reading the load after every order would cost a query that grows with the queue; instead
/// the snapshot is adjusted, and re-read from the database when its TTL runs out. Two replicas
/// adjusting one Redis entry at the same moment may lose one adjustment, for at most the TTL.
pub async fn add_load(state: &AppState, shop_id: Uuid, work_by_station: &BTreeMap<Uuid, i64>) {
    let key = load_key(shop_id);
    let Some(bytes) = cache_get(state, &key, "GET load").await else {
        return;
    };
    let Ok(mut snapshot) = serde_json::from_slice::<LoadSnapshot>(&bytes) else {
        state.cache.delete(&key).await;
        return;
    };
    let age = Duration::from_millis(u64::try_from(now_ms() - snapshot.taken_at_ms).unwrap_or(0));
    let Some(remaining) = load_ttl(state)
        .checked_sub(age)
        .filter(|left| !left.is_zero())
    else {
        return;
    };
    for load in &mut snapshot.loads {
        if let Some(work) = work_by_station.get(&load.station_id) {
            load.queued_work_seconds += work;
        }
    }
    let bytes = Bytes::from(serde_json::to_vec(&snapshot).unwrap_or_default());
    state.cache.set(&key, bytes, remaining).await;
}

/// Forgets a shop's load after tickets were finished or cancelled.
pub async fn forget_load(state: &AppState, shop_id: Uuid) {
    state.cache.delete(&load_key(shop_id)).await;
}

/// A cached load reading and when it was taken.
#[derive(Serialize, serde::Deserialize)]
struct LoadSnapshot {
    taken_at_ms: i64,
    loads: Vec<StationLoad>,
}

fn load_ttl(state: &AppState) -> Duration {
    Duration::from_millis(state.settings.cache.load_ttl_ms)
}

/// Every open shop: the candidates when an order names no shop.
pub async fn open_shops(state: &AppState) -> StoreResult<Vec<Shop>> {
    let filter = ShopFilter {
        region: None,
        open: Some(true),
    };
    let ttl = Duration::from_millis(state.settings.cache.load_ttl_ms);
    let bytes = cached(state, OPEN_SHOPS_KEY, "GET shops:open", ttl, || {
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
    summary: &'static str,
    ttl: Duration,
    load: F,
) -> StoreResult<Bytes>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    if let Some(bytes) = cache_get(state, key, summary).await {
        return Ok(bytes);
    }
    let value = with_read_scope(ReadScope::Primary, load()).await?;
    let bytes = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
    state.cache.set(key, bytes.clone(), ttl).await;
    Ok(bytes)
}

/// Reads `key` from the cache and, when traces are exported, says in the trace whether the
/// cache had it (`brigade.cache.hit`): a trace then shows which reads the cache answered and
/// which went on to the database. Nothing is made when export is off (as the store's spans).
///
/// A cache across the network (Redis) gets a client span named `summary` (`GET menu`), as any
/// other remote call. The in-process cache answers in well under a microsecond, and a span of
/// its own cost some fifty times that — a third of a traced cached read — so its answer is an
/// attribute of the request's server span instead (the last such read of a request is the one
/// it shows).
async fn cache_get(state: &AppState, key: &str, summary: &'static str) -> Option<Bytes> {
    use tracing::Instrument as _;
    if !brigade_core::traces::recording() {
        return state.cache.get(key).await;
    }
    if state.cache.in_process() {
        let found = state.cache.get(key).await;
        brigade_core::traces::note_cache_answer(found.is_some());
        return found;
    }
    let span = tracing::info_span!(
        "cache",
        otel.name = summary,
        otel.kind = "client",
        db.system.name = state.cache.kind(),
        db.operation.name = "GET",
        db.query.summary = summary,
        brigade.cache.hit = tracing::field::Empty,
    );
    let found = state.cache.get(key).instrument(span.clone()).await;
    span.record("brigade.cache.hit", found.is_some());
    found
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
            with_read_scope(ReadScope::Primary, load()).await
        }
    }
}

/// What [`warm`] loaded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Warmed {
    /// Menus (one per shop, open or closed).
    pub menus: usize,
    /// Shops in the open-shop list.
    pub open_shops: usize,
    /// Kitchen loads (one per open shop).
    pub loads: usize,
}

/// Loads every menu, the open-shop list and every open shop's kitchen load from the store and
/// writes them to the cache with their usual lifetimes, replacing what is there: the entries
/// the next orders will read are fresh rather than missing.
pub async fn warm(state: &AppState) -> StoreResult<Warmed> {
    with_read_scope(ReadScope::Primary, warm_from_primary(state)).await
}

async fn warm_from_primary(state: &AppState) -> StoreResult<Warmed> {
    let mut warmed = Warmed::default();
    let filter = ShopFilter {
        region: None,
        open: Some(true),
    };
    let open = state.store.list_shops(&filter).await?;
    put(state, OPEN_SHOPS_KEY, &open, load_ttl(state)).await;
    warmed.open_shops = open.len();
    for shop in state.store.list_shops(&ShopFilter::default()).await? {
        let menu = state.store.menu(shop.id).await?;
        put(state, &menu_key(shop.id), &menu, menu_ttl(state)).await;
        warmed.menus += 1;
    }
    for shop in &open {
        let snapshot = LoadSnapshot {
            taken_at_ms: now_ms(),
            loads: state.store.station_loads(shop.id).await?,
        };
        put(state, &load_key(shop.id), &snapshot, load_ttl(state)).await;
        warmed.loads += 1;
    }
    Ok(warmed)
}

/// Writes one value as the JSON its reader expects.
async fn put<T: Serialize>(state: &AppState, key: &str, value: &T, ttl: Duration) {
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    state.cache.set(key, bytes, ttl).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_shop_as_its_hyphenated_id() {
        let shop = Uuid::now_v7();
        assert_eq!(menu_key(shop), format!("menu:{shop}"));
        assert_eq!(load_key(shop), format!("load:{shop}"));
    }
}

//! Shops, their stations, menus and kitchen load.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use brigade_domain::MenuItem;
use brigade_domain::{Availability, NewShop, NewStation, Shop, ShopPatch, Station, StationLoad};
use brigade_store::ShopFilter;
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::caller::Admin;
use crate::catalogue_cache;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::routes::created;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_shops, create_shop))
        .routes(routes!(get_shop, update_shop))
        .routes(routes!(list_stations, create_station))
        .routes(routes!(get_menu))
        .routes(routes!(set_availability))
        .routes(routes!(get_load))
}

/// Query of `GET /shops`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShopQuery {
    /// Only shops of this region.
    region: Option<String>,
    /// Only open (`true`) or closed (`false`) shops.
    open: Option<bool>,
}

/// Lists shops by name.
///
/// Roles: anyone, without a token.
#[utoipa::path(get, path = "/api/v1/shops", tag = "shops", params(ShopQuery),
    responses(
        (status = 200, description = "The shops matching the filters", body = Vec<Shop>),
    ))]
async fn list_shops(
    State(state): State<AppState>,
    Query(query): Query<ShopQuery>,
) -> ApiResult<axum::Json<Vec<Shop>>> {
    let filter = ShopFilter {
        region: query.region,
        open: query.open,
    };
    Ok(axum::Json(state.store.list_shops(&filter).await?))
}

/// Opens a new shop.
///
/// Roles: admin.
#[utoipa::path(post, path = "/api/v1/shops", tag = "shops", security(("bearer" = [])), request_body = NewShop,
    responses(
        (status = 201, description = "The shop was created", body = Shop, headers(("Location" = String, description = "URL of the new shop"))),
        (status = 403, description = "Admins only"),
        (status = 409, description = "A shop with this name exists"),
    ))]
async fn create_shop(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(shop): Json<NewShop>,
) -> ApiResult<Response> {
    let shop = state
        .store
        .create_shop(&shop.validate()?, &admin.actor())
        .await?;
    catalogue_cache::forget_open_shops(&state).await;
    Ok(created(&format!("/api/v1/shops/{}", shop.id), &shop))
}

/// One shop.
#[utoipa::path(get, path = "/api/v1/shops/{shop_id}", tag = "shops",
    params(("shop_id" = Uuid, Path, description = "Shop id")),
    responses(
        (status = 200, description = "The shop", body = Shop),
        (status = 404, description = "No shop with this id"),
    ))]
async fn get_shop(
    State(state): State<AppState>,
    Path(shop_id): Path<Uuid>,
) -> ApiResult<axum::Json<Shop>> {
    Ok(axum::Json(state.store.get_shop(shop_id).await?))
}

/// Renames, moves, opens or closes a shop.
///
/// Roles: admin.
#[utoipa::path(patch, path = "/api/v1/shops/{shop_id}", tag = "shops", security(("bearer" = [])), request_body = ShopPatch,
    params(("shop_id" = Uuid, Path, description = "Shop id")),
    responses(
        (status = 200, description = "The shop as changed", body = Shop),
        (status = 403, description = "Admins only"),
        (status = 404, description = "No shop with this id"),
        (status = 409, description = "A shop with this name exists"),
    ))]
async fn update_shop(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(shop_id): Path<Uuid>,
    Json(patch): Json<ShopPatch>,
) -> ApiResult<axum::Json<Shop>> {
    let shop = state
        .store
        .update_shop(shop_id, &patch.validate()?, &admin.actor())
        .await?;
    catalogue_cache::forget_open_shops(&state).await;
    Ok(axum::Json(shop))
}

/// A shop's stations.
#[utoipa::path(get, path = "/api/v1/shops/{shop_id}/stations", tag = "shops",
    params(("shop_id" = Uuid, Path, description = "Shop id")),
    responses(
        (status = 200, description = "The shop's stations", body = Vec<Station>),
        (status = 404, description = "No shop with this id"),
    ))]
async fn list_stations(
    State(state): State<AppState>,
    Path(shop_id): Path<Uuid>,
) -> ApiResult<axum::Json<Vec<Station>>> {
    state.store.get_shop(shop_id).await?;
    Ok(axum::Json(state.store.list_stations(shop_id).await?))
}

/// Adds a station (a group of chefs cooking some categories) to a shop.
///
/// Roles: admin.
#[utoipa::path(post, path = "/api/v1/shops/{shop_id}/stations", tag = "shops", security(("bearer" = [])), request_body = NewStation,
    params(("shop_id" = Uuid, Path, description = "Shop id")),
    responses(
        (status = 201, description = "The station was created", body = Station,
            headers(("Location" = String, description = "URL of the shop's stations"))),
        (status = 403, description = "Admins only"),
        (status = 404, description = "No shop with this id"),
        (status = 409, description = "Name or category taken"),
    ))]
async fn create_station(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(shop_id): Path<Uuid>,
    Json(station): Json<NewStation>,
) -> ApiResult<Response> {
    let station = state
        .store
        .create_station(shop_id, &station.validate()?, &admin.actor())
        .await?;
    catalogue_cache::forget_menu(&state, shop_id).await;
    Ok(created(
        &format!("/api/v1/shops/{shop_id}/stations"),
        &station,
    ))
}

/// The shop's menu: items it offers, whether each is available now, and the station cooking it.
/// Cached (Redis or in memory); changes through this API invalidate it at once.
#[utoipa::path(get, path = "/api/v1/shops/{shop_id}/menu", tag = "shops",
    params(("shop_id" = Uuid, Path, description = "Shop id")),
    responses(
        (status = 200, description = "The shop's menu", body = Vec<MenuItem>),
        (status = 404, description = "No shop with this id"),
    ))]
async fn get_menu(State(state): State<AppState>, Path(shop_id): Path<Uuid>) -> ApiResult<Response> {
    let menu = catalogue_cache::menu_json(&state, shop_id).await?;
    if menu.as_ref() == b"[]" {
        // An empty menu may mean "no such shop"; only then is the extra query paid.
        state.store.get_shop(shop_id).await?;
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        menu,
    )
        .into_response())
}

/// Puts an item on the shop's menu, or marks it (un)available there.
///
/// Roles: admin.
#[utoipa::path(put, path = "/api/v1/shops/{shop_id}/items/{item_id}", tag = "shops", security(("bearer" = [])), request_body = Availability,
    params(("shop_id" = Uuid, Path, description = "Shop id"), ("item_id" = Uuid, Path, description = "Item id")),
    responses(
        (status = 204, description = "Availability set"),
        (status = 403, description = "Admins only"),
        (status = 404, description = "No shop or no item with this id"),
    ))]
async fn set_availability(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path((shop_id, item_id)): Path<(Uuid, Uuid)>,
    Json(availability): Json<Availability>,
) -> ApiResult<StatusCode> {
    state
        .store
        .set_availability(shop_id, item_id, availability.available, &admin.actor())
        .await?;
    catalogue_cache::forget_menu(&state, shop_id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Kitchen load of one station.
#[derive(Debug, Serialize, ToSchema)]
pub struct StationLoadDoc {
    /// The station.
    station_id: Uuid,
    /// Chefs working in parallel.
    capacity: i64,
    /// Seconds of work on open tickets.
    queued_work_seconds: i64,
    /// How long a new ticket waits before a chef starts it, seconds.
    wait_seconds: i64,
}

/// Work waiting at each station of the shop: what its delivery estimates are made of. Read at
/// most `cache.load_ttl_ms` ago, plus the orders this replica placed since.
#[utoipa::path(get, path = "/api/v1/shops/{shop_id}/load", tag = "shops",
    params(("shop_id" = Uuid, Path, description = "Shop id")),
    responses(
        (status = 200, description = "Load per station", body = Vec<StationLoadDoc>),
        (status = 404, description = "No shop with this id"),
    ))]
async fn get_load(
    State(state): State<AppState>,
    Path(shop_id): Path<Uuid>,
) -> ApiResult<axum::Json<Vec<StationLoadDoc>>> {
    state.store.get_shop(shop_id).await?;
    let loads: Vec<StationLoad> = catalogue_cache::loads(&state, shop_id).await?;
    Ok(axum::Json(
        loads
            .into_iter()
            .map(|load| StationLoadDoc {
                station_id: load.station_id,
                capacity: load.capacity,
                queued_work_seconds: load.queued_work_seconds,
                wait_seconds: (load.queued_work_seconds + load.capacity.max(1) - 1)
                    / load.capacity.max(1),
            })
            .collect(),
    ))
}

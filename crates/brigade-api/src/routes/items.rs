//! The catalogue.

use axum::extract::State;
use axum::response::Response;
use brigade_domain::{Item, NewItem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::caller::Admin;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::routes::created;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_items, create_item))
        .routes(routes!(get_item))
}

/// The whole catalogue, by category and name.
#[utoipa::path(get, path = "/api/v1/items", tag = "catalogue", responses((status = 200, description = "Every item of the catalogue", body = Vec<Item>)))]
async fn list_items(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<Item>>> {
    Ok(axum::Json(state.store.list_items().await?))
}

/// Adds an item to the catalogue. Put it on shop menus with `PUT /shops/{id}/items/{item_id}`.
///
/// Roles: admin.
#[utoipa::path(post, path = "/api/v1/items", tag = "catalogue", security(("bearer" = [])), request_body = NewItem,
    responses(
        (status = 201, description = "The item was created", body = Item,
            headers(("Location" = String, description = "URL of the item"))),
        (status = 403, description = "Admins only"),
        (status = 409, description = "SKU taken"),
    ))]
async fn create_item(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(item): Json<NewItem>,
) -> ApiResult<Response> {
    let item = state
        .store
        .create_item(&item.validate()?, &admin.actor())
        .await?;
    Ok(created(&format!("/api/v1/items/{}", item.id), &item))
}

/// One item.
#[utoipa::path(get, path = "/api/v1/items/{item_id}", tag = "catalogue",
    params(("item_id" = Uuid, Path, description = "Item id")),
    responses(
        (status = 200, description = "The item", body = Item),
        (status = 404, description = "No item with this id"),
    ))]
async fn get_item(
    State(state): State<AppState>,
    Path(item_id): Path<Uuid>,
) -> ApiResult<axum::Json<Item>> {
    Ok(axum::Json(state.store.get_item(item_id).await?))
}

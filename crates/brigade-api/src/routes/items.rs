//! The catalogue.

use axum::extract::State;
use axum::response::Response;
use brigade_core::Problem;
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
#[utoipa::path(get, path = "/items", tag = "catalogue", responses((status = 200, body = Vec<Item>)))]
async fn list_items(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<Item>>> {
    Ok(axum::Json(state.store.list_items().await?))
}

/// Adds an item to the catalogue. Put it on shop menus with `PUT /shops/{id}/items/{item_id}`.
///
/// Roles: admin.
#[utoipa::path(post, path = "/items", tag = "catalogue", security(("bearer" = [])), request_body = NewItem,
    responses(
        (status = 201, body = Item),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "SKU taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
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
#[utoipa::path(get, path = "/items/{item_id}", tag = "catalogue",
    params(("item_id" = Uuid, Path, description = "Item id")),
    responses(
        (status = 200, body = Item),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_item(
    State(state): State<AppState>,
    Path(item_id): Path<Uuid>,
) -> ApiResult<axum::Json<Item>> {
    Ok(axum::Json(state.store.get_item(item_id).await?))
}

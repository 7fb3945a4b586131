//! The kitchen: station queues, claiming and completing tickets. Served under
//! `/api/v1/kitchen` so a balancer can route kitchen traffic to its own pool.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use brigade_domain::{QueuedTicket, Ticket};
use http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::caller::Caller;
use crate::error::ApiResult;
use crate::extract::Path;
use crate::state::AppState;
use crate::{catalogue_cache, metrics as names};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(station_queue))
        .routes(routes!(claim_next))
        .routes(routes!(claim_ticket))
        .routes(routes!(complete_ticket))
}

/// A station's open tickets, oldest first: the order chefs must cook them in.
///
/// Roles: staff of the station's shop (staff of other shops get 404), admin.
#[utoipa::path(get, security(("bearer" = [])), path = "/api/v1/kitchen/stations/{station_id}/tickets", tag = "kitchen",
    params(("station_id" = Uuid, Path, description = "Station id")),
    responses(
        (status = 200, description = "The station's open tickets, in cooking order", body = Vec<QueuedTicket>),
        (status = 403, description = "Staff and admins only"),
        (status = 404, description = "No such station, or it belongs to another shop than the caller's"),
    ))]
async fn station_queue(
    State(state): State<AppState>,
    caller: Caller,
    Path(station_id): Path<Uuid>,
) -> ApiResult<axum::Json<Vec<QueuedTicket>>> {
    caller.kitchen_of(state.store.shop_of_station(station_id).await?)?;
    Ok(axum::Json(state.store.station_queue(station_id).await?))
}

/// Claims the oldest claimable ticket of the station. 204 when there is none.
///
/// Roles: staff of the station's shop, admin.
#[utoipa::path(post, security(("bearer" = [])), path = "/api/v1/kitchen/stations/{station_id}/claim", tag = "kitchen",
    params(("station_id" = Uuid, Path, description = "Station id")),
    responses(
        (status = 200, description = "The ticket now claimed by the caller", body = Ticket),
        (status = 204, description = "Nothing to claim"),
        (status = 403, description = "Staff and admins only"),
        (status = 404, description = "No such station, or it belongs to another shop than the caller's"),
        (status = 409, description = "Another cook claimed the ticket first"),
    ))]
async fn claim_next(
    State(state): State<AppState>,
    caller: Caller,
    Path(station_id): Path<Uuid>,
) -> ApiResult<Response> {
    caller.kitchen_of(state.store.shop_of_station(station_id).await?)?;
    Ok(
        match state.store.claim_next(station_id, &caller.actor()).await? {
            Some(ticket) => axum::Json(ticket).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

/// Claims one ticket. It must be the oldest claimable ticket of its station (FIFO); when two
/// chefs claim the same ticket at once, exactly one succeeds and the other gets 409.
///
/// Roles: staff of the ticket's shop, admin.
#[utoipa::path(post, security(("bearer" = [])), path = "/api/v1/kitchen/tickets/{ticket_id}/claim", tag = "kitchen",
    params(("ticket_id" = Uuid, Path, description = "Ticket id")),
    responses(
        (status = 200, description = "The ticket now claimed by the caller", body = Ticket),
        (status = 403, description = "Staff and admins only"),
        (status = 404, description = "No such ticket, or it belongs to another shop than the caller's"),
        (status = 409, description = "Taken, not next in line, or the order is not accepted"),
    ))]
async fn claim_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket_id): Path<Uuid>,
) -> ApiResult<axum::Json<Ticket>> {
    caller.kitchen_of(state.store.shop_of_ticket(ticket_id).await?)?;
    Ok(axum::Json(
        state.store.claim_ticket(ticket_id, &caller.actor()).await?,
    ))
}

/// Marks a claimed ticket done. When it is the order's last, the order becomes `ready`.
///
/// Roles: staff of the ticket's shop, admin.
#[utoipa::path(post, security(("bearer" = [])), path = "/api/v1/kitchen/tickets/{ticket_id}/complete", tag = "kitchen",
    params(("ticket_id" = Uuid, Path, description = "Ticket id")),
    responses(
        (status = 200, description = "The ticket, done", body = Ticket),
        (status = 403, description = "Staff and admins only"),
        (status = 404, description = "No such ticket, or it belongs to another shop than the caller's"),
        (status = 409, description = "The ticket is not claimed"),
    ))]
async fn complete_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket_id): Path<Uuid>,
) -> ApiResult<axum::Json<Ticket>> {
    caller.kitchen_of(state.store.shop_of_ticket(ticket_id).await?)?;
    let ticket = state
        .store
        .complete_ticket(ticket_id, &caller.actor())
        .await?;
    metrics::counter!(names::TICKETS_COMPLETED).increment(1);
    catalogue_cache::forget_load(&state, ticket.shop_id).await;
    Ok(axum::Json(ticket))
}

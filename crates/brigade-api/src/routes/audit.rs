//! The audit trail, read-only: every state change with who, what, when and from which request.
//! There is no route that changes or deletes an event, and the database refuses it too.

use axum::extract::State;
use brigade_domain::AuditEvent;
use brigade_store::AuditFilter;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::caller::Admin;
use crate::error::ApiResult;
use crate::extract::Query;
use crate::routes::page;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

/// Filters of `GET /admin/audit`; all optional, combined with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Kind of entity: order, ticket, payment, account, session, shop, station, item, menu.
    entity: Option<String>,
    /// One entity's id.
    entity_id: Option<String>,
    /// Who made the change, e.g. `account:<id>` or `system`.
    actor: Option<String>,
    /// The action, e.g. `order.status_changed`.
    action: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{22}$")]
    cursor: Option<String>,
}

/// A page of audit events.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Events, newest first.
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The audit trail, newest first, with filters and cursor pagination.
///
/// Roles: admin.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "accounts", security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events, newest first", body = AuditPage),
        (status = 403, description = "Admins only"),
    ))]
async fn list_audit_events(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<AuditQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    let limit = page::limit(query.limit)?;
    let before = page::cursor(query.cursor.as_deref())?;
    let items = state
        .store
        .audit_events(&AuditFilter {
            entity: query.entity,
            entity_id: query.entity_id,
            actor: query.actor,
            action: query.action,
            since: query.since,
            until: query.until,
            before,
            limit,
        })
        .await?;
    let next_cursor = page::next_cursor(&items, limit, |event| event.id);
    Ok(axum::Json(AuditPage { items, next_cursor }))
}

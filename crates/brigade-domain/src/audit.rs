//! The audit trail: who changed what, when, and from which request.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One recorded change. Written in the same transaction as the change itself, never updated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Event id (UUID v7: ordered by time; the cursor of `GET /admin/audit`).
    pub id: Uuid,
    /// When the change was committed.
    pub at: DateTime<Utc>,
    /// Who made it (`account:<id>`, `anonymous`, `system`).
    pub actor: String,
    /// What was done, `<entity>.<verb>` (e.g. `order.status_changed`).
    pub action: String,
    /// The kind of thing changed (`order`, `ticket`, `payment`, `account`, `session`, `shop`,
    /// `station`, `item`, `menu`).
    pub entity: String,
    /// Its id.
    pub entity_id: String,
    /// The changed fields before (absent for creations). Secrets are never included.
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The changed fields after.
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    /// The request that made it (`X-Request-Id`), absent for background work.
    pub request_id: Option<String>,
}

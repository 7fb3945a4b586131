//! Error tracking: the errors every child logs as error events (server 5xx causes, panics, and
//! the errors brigade's pages report to `POST /api/v1/client-errors`) grouped by fingerprint,
//! on the ops API:
//!
//! - `GET /api/errors[?state=open|resolved]`: the groups, most recently seen first
//!   ([`crate::api::ErrorGroupList`]);
//! - `POST /api/errors/{fingerprint}/resolve`: marks a group resolved (the ops token is
//!   required, as for every change); it opens again when its error comes back.
//!
//! The groups are fed by the central log ([`crate::logs::LogSink`]), which sees every line of
//! every child as it is written, and kept across restarts of `up` ([`saved`]).

mod file_format;
mod fingerprint;
pub(crate) mod groups;
pub(crate) mod metrics;
pub mod saved;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use brigade_core::Problem;
use serde::Deserialize;

use crate::api::{ErrorGroup, ErrorGroupList, ErrorGroupState};
use crate::shared::Shared;

pub use fingerprint::{fingerprint, normalize_message};
pub use groups::{CAPACITY, ErrorGroups, Recorded};

/// The routes, on the ops API.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/api/errors", get(list))
        .route("/api/errors/{fingerprint}/resolve", post(resolve))
}

/// The query of `GET /api/errors`; text, so a bad value is answered naming its field.
#[derive(Debug, Default, Deserialize)]
struct ErrorsQuery {
    state: Option<String>,
}

async fn list(
    State(shared): State<Shared>,
    Query(query): Query<ErrorsQuery>,
) -> Result<axum::Json<ErrorGroupList>, Problem> {
    let state = match query.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some("open") => Some(ErrorGroupState::Open),
        Some("resolved") => Some(ErrorGroupState::Resolved),
        Some(_) => {
            return Err(Problem::invalid_field("state", "must be open or resolved"));
        }
    };
    Ok(axum::Json(shared.errors.list(state)))
}

async fn resolve(
    State(shared): State<Shared>,
    Path(fingerprint): Path<String>,
) -> Result<axum::Json<ErrorGroup>, Problem> {
    shared
        .errors
        .resolve(&fingerprint, chrono::Utc::now())
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no error group {fingerprint:?}")))
}

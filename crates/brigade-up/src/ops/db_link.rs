//! `GET /api/db-link` and `PUT /api/db-link` on the ops port: the database link's state, and
//! cutting or restoring it (the link itself is `crate::db_link`).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use super::{Answer, problem};
use crate::api::{EventKind, EventLevel, LinkRequest};
use crate::shared::Shared;

/// `GET /api/db-link` and `PUT /api/db-link`.
pub(crate) fn router() -> Router<Shared> {
    Router::new().route("/api/db-link", get(view).put(set))
}

async fn view(State(shared): State<Shared>) -> Answer {
    match shared.db_link() {
        Some(link) => axum::Json(link.view()).into_response(),
        None => unavailable(),
    }
}

async fn set(
    State(shared): State<Shared>,
    body: Result<axum::Json<LinkRequest>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    let Ok(axum::Json(body)) = body else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cut: required, true or false",
        );
    };
    let Some(link) = shared.db_link() else {
        return unavailable();
    };
    match link.set_cut(body.cut).await {
        Ok(view) => {
            shared.events.push(
                EventLevel::Warn,
                EventKind::DbLink,
                None,
                if body.cut {
                    format!("database link cut ({} {})", view.mode.as_str(), view.target)
                } else {
                    format!(
                        "database link restored ({} {})",
                        view.mode.as_str(),
                        view.target
                    )
                },
            );
            axum::Json(view).into_response()
        }
        Err(error) => problem(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}

fn unavailable() -> Answer {
    problem(
        StatusCode::NOT_FOUND,
        "no database link: DATABASE_URL names no TCP host, so replicas connect directly",
    )
}

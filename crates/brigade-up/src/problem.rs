//! Problem details (RFC 9457) of `brigade up`'s own HTTP answers: the ops API, the dashboard's
//! forwarding and the job runner answer errors in one shape, as `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brigade_core::Problem;
use brigade_core::problem::PROBLEM_JSON;
use serde::Serialize;

/// An ops request refused (4xx) or failed (5xx), with `detail` saying why.
pub(crate) fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let title = if status.is_server_error() {
        "Ops request failed"
    } else {
        "Ops request refused"
    };
    Problem::new(status, "ops", title)
        .with_detail(detail)
        .into_response()
}

/// A problem document with extension members of the caller's own (RFC 9457 §3.2).
#[derive(Debug, Serialize)]
pub(crate) struct Extended<T: Serialize> {
    /// The standard members.
    #[serde(flatten)]
    pub problem: Problem,
    /// The extension members, flattened beside them.
    #[serde(flatten)]
    pub extension: T,
}

impl<T: Serialize> IntoResponse for Extended<T> {
    fn into_response(self) -> Response {
        let status = self.problem.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_say_their_media_type_and_status() {
        let answer = problem(StatusCode::NOT_FOUND, "no pool \"x\"");
        assert_eq!(answer.status(), 404);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let failed = problem(StatusCode::BAD_GATEWAY, "down");
        assert_eq!(failed.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}

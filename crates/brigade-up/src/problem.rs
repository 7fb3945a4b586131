//! Problem details (RFC 9457) of `brigade up`'s own HTTP answers: the ops API, the dashboard's
//! forwarding and the job runner answer errors in one shape, as `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The media type of every error answer.
const PROBLEM_JSON: &str = "application/problem+json";

/// An ops request refused (4xx) or failed (5xx), with `detail` saying why.
pub(crate) fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let title = if status.is_server_error() {
        "Ops request failed"
    } else {
        "Ops request refused"
    };
    with_body(
        status,
        json!({"type": "urn:brigade:problem:ops", "title": title,
               "status": status.as_u16(), "detail": detail.into()}),
    )
}

/// A problem document of the caller's own (a type of its own, extension members).
pub(crate) fn with_body(status: StatusCode, document: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        document.to_string(),
    )
        .into_response()
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

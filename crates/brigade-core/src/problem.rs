//! `application/problem+json` (RFC 9457): the one shape every brigade error takes over HTTP.
//!
//! Handlers build a [`Problem`] (usually through their own error enum's mapping); the body always
//! carries the request id as `instance`, so a user can quote it and an operator can find the log
//! lines of that request. Internal causes are logged where they happen and never put here.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::request;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[schema(example = json!({
    "type": "urn:brigade:problem:validation",
    "title": "The request is not valid",
    "status": 422,
    "detail": "2 fields are not valid",
    "instance": "urn:brigade:request:0192b1c2-8f3e-7c1a-9d2e-4b5a6c7d8e9f",
    "errors": [{"field": "items[0].quantity", "message": "must be at least 1"}]
}))]
pub struct Problem {
    /// URI naming the kind of problem; stable, so clients can branch on it.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem; the same for every occurrence.
    pub title: String,
    /// The HTTP status code, repeated for clients that lose headers.
    pub status: u16,
    /// What went wrong this time, in words meant for the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// This occurrence: the request id as a URN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// For validation problems, every field that failed, so a form can mark them all at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field in the request, e.g. `items[1].quantity`, or a header/query name.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Problem {
    /// A problem of kind `urn:brigade:problem:<slug>`.
    pub fn new(status: StatusCode, slug: &str, title: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:brigade:problem:{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            instance: None,
            errors: Vec::new(),
        }
    }

    /// Adds the occurrence-specific explanation.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 400: the body is not JSON, or a header or query string cannot be read.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "The request is malformed",
        )
        .with_detail(detail)
    }

    /// 422 (or 400 for a wrong shape) with the list of invalid fields.
    pub fn invalid(status: StatusCode, errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are not valid", many.len()),
        };
        Self {
            errors,
            ..Self::new(status, "validation", "The request is not valid").with_detail(detail)
        }
    }

    /// 422 for a single invalid field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![FieldError::new(field, message)],
        )
    }

    /// 404: the named resource does not exist (or the caller may not know it exists).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").with_detail(detail)
    }

    /// 409: the request conflicts with the resource's current state.
    pub fn conflict(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            slug,
            "Conflict with the current state",
        )
        .with_detail(detail)
    }

    /// 503: a dependency (usually the database) is unavailable; retrying later may work.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service temporarily unavailable",
        )
        .with_detail(detail)
    }

    /// 500: a bug or an unexpected failure. The cause is logged by the caller, not sent.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
        .with_detail("the error was logged; quote the instance when reporting it")
    }

    /// The status code as a `StatusCode`.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        if self.instance.is_none() {
            self.instance =
                request::current().map(|ctx| format!("urn:brigade:request:{}", ctx.request_id));
        }
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_lists_fields() {
        let problem = Problem::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![FieldError::new("a", "bad"), FieldError::new("b", "worse")],
        );
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(json["type"], "urn:brigade:problem:validation");
        assert_eq!(json["status"], 422);
        assert_eq!(json["errors"][1]["field"], "b");
        assert_eq!(json["detail"], "2 fields are not valid");
    }

    #[test]
    fn response_has_problem_content_type() {
        let response = Problem::not_found("no such order").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}

//! HTTP routes, one module per resource, each with its own `router()`.

pub mod accounts;
pub mod audit;
pub mod client_errors;
pub mod faults;
pub mod health;
pub mod items;
pub mod kitchen;
pub mod orders;
pub(crate) mod page;
pub mod reports;
pub mod shops;

use axum::response::{IntoResponse, Response};
use brigade_core::Problem;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// Fallback for unknown paths: 404 as problem+json.
pub async fn not_found(uri: http::Uri) -> Problem {
    Problem::not_found(format!("no route for {}", uri.path()))
}

/// Fallback for a known path with the wrong method.
pub async fn method_not_allowed(method: http::Method) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
    )
    .with_detail(format!("{method} is not supported on this path"))
}

/// 201 with a `Location` header and the JSON body.
pub(crate) fn created<T: Serialize>(location: &str, body: &T) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

//! HTTP routes, one module per resource, each with its own `router()`.

pub mod accounts;
pub mod health;
pub mod items;
pub mod kitchen;
pub mod orders;
pub mod shops;

use brigade_core::Problem;
use http::StatusCode;

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

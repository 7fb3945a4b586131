//! The API's error enum: every failure of a handler, mapped to a problem+json response in one
//! place (the realworld-axum-sqlx pattern). Internal causes are logged here and never sent.

use axum::response::{IntoResponse, Response};
use brigade_core::error_event::{ErrorKind, ServerError};
use brigade_core::{FieldError, Problem};
use brigade_domain::{TransitionError, Violation};
use brigade_store::{StorageFault, StoreError};
use http::{HeaderValue, StatusCode, header};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A problem already shaped for the client (bad input, failed precondition, …).
    #[error("{}", .0.title)]
    Problem(Box<Problem>),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No valid credentials: 401 with `WWW-Authenticate: Bearer`.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Too many log-in or sign-up attempts: 429 with `Retry-After` and what was limited.
    #[error("too many attempts")]
    TooManyRequests {
        /// How long to wait.
        wait: std::time::Duration,
        /// What was limited, for the client.
        detail: &'static str,
    },
    /// A bug or a broken invariant: 500, the cause logged as an error event (never sent).
    #[error("internal error: {0}")]
    Internal(String),
    /// The service is at a capacity limit it keeps on purpose (e.g. password hashing): 503
    /// with `Retry-After`.
    #[error("busy")]
    Busy {
        /// How long to wait.
        wait: std::time::Duration,
        /// What is busy, for the client.
        detail: &'static str,
    },
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Problem(Box::new(problem))
    }
}

impl From<Vec<Violation>> for ApiError {
    fn from(violations: Vec<Violation>) -> Self {
        Problem::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            violations
                .into_iter()
                .map(|v| FieldError::new(v.field, v.message))
                .collect(),
        )
        .into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Problem(problem) => problem.into_response(),
            Self::Store(error) => store_error_response(error),
            Self::Unauthorized(detail) => {
                let mut response = Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Authentication required",
                )
                .with_detail(detail)
                .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"brigade\""),
                );
                response
            }
            Self::TooManyRequests { wait, detail } => with_retry_after(
                Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-attempts",
                    "Too many attempts",
                )
                .with_detail(detail),
                wait,
            ),
            Self::Busy { wait, detail } => with_retry_after(Problem::unavailable(detail), wait),
            Self::Internal(cause) => {
                let mut response = Problem::internal().into_response();
                ServerError::new(ErrorKind::Internal, cause).attach(&mut response);
                response
            }
        }
    }
}

/// `Retry-After` of a storage fault's 503. A full or read-only disk is shared by every replica
/// and rarely clears within a second, so the wait is longer than the balancer waits out itself
/// (2 s): the answer goes straight to the client instead of being held for the balancer's
/// retries, and readiness (see `write_health`) takes the replicas out meanwhile.
const STORAGE_FAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The problem's response with `Retry-After` in whole seconds (at least one).
fn with_retry_after(problem: Problem, wait: std::time::Duration) -> Response {
    let mut response = problem.into_response();
    let seconds = wait.as_secs().max(1);
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn store_error_response(error: StoreError) -> Response {
    match error {
        StoreError::NotFound(what) => {
            Problem::not_found(format!("no {what} with this id")).into_response()
        }
        StoreError::Conflict { kind, detail } => {
            Problem::conflict(kind.slug(), detail).into_response()
        }
        StoreError::VersionMismatch { current } => {
            let mut response = Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "version-mismatch",
                "The resource changed since it was read",
            )
            .with_detail(format!(
                "the order is at version {current}; read it again and retry with its ETag"
            ))
            .into_response();
            if let Ok(etag) = HeaderValue::from_str(&etag(current)) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            response
        }
        StoreError::Transition(error @ TransitionError::NotAllowed { .. }) => {
            Problem::conflict("invalid-transition", error.to_string()).into_response()
        }
        StoreError::Transition(error @ TransitionError::KitchenOnly { .. }) => {
            Problem::conflict("kitchen-only", error.to_string()).into_response()
        }
        StoreError::Transition(error @ TransitionError::PaymentOnly { .. }) => {
            Problem::conflict("payment-only", error.to_string()).into_response()
        }
        StoreError::Unavailable(_) => {
            let fault = error.storage_fault();
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                fault = fault.map(StorageFault::as_str),
                "database unavailable"
            );
            let detail = match fault {
                Some(fault) => format!(
                    "the database cannot take writes right now ({}); retry shortly",
                    fault.as_str()
                ),
                None => "the database is unavailable; retry shortly".to_owned(),
            };
            let Some(fault) = fault else {
                return Problem::unavailable(detail).into_response();
            };
            let mut response = with_retry_after(Problem::unavailable(detail), STORAGE_FAULT_WAIT);
            response.extensions_mut().insert(StorageFaultMet(fault));
            response
        }
        error @ (StoreError::Database(_) | StoreError::Corrupt(_) | StoreError::Migrate(_)) => {
            // The cause is logged as an error event by the request middleware, with the route.
            let mut response = Problem::internal().into_response();
            ServerError::new(
                ErrorKind::Store,
                format!(
                    "store failure: {}",
                    brigade_core::telemetry::error_chain(&error)
                ),
            )
            .attach(&mut response);
            response
        }
    }
}

/// 404 with a detail, as an error.
pub fn not_found(detail: &str) -> ApiError {
    Problem::not_found(detail).into()
}

/// The `ETag` of an order at `version`: what a conditional update's `If-Match` names, so the
/// answer of a conflict (here) and of a read (routes/orders) render it the same way.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The storage fault a failed response met: set here, by the error mapping, and read by
/// readiness (`write_health::note`), which takes a replica out while its writes fail.
#[derive(Debug, Clone, Copy)]
pub struct StorageFaultMet(pub StorageFault);

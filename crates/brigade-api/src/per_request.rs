//! The replica's own steps around every request, in one middleware: the read-after fence
//! (outermost), noting storage faults, fault injection and authentication (innermost).
//!
//! Each step used to be a middleware of its own, and every axum `from_fn` layer costs a clone
//! of the rest of the stack and a boxed future per request; as plain functions called in
//! order they cost a function call each. The order is the old layers' order.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;
use crate::{caller, faults, read_after, write_health};

/// Middleware running the steps, outermost first.
pub async fn steps(State(state): State<AppState>, request: Request, next: Next) -> Response {
    read_after::fence(&state, request, |request| noted(&state, request, next)).await
}

/// Runs the request, noting a storage fault it met (after an injected fault or a 401 too, as
/// the separate layers did).
async fn noted(state: &AppState, request: Request, next: Next) -> Response {
    let response = guarded(state, request, next).await;
    write_health::note(&state.write_health, &response);
    response
}

/// Injected faults first (a struck request is answered 500 before the caller is resolved),
/// then the caller, then the handler.
async fn guarded(state: &AppState, mut request: Request, next: Next) -> Response {
    if let Some(response) = faults::inject(&state.faults, request.uri().path()).await {
        return response;
    }
    if let Err(response) = caller::authenticate(state, &mut request).await {
        return response;
    }
    next.run(request).await
}

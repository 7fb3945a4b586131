//! The steps of placing an order as spans under the request's: `place order` (choosing the
//! shop and pricing from the caches, then the store's write, which claims the
//! `Idempotency-Key` in the same statement), `settle payment` (the provider's call and the
//! store's record of its answer) and `wait for first request` (a retry of a request still in
//! progress waiting for its answer). Their children are the cache, store and provider spans
//! of each step, so a trace of `POST /api/v1/orders` reads `authenticate` → `place order` →
//! `settle payment`.
//!
//! Made only when the request is recorded ([`brigade_core::traces::recording`]); otherwise
//! each is `Span::none()`, on which instrumenting and recording cost nothing.

use brigade_store::{NewPayment, PlaceOutcome};

use crate::error::ApiError;

/// An internal span named `name` with room for the step's outcome and status.
fn step(name: &'static str) -> tracing::Span {
    if !brigade_core::traces::recording() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "order_step",
        otel.name = name,
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        brigade.order.attempt = tracing::field::Empty,
        brigade.order.outcome = tracing::field::Empty,
        brigade.payment.status = tracing::field::Empty,
    )
}

/// How an attempt to place an order ended: the store's outcome with the payment it wrote, the
/// order refused before the store was asked (inner error), or a failure (outer error).
pub(crate) type Placed = Result<Result<(PlaceOutcome, NewPayment), ApiError>, ApiError>;

/// The span of attempt `attempt` (from 0) to prepare and write the order.
pub(crate) fn place_order(attempt: u32) -> tracing::Span {
    let span = step("place order");
    span.record("brigade.order.attempt", attempt + 1);
    span
}

/// Records how placing ended: the store's outcome, a refusal of the order itself (a closed
/// shop, an unknown item), or a failure (which marks the span).
pub(crate) fn placed(span: &tracing::Span, placed: &Placed) {
    let outcome = match placed {
        Ok(Ok((PlaceOutcome::Created(_), _))) => "created",
        Ok(Ok((PlaceOutcome::Replayed(_), _))) => "replayed",
        Ok(Ok((PlaceOutcome::KeyReused, _))) => "key_reused",
        Ok(Ok((PlaceOutcome::InProgress { .. }, _))) => "in_progress",
        Ok(Err(error)) => {
            failed(span, error);
            "refused"
        }
        Err(error) => {
            failed(span, error);
            "failed"
        }
    };
    span.record("brigade.order.outcome", outcome);
}

/// The span of the payment's authorisation and its record.
pub(crate) fn settle_payment() -> tracing::Span {
    step("settle payment")
}

/// The span of a retry waiting for the answer of the first request with its key.
pub(crate) fn wait_for_first() -> tracing::Span {
    step("wait for first request")
}

/// Marks `span` failed with a reason fit for a trace: a problem's title, the kind of any other
/// failure (its cause is in the logs, and the failed store call's span is marked on its own).
pub(crate) fn failed(span: &tracing::Span, error: &ApiError) {
    let reason = match error {
        ApiError::Problem(problem) => problem.title.as_str(),
        ApiError::Store(_) => "the store call failed",
        ApiError::Unauthorized(_) => "unauthorized",
        ApiError::TooManyRequests { .. } => "too many attempts",
        ApiError::Internal(_) => "internal error",
        ApiError::Busy { .. } => "busy",
    };
    brigade_core::traces::mark_failed(span, reason);
}

//! Who is calling. Every handler that changes something takes a [`Caller`], so that
//! authentication can later be added here without touching the handlers.

use axum::extract::FromRequestParts;
use brigade_domain::Actor;
use http::request::Parts;

use crate::error::ApiError;

/// The principal of a request. Today every caller is anonymous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    actor: Actor,
}

impl Caller {
    /// The actor recorded on the changes this caller makes.
    pub fn actor(&self) -> Actor {
        self.actor.clone()
    }

    /// The namespace of this caller's `Idempotency-Key`s: two callers' keys never collide.
    pub fn idempotency_scope(&self) -> String {
        self.actor.0.clone()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            actor: Actor::anonymous(),
        })
    }
}

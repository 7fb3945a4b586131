//! Who is calling: anonymous, or the account behind a valid bearer token.

use axum::extract::FromRequestParts;
use brigade_domain::{Account, Actor};
use http::header::AUTHORIZATION;
use http::request::Parts;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The principal of a request. Every handler that changes something takes one, so the actor
/// of each change is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    actor: Actor,
    account: Option<Account>,
    session_id: Option<Uuid>,
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

    /// The logged-in account, or 401.
    pub fn account(&self) -> Result<&Account, ApiError> {
        self.account.as_ref().ok_or_else(|| {
            ApiError::Unauthorized("log in first: send Authorization: Bearer <token>".into())
        })
    }

    /// The session behind the token, or 401.
    pub fn session_id(&self) -> Result<Uuid, ApiError> {
        self.session_id.ok_or_else(|| {
            ApiError::Unauthorized("log in first: send Authorization: Bearer <token>".into())
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Self {
                actor: Actor::anonymous(),
                account: None,
                session_id: None,
            });
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization must be \"Bearer <token>\"".into())
            })?;
        let claims = state
            .auth
            .tokens
            .verify(token)
            .map_err(|error| ApiError::Unauthorized(error.to_string()))?;
        // The signature says who; the session row says whether the login still stands.
        let session = state
            .store
            .session(claims.sid)
            .await?
            .filter(|session| session.revoked_at.is_none())
            .filter(|session| session.expires_at > brigade_domain::now())
            .filter(|session| session.account.id == claims.sub)
            .ok_or_else(|| ApiError::Unauthorized("the session has ended; log in again".into()))?;
        Ok(Self {
            actor: Actor(format!("account:{}", session.account.id)),
            account: Some(session.account),
            session_id: Some(claims.sid),
        })
    }
}

//! Who is calling: anonymous, or the account behind a valid bearer token.

use axum::extract::FromRequestParts;
use brigade_domain::{Account, Actor, Order, OrderStatus, Role};
use http::header::AUTHORIZATION;
use http::request::Parts;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::error::ApiError;
use crate::session_cache::SessionSource;
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

    /// The account if it has one of `roles`: 401 when anonymous, 403 otherwise.
    pub fn require(&self, roles: &[Role]) -> Result<&Account, ApiError> {
        let account = self.account()?;
        if roles.contains(&account.role) {
            Ok(account)
        } else {
            Err(forbidden(account.role))
        }
    }

    /// An admin, or 401/403.
    pub fn admin(&self) -> Result<&Account, ApiError> {
        self.require(&[Role::Admin])
    }

    /// Staff of `shop_id` or an admin. Staff of another shop get 404: the kitchen of another
    /// shop is none of their business, not even its existence.
    pub fn kitchen_of(&self, shop_id: uuid::Uuid) -> Result<&Account, ApiError> {
        let account = self.require(&[Role::Staff, Role::Admin])?;
        if account.role == Role::Admin || account.shop_id == Some(shop_id) {
            Ok(account)
        } else {
            Err(crate::error::not_found("no such resource"))
        }
    }

    /// Whether this caller may see the order at all (else the answer is 404, so that nobody
    /// learns that someone else's order exists).
    pub fn may_see(&self, order: &Order) -> bool {
        let Some(account) = &self.account else {
            return false;
        };
        match account.role {
            Role::Admin => true,
            Role::Customer => order.customer_id == Some(account.id),
            Role::Staff => account.shop_id == Some(order.shop_id),
            Role::Courier => {
                account.shop_id == Some(order.shop_id)
                    && matches!(
                        order.status,
                        OrderStatus::Ready | OrderStatus::OutForDelivery | OrderStatus::Delivered
                    )
            }
        }
    }

    /// Whether this caller's role may request `to` (the lifecycle is checked separately).
    pub fn may_request(&self, to: OrderStatus) -> Result<(), ApiError> {
        let account = self.account()?;
        let allowed = match account.role {
            Role::Admin => true,
            Role::Customer => to == OrderStatus::Cancelled,
            Role::Staff => matches!(to, OrderStatus::Accepted | OrderStatus::Cancelled),
            Role::Courier => matches!(to, OrderStatus::OutForDelivery | OrderStatus::Delivered),
        };
        if allowed {
            Ok(())
        } else {
            Err(forbidden(account.role))
        }
    }

    /// The session behind the token, or 401.
    pub fn session_id(&self) -> Result<Uuid, ApiError> {
        self.session_id.ok_or_else(|| {
            ApiError::Unauthorized("log in first: send Authorization: Bearer <token>".into())
        })
    }
}

fn forbidden(role: Role) -> ApiError {
    brigade_core::Problem::new(http::StatusCode::FORBIDDEN, "forbidden", "Not allowed")
        .with_detail(format!("a {} account may not do this", role.as_str()))
        .into()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The `authenticate` middleware has usually resolved the caller already.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        Self::resolve(&parts.headers, state).await
    }
}

impl Caller {
    /// Resolves the `Authorization` header: anonymous without one, 401 for a bad one.
    pub async fn resolve(headers: &http::HeaderMap, state: &AppState) -> Result<Self, ApiError> {
        Self::resolve_from(headers, state)
            .await
            .map(|(caller, _)| caller)
    }

    /// [`Self::resolve`], saying where the session came from (`None`: no token).
    async fn resolve_from(
        headers: &http::HeaderMap,
        state: &AppState,
    ) -> Result<(Self, Option<SessionSource>), ApiError> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            let anonymous = Self {
                actor: Actor::anonymous(),
                account: None,
                session_id: None,
            };
            return Ok((anonymous, None));
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
        // The signature says who; the session row says whether the login still stands (read
        // through this replica's session cache, which honours revocation within its bound).
        let (session, source) = state
            .sessions
            .lookup(state.store.as_ref(), claims.sid)
            .await?;
        let session = session
            .filter(|session| session.revoked_at.is_none())
            .filter(|session| session.expires_at > brigade_domain::now())
            .filter(|session| session.account.id == claims.sub)
            .ok_or_else(|| ApiError::Unauthorized("the session has ended; log in again".into()))?;
        let caller = Self {
            actor: Actor(format!("account:{}", session.account.id)),
            account: Some(session.account),
            session_id: Some(claims.sid),
        };
        Ok((caller, Some(source)))
    }
}

/// Resolves the caller once per request, so that a bad token is refused (401, the answer
/// returned) on every route, public reads included, and handlers reuse the result. A step of
/// [`crate::per_request::steps`].
pub async fn authenticate(state: &AppState, request: &mut Request) -> Result<(), Response> {
    if request.headers().contains_key(AUTHORIZATION) {
        let caller = resolve_traced(request.headers(), state)
            .await
            .map_err(IntoResponse::into_response)?;
        request.extensions_mut().insert(caller);
    }
    Ok(())
}

/// [`Caller::resolve`] inside an `authenticate` span when the request is recorded: the token
/// check and the session look-up as one step of the trace, saying whether the session cache
/// answered (`brigade.session.cached`) and whose login it is (`enduser.id`, the account id
/// the log lines already carry; never the token). A refusal marks the span failed with the
/// reason the 401 gives. Nothing is made for a request that is not recorded.
async fn resolve_traced(headers: &http::HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    use tracing::Instrument as _;
    if !brigade_core::traces::recording() {
        return Caller::resolve(headers, state).await;
    }
    let span = tracing::info_span!(
        "authenticate",
        otel.name = "authenticate",
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        brigade.session.cached = tracing::field::Empty,
        enduser.id = tracing::field::Empty,
    );
    let resolved = Caller::resolve_from(headers, state)
        .instrument(span.clone())
        .await;
    match &resolved {
        Ok((caller, source)) => {
            if let Some(source) = source {
                span.record("brigade.session.cached", *source == SessionSource::Cache);
            }
            if let Some(account) = &caller.account {
                span.record("enduser.id", tracing::field::display(account.id));
            }
        }
        Err(error) => {
            // The 401's own words; a store failure's cause stays in the logs (and the store
            // span is marked failed on its own).
            let reason = match error {
                ApiError::Unauthorized(detail) => detail.as_str(),
                _ => "the session could not be read",
            };
            brigade_core::traces::mark_failed(&span, reason);
        }
    }
    resolved.map(|(caller, _)| caller)
}

/// An admin, checked before the request body is read: a caller without the right gets 401/403
/// even when the body is also invalid.
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.admin()?;
        Ok(Self(caller))
    }
}

/// A caller who may place orders (a customer or an admin), checked before the body is read.
pub struct Orderer(pub Caller);

impl FromRequestParts<AppState> for Orderer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(&[Role::Customer, Role::Admin])?;
        Ok(Self(caller))
    }
}

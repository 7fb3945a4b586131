//! Accounts and login sessions.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use brigade_core::Problem;
use brigade_domain::{Account, Credentials, Role};
use brigade_store::NewAccountRecord;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Claims;
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::shops::created;
use crate::state::AppState;

/// Accounts signed up.
pub const SIGNUPS: &str = "brigade_signups_total";
/// Login attempts by outcome.
pub const LOGINS: &str = "brigade_logins_total";

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_up))
        .routes(routes!(me))
        .routes(routes!(log_in))
        .routes(routes!(log_out))
}

/// Signs up a customer account.
#[utoipa::path(post, path = "/accounts", tag = "accounts", request_body = Credentials,
    responses(
        (status = 201, body = Account),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The e-mail address is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn sign_up(
    State(state): State<AppState>,
    Json(credentials): Json<Credentials>,
) -> ApiResult<Response> {
    let credentials = credentials.validate_new()?;
    let password_hash = state
        .auth
        .passwords
        .hash(credentials.password)
        .await
        .ok_or_else(|| ApiError::from(Problem::internal()))?;
    let account = state
        .store
        .create_account(&NewAccountRecord {
            email: credentials.email,
            password_hash,
            role: Role::Customer,
            shop_id: None,
        })
        .await?;
    metrics::counter!(SIGNUPS).increment(1);
    tracing::info!(account_id = %account.id, "account signed up");
    Ok(created("/api/v1/accounts/me", &account))
}

/// The logged-in account.
#[utoipa::path(get, path = "/accounts/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, body = Account),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn me(caller: Caller) -> ApiResult<axum::Json<Account>> {
    Ok(axum::Json(caller.account()?.clone()))
}

/// A new login.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// Who logged in.
    pub account: Account,
}

/// Logs in. Wrong e-mail address and wrong password get the same answer in the same time;
/// repeated failures per account and per client address are refused with 429 for a while.
#[utoipa::path(post, path = "/sessions", tag = "accounts", request_body = Credentials,
    responses(
        (status = 201, body = Session),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn log_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(credentials): Json<Credentials>,
) -> ApiResult<Response> {
    let email = credentials.normalised_email();
    let address = client_address(peer, &headers);
    let limiter = &state.auth.limiter;
    if !limiter.allows(&email, &address).await {
        metrics::counter!(LOGINS, "outcome" => "limited").increment(1);
        tracing::warn!(address, "login refused: too many failures");
        return Err(ApiError::TooManyRequests(limiter.window()));
    }
    let found = state.store.account_credentials(&email).await?;
    let (account, hash) = match found {
        Some((account, hash)) => (Some(account), Some(hash)),
        None => (None, None),
    };
    let matched = state
        .auth
        .passwords
        .verify(credentials.password, hash)
        .await;
    let Some(account) = account.filter(|_| matched) else {
        limiter.failed(&email, &address).await;
        metrics::counter!(LOGINS, "outcome" => "failed").increment(1);
        tracing::info!(address, "login failed");
        return Err(ApiError::Unauthorized(
            "wrong e-mail address or password".into(),
        ));
    };
    limiter.succeeded(&email).await;
    let now = brigade_domain::now();
    let ttl = chrono::Duration::seconds(
        i64::try_from(state.auth.settings.token_ttl_secs).unwrap_or(i64::MAX / 2),
    );
    let expires_at = now + ttl;
    let session_id = state.store.create_session(account.id, expires_at).await?;
    let token = state
        .auth
        .tokens
        .issue(&Claims {
            sub: account.id,
            sid: session_id,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        })
        .map_err(|_| ApiError::from(Problem::internal()))?;
    metrics::counter!(LOGINS, "outcome" => "succeeded").increment(1);
    tracing::info!(account_id = %account.id, session_id = %session_id, "logged in");
    Ok(created(
        "/api/v1/sessions/current",
        &Session {
            token,
            token_type: "Bearer",
            expires_at,
            account,
        },
    ))
}

/// Logs out: the token stops working on every replica at once.
#[utoipa::path(delete, path = "/sessions/current", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn log_out(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let session_id = caller.session_id()?;
    state.store.revoke_session(session_id).await?;
    tracing::info!(session_id = %session_id, "logged out");
    Ok(StatusCode::NO_CONTENT)
}

/// The client's address: the peer, or — when the peer is a proxy on this machine, such as
/// brigade's balancer — the last address that proxy appended to `X-Forwarded-For`.
fn client_address(peer: SocketAddr, headers: &HeaderMap) -> String {
    if peer.ip().is_loopback()
        && let Some(forwarded) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return forwarded.to_string();
    }
    peer.ip().to_string()
}

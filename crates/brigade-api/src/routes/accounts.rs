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
use crate::caller::{Admin, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::created;
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
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(change_role))
}

/// Creates an account with any role; the password is hashed with the configured Argon2id cost.
/// Used by sign-up, the admin API, demo data and tests.
pub async fn create_account_with(
    store: &dyn brigade_store::Store,
    passwords: &crate::auth::Passwords,
    credentials: Credentials,
    role: Role,
    shop_id: Option<uuid::Uuid>,
    actor: Option<&brigade_domain::Actor>,
) -> ApiResult<Account> {
    let credentials = credentials.validate_new()?;
    check_shop(store, role, shop_id).await?;
    let password_hash = passwords
        .hash(credentials.password)
        .await
        .ok_or_else(|| ApiError::from(Problem::internal()))?;
    let id = uuid::Uuid::now_v7();
    // Without an acting account (sign-up) the new account is the actor of its own creation.
    let actor = actor
        .cloned()
        .unwrap_or_else(|| brigade_domain::Actor::account(id));
    let account = store
        .create_account(
            &NewAccountRecord {
                id,
                email: credentials.email,
                password_hash,
                role,
                shop_id,
            },
            &actor,
        )
        .await?;
    metrics::counter!(SIGNUPS).increment(1);
    Ok(account)
}

/// Staff and couriers need an existing shop; other roles must not name one.
async fn check_shop(
    store: &dyn brigade_store::Store,
    role: Role,
    shop_id: Option<uuid::Uuid>,
) -> ApiResult<()> {
    match (role.needs_shop(), shop_id) {
        (true, None) => {
            Err(Problem::invalid_field("shop_id", "staff and couriers belong to a shop").into())
        }
        (false, Some(_)) => Err(Problem::invalid_field(
            "shop_id",
            "only staff and couriers belong to a shop",
        )
        .into()),
        (true, Some(shop_id)) => match store.get_shop(shop_id).await {
            Ok(_) => Ok(()),
            Err(brigade_store::StoreError::NotFound(_)) => {
                Err(Problem::invalid_field("shop_id", "no shop with this id").into())
            }
            Err(other) => Err(other.into()),
        },
        (false, None) => Ok(()),
    }
}

/// Body of `POST /api/v1/admin/accounts`.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStaffAccount {
    /// E-mail address.
    pub email: String,
    /// Initial password, 10–128 characters.
    pub password: String,
    /// Role.
    pub role: Role,
    /// The shop of a staff member or courier.
    #[serde(default)]
    pub shop_id: Option<uuid::Uuid>,
}

/// Body of `PATCH /api/v1/admin/accounts/{account_id}`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// New role.
    pub role: Role,
    /// The shop, for staff and couriers.
    #[serde(default)]
    pub shop_id: Option<uuid::Uuid>,
}

/// Every account.
///
/// Roles: admin.
#[utoipa::path(get, path = "/admin/accounts", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Account>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_accounts(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<axum::Json<Vec<Account>>> {
    Ok(axum::Json(state.store.list_accounts().await?))
}

/// Creates a staff, courier, admin or customer account.
///
/// Roles: admin.
#[utoipa::path(post, path = "/admin/accounts", tag = "accounts", security(("bearer" = [])),
    request_body = NewStaffAccount,
    responses(
        (status = 201, body = Account),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_account(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(new): Json<NewStaffAccount>,
) -> ApiResult<Response> {
    let credentials = Credentials {
        email: new.email,
        password: new.password,
    };
    let account = create_account_with(
        state.store.as_ref(),
        &state.auth.passwords,
        credentials,
        new.role,
        new.shop_id,
        Some(&admin.actor()),
    )
    .await?;
    tracing::info!(account_id = %account.id, role = account.role.as_str(), "account created");
    Ok(created(
        &format!("/api/v1/admin/accounts/{}", account.id),
        &account,
    ))
}

/// Changes an account's role (and shop). Takes effect on its live sessions at once.
///
/// Roles: admin.
#[utoipa::path(patch, path = "/admin/accounts/{account_id}", tag = "accounts",
    security(("bearer" = [])), request_body = RoleChange,
    params(("account_id" = uuid::Uuid, Path, description = "Account id")),
    responses(
        (status = 200, body = Account),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn change_role(
    State(state): State<AppState>,
    Admin(admin): Admin,
    crate::extract::Path(account_id): crate::extract::Path<uuid::Uuid>,
    Json(change): Json<RoleChange>,
) -> ApiResult<axum::Json<Account>> {
    check_shop(state.store.as_ref(), change.role, change.shop_id).await?;
    let account = state
        .store
        .set_role(account_id, change.role, change.shop_id, &admin.actor())
        .await?;
    tracing::info!(account_id = %account.id, role = account.role.as_str(), "role changed");
    Ok(axum::Json(account))
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
    let account = create_account_with(
        state.store.as_ref(),
        &state.auth.passwords,
        credentials,
        Role::Customer,
        None,
        None,
    )
    .await?;
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
    state
        .store
        .revoke_session(session_id, &caller.actor())
        .await?;
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

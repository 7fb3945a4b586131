//! Accounts and login sessions.

use axum::extract::State;
use axum::response::Response;
use brigade_core::Problem;
use brigade_domain::{Account, Credentials, Role};
use brigade_store::NewAccountRecord;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Claims, ClientAddress};
use crate::caller::{Admin, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::created;
use crate::state::AppState;

use crate::metrics::{LOGINS, SIGNUPS};

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
    let password_hash = passwords.hash(credentials.password).await?;
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
    /// E-mail address, as for sign-up.
    #[schema(format = Email, max_length = 254, pattern = r"^[^\s@]+@[^\s@.][^\s@]*\.[^\s@]+$")]
    pub email: String,
    /// Initial password, 10–128 characters.
    #[schema(format = Password, min_length = 10, max_length = 128)]
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
#[utoipa::path(get, path = "/api/v1/admin/accounts", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every account", body = Vec<Account>),
        (status = 403, description = "Admins only"),
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
#[utoipa::path(post, path = "/api/v1/admin/accounts", tag = "accounts", security(("bearer" = [])),
    request_body = NewStaffAccount,
    responses(
        (status = 201, description = "The account was created", body = Account,
            headers(("Location" = String, description = "URL of the account"))),
        (status = 403, description = "Admins only"),
        (status = 409, description = "The e-mail address is taken"),
    ))]
async fn create_account(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(new): Json<NewStaffAccount>,
) -> ApiResult<Response> {
    let credentials = checked_new_credentials(Credentials {
        email: new.email,
        password: new.password,
    })?;
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
#[utoipa::path(patch, path = "/api/v1/admin/accounts/{account_id}", tag = "accounts",
    security(("bearer" = [])), request_body = RoleChange,
    params(("account_id" = uuid::Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account with its new role", body = Account),
        (status = 403, description = "Admins only"),
        (status = 404, description = "No account with this id"),
        (status = 409, description = "The last admin cannot stop being one", body = Problem, content_type = "application/problem+json"),
    ))]
async fn change_role(
    State(state): State<AppState>,
    Admin(admin): Admin,
    crate::extract::Path(account_id): crate::extract::Path<uuid::Uuid>,
    Json(change): Json<RoleChange>,
) -> ApiResult<axum::Json<Account>> {
    check_shop(state.store.as_ref(), change.role, change.shop_id).await?;
    if change.role != Role::Admin {
        keep_an_admin(state.store.as_ref(), account_id).await?;
    }
    let account = state
        .store
        .set_role(account_id, change.role, change.shop_id, &admin.actor())
        .await?;
    // Other replicas see the change through the session epoch; this one applies it at once.
    state.sessions.invalidate_all();
    tracing::info!(account_id = %account.id, role = account.role.as_str(), "role changed");
    Ok(axum::Json(account))
}

/// The answer to every accepted sign-up, whether the address was new or not.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignUpAccepted {
    /// Always `accepted`.
    pub status: &'static str,
    /// What to do next.
    pub detail: &'static str,
}

const SIGN_UP_ACCEPTED: SignUpAccepted = SignUpAccepted {
    status: "accepted",
    detail: "if this address had no account, its account is ready; log in with it",
};

/// Refuses (409) to take the admin role from the last admin: nobody could give it back.
async fn keep_an_admin(store: &dyn brigade_store::Store, account_id: uuid::Uuid) -> ApiResult<()> {
    let admins: Vec<uuid::Uuid> = store
        .list_accounts()
        .await?
        .into_iter()
        .filter(|account| account.role == Role::Admin)
        .map(|account| account.id)
        .collect();
    if admins == [account_id] {
        return Err(Problem::conflict(
            "last-admin",
            "this is the last admin account; make another account admin first",
        )
        .into());
    }
    Ok(())
}

/// Signs up a customer account.
///
/// The answer is the same whether the address was new or already had an account, so sign-up
/// cannot be used to learn who has one; log in next (a wrong password then gets the same 401
/// as any other). Sign-ups are limited per client address.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = Credentials,
    responses(
        (status = 202, description = "Accepted; log in next", body = SignUpAccepted),
        (status = 429, description = "Too many sign-ups from this address", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Too many password hashes at once", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn sign_up(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(credentials): Json<Credentials>,
) -> ApiResult<(StatusCode, axum::Json<SignUpAccepted>)> {
    let credentials = checked_new_credentials(credentials)?;
    state.auth.limiter.reserve_signup(address).await?;
    let created = create_account_with(
        state.store.as_ref(),
        &state.auth.passwords,
        credentials,
        Role::Customer,
        None,
        None,
    )
    .await;
    match created {
        Ok(account) => tracing::info!(account_id = %account.id, "account signed up"),
        Err(ApiError::Store(brigade_store::StoreError::Conflict { .. })) => {
            tracing::info!(%address, "sign-up for an address that has an account");
        }
        Err(other) => return Err(other),
    }
    Ok((StatusCode::ACCEPTED, axum::Json(SIGN_UP_ACCEPTED)))
}

/// Domain validation plus the password policy, every violation at once.
fn checked_new_credentials(credentials: Credentials) -> ApiResult<Credentials> {
    let credentials = credentials.validate_new()?;
    crate::auth::policy::check(&credentials.email, &credentials.password)
        .map_err(|violation| ApiError::from(vec![violation]))?;
    Ok(credentials)
}

/// The logged-in account.
#[utoipa::path(get, path = "/api/v1/accounts/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account behind the token", body = Account),
    ))]
async fn me(caller: Caller) -> ApiResult<axum::Json<Account>> {
    Ok(axum::Json(caller.account()?.clone()))
}

/// A new login.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// Who logged in.
    pub account: Account,
}

/// Logs in. Wrong e-mail address and wrong password get the same answer in the same time;
/// repeated failures per client address, per account from one address, and per account from
/// all addresses are refused with 429 for a while.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "accounts", request_body = Credentials,
    responses(
        (status = 201, description = "Logged in: the token and its account", body = Session,
            headers(("Location" = String, description = "URL of the session"))),
        (status = 401, description = "Wrong e-mail address or password, or an Authorization header that is not a valid token"),
        (status = 429, description = "Too many failed logins",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Too many password checks at once", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn log_in(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(credentials): Json<Credentials>,
) -> ApiResult<Response> {
    let email = credentials.normalised_email();
    let limiter = &state.auth.limiter;
    // Reserved before the password is checked: parallel guesses cannot all pass a check
    // that counts them only afterwards.
    let reservation = limiter
        .reserve_login(&email, address)
        .await
        .map_err(|refused| {
            metrics::counter!(LOGINS, "outcome" => "limited").increment(1);
            tracing::warn!(%address, "login refused: too many attempts");
            ApiError::from(refused)
        })?;
    let found = state.store.account_credentials(&email).await?;
    let (account, hash) = match found {
        Some((account, hash)) => (Some(account), Some(hash)),
        None => (None, None),
    };
    let matched = state
        .auth
        .passwords
        .verify(credentials.password, hash)
        .await?;
    let Some(account) = account.filter(|_| matched) else {
        metrics::counter!(LOGINS, "outcome" => "failed").increment(1);
        tracing::info!(%address, "login failed");
        return Err(ApiError::Unauthorized(
            "wrong e-mail address or password".into(),
        ));
    };
    limiter.succeeded(reservation).await;
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
        .map_err(|error| ApiError::Internal(format!("cannot sign a session token: {error}")))?;
    metrics::counter!(LOGINS, "outcome" => "succeeded").increment(1);
    tracing::info!(account_id = %account.id, session_id = %session_id, "logged in");
    Ok(created(
        "/api/v1/sessions/current",
        &Session {
            token,
            token_type: "Bearer".to_owned(),
            expires_at,
            account,
        },
    ))
}

/// Logs out: the token stops working on this replica at once and on every other one within
/// `auth.session_cache.max_staleness_ms`.
#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
    ))]
async fn log_out(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let session_id = caller.session_id()?;
    state
        .store
        .revoke_session(session_id, &caller.actor())
        .await?;
    // Other replicas see the log-out through the session epoch; this one applies it at once.
    state.sessions.invalidate_all();
    tracing::info!(session_id = %session_id, "logged out");
    Ok(StatusCode::NO_CONTENT)
}

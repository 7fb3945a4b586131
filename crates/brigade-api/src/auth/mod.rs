//! Accounts, passwords, tokens and the login rate limit.
//!
//! Tokens are HS256 JWTs naming a session row: any replica verifies the signature with the
//! shared keys and then looks the session up in the shared database, so a logout (the row
//! revoked) takes effect on every replica at once, and a role change applies to live sessions.
//! The key id travels in the token header, so keys rotate without logging anyone out.

mod client;
mod limiter;
mod passwords;
pub mod policy;
mod tokens;

use std::sync::Arc;

use brigade_core::config::AuthSettings;
use brigade_store::cache::Cache;
use brigade_store::{Accounts, StoreResult};

pub use client::{ClientAddress, client_address};
pub use limiter::{LoginLimiter, Refused, Reservation};
pub use passwords::{HashError, Passwords};
pub use tokens::{Claims, TokenKeys};

/// Everything authentication needs, built once at start.
pub struct Auth {
    /// Signing and verifying keys.
    pub tokens: TokenKeys,
    /// Password hashing.
    pub passwords: Passwords,
    /// Log-in and sign-up counters.
    pub limiter: LoginLimiter,
    /// Settings (TTL, limits).
    pub settings: AuthSettings,
}

/// The key id used for the database-held key when none is configured.
const STORED_KEY_ID: &str = "stored-1";

impl Auth {
    /// Builds from settings; without configured keys, uses (creating if needed) the key kept
    /// in the database, so every replica on that database agrees without configuration.
    pub async fn build(
        settings: &AuthSettings,
        store: &dyn Accounts,
        cache: Arc<dyn Cache>,
    ) -> StoreResult<Self> {
        let keys = if settings.keys.is_empty() {
            let candidate = tokens::random_secret();
            let secret = store.signing_key(STORED_KEY_ID, &candidate).await?;
            vec![(STORED_KEY_ID.to_owned(), secret)]
        } else {
            settings
                .keys
                .iter()
                .map(|key| (key.id.clone(), key.secret.clone()))
                .collect()
        };
        Ok(Self {
            tokens: TokenKeys::new(&keys),
            passwords: Passwords::from_settings(settings),
            limiter: LoginLimiter::new(cache, settings),
            settings: settings.clone(),
        })
    }
}

impl From<HashError> for crate::error::ApiError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy(wait) => Self::Busy {
                wait,
                detail: "too many password checks at once; retry shortly",
            },
            HashError::Failed => Self::Internal("password hashing failed".to_owned()),
        }
    }
}

impl From<Refused> for crate::error::ApiError {
    fn from(Refused(wait): Refused) -> Self {
        Self::TooManyRequests {
            wait,
            detail: "too many attempts; wait before trying again",
        }
    }
}

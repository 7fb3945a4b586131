//! `[auth]`: token signing keys, password hashing cost, log-in and sign-up limits.

use serde::{Deserialize, Serialize};

use super::SessionCacheSettings;

/// A token signing key. Secrets are never logged.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    /// Key id, written into every token's header so verification finds the right key.
    pub id: String,
    /// The HMAC secret, at least 32 bytes.
    pub secret: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("secret", &"***")
            .finish()
    }
}

/// Account and token settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// How long a login token is valid.
    pub token_ttl_secs: u64,
    /// Signing keys, newest first: the first signs new tokens, all of them verify, so a key
    /// rotated out keeps verifying its tokens until they expire. Empty: brigade keeps one key in
    /// the database, shared by every replica using it.
    pub keys: Vec<SigningKey>,
    /// Argon2id memory cost in KiB (OWASP's minimum recommendation is 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations.
    pub argon2_iterations: u32,
    /// Failed logins allowed per account *from one client address* within
    /// `login_window_secs`. Keyed by account and address together, so a stranger who guesses
    /// wrong locks out only themselves, not the account's owner.
    pub max_failures_per_account: u64,
    /// Failed logins allowed per client address (any accounts) within `login_window_secs`.
    pub max_failures_per_address: u64,
    /// The window of the two limits above.
    pub login_window_secs: u64,
    /// Failed logins allowed per account from all addresses together within
    /// `account_window_secs`: the slow ceiling against guessing spread over many addresses.
    pub max_failures_per_account_total: u64,
    /// The window of `max_failures_per_account_total`.
    pub account_window_secs: u64,
    /// Sign-ups allowed per client address within `signup_window_secs`.
    pub max_signups_per_address: u64,
    /// The window of `max_signups_per_address`.
    pub signup_window_secs: u64,
    /// Memory the password hashes of this process may use at once, in MiB; it sets how many
    /// hashes run in parallel (this divided by `argon2_memory_kib`, at least one).
    pub hash_memory_mib: u32,
    /// Hashes allowed to wait for a free slot; a log-in or sign-up beyond them is answered 503
    /// with `Retry-After` at once instead of queueing without bound.
    pub hash_queue: usize,
    /// Longest wait for a hashing slot before answering 503 with `Retry-After`.
    pub hash_wait_ms: u64,
    /// The per-replica session cache (`[auth.session_cache]`).
    pub session_cache: SessionCacheSettings,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            token_ttl_secs: 12 * 3600,
            keys: Vec::new(),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            max_failures_per_account: 5,
            max_failures_per_address: 50,
            login_window_secs: 900,
            max_failures_per_account_total: 100,
            account_window_secs: 3600,
            max_signups_per_address: 10,
            signup_window_secs: 3600,
            hash_memory_mib: 128,
            hash_queue: 64,
            hash_wait_ms: 5_000,
            session_cache: SessionCacheSettings::default(),
        }
    }
}

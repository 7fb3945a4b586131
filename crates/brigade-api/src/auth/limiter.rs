//! Failed-login counters per account and per client address.
//!
//! Counted in the shared cache (Redis when configured, so every replica sees every failure);
//! when Redis cannot answer, this process's own counters take over, so an outage weakens the
//! limit to one replica's view instead of removing it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use brigade_core::config::AuthSettings;
use brigade_store::cache::{Cache, MemoryCache};

/// The login rate limit.
pub struct LoginLimiter {
    shared: Arc<dyn Cache>,
    /// Made on the first failure of `shared` (only Redis fails), so a replica that never needs
    /// it never pays its memory.
    local: OnceLock<MemoryCache>,
    window: Duration,
    per_account: u64,
    per_address: u64,
}

impl LoginLimiter {
    /// A limiter counting in `shared`.
    pub fn new(shared: Arc<dyn Cache>, settings: &AuthSettings) -> Self {
        Self {
            shared,
            local: OnceLock::new(),
            window: Duration::from_secs(settings.login_window_secs),
            per_account: settings.max_failures_per_account,
            per_address: settings.max_failures_per_address,
        }
    }

    /// Whether another attempt for this account from this address may be checked now.
    pub async fn allows(&self, email: &str, address: &str) -> bool {
        self.count(&account_key(email)).await < self.per_account
            && self.count(&address_key(address)).await < self.per_address
    }

    /// Records a failed attempt.
    pub async fn failed(&self, email: &str, address: &str) {
        for key in [account_key(email), address_key(address)] {
            if self.shared.increment(&key, self.window).await.is_none() {
                self.local().increment(&key, self.window).await;
            }
        }
    }

    /// Forgets an account's failures after a successful login.
    pub async fn succeeded(&self, email: &str) {
        let key = account_key(email);
        self.shared.delete(&key).await;
        if let Some(local) = self.local.get() {
            local.delete(&key).await;
        }
    }

    /// How long a client should wait before trying again.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn local(&self) -> &MemoryCache {
        self.local.get_or_init(|| MemoryCache::new(100_000))
    }

    async fn count(&self, key: &str) -> u64 {
        let local = match self.local.get() {
            Some(local) => local.count(key).await.unwrap_or(0),
            None => 0,
        };
        self.shared.count(key).await.unwrap_or(0).max(local)
    }
}

fn account_key(email: &str) -> String {
    format!("login-failures:account:{email}")
}

fn address_key(address: &str) -> String {
    format!("login-failures:address:{address}")
}

//! `[auth.session_cache]`: each replica keeps the sessions it has read in memory, so that an
//! authenticated request does not read its session row from the database every time.
//!
//! ```toml
//! [auth.session_cache]
//! enabled = true
//! capacity = 100000          # sessions kept per replica
//! max_staleness_ms = 250     # revocation reaches every replica within this
//! ```
//! Revocation stays in force everywhere: before serving a session from memory, a replica
//! confirms that the database's session epoch has not moved, at most `max_staleness_ms` ago
//! (docs/architecture.md, "Session cache").

use serde::{Deserialize, Serialize};

/// The longest `max_staleness_ms` accepted: a minute. Beyond it a revoked token would keep
/// working long enough to matter, which is the one thing the cache must not change.
pub const MAX_STALENESS_CEILING_MS: u64 = 60_000;

/// Per-replica session cache settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionCacheSettings {
    /// Whether sessions are kept in memory at all; off, every authenticated request reads its
    /// session row.
    pub enabled: bool,
    /// Most sessions one replica keeps; the least recently used go first.
    pub capacity: u64,
    /// Longest time a replica may serve a session from memory after it last confirmed that
    /// nothing was revoked: the bound within which a log-out, role change or password change
    /// made through any replica takes effect on every other one.
    pub max_staleness_ms: u64,
}

impl Default for SessionCacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            capacity: 100_000,
            max_staleness_ms: 250,
        }
    }
}

impl SessionCacheSettings {
    /// Checks the ranges; the error names the key.
    pub(super) fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.capacity == 0 {
            return Err(("auth.session_cache.capacity", "must be at least 1"));
        }
        if self.max_staleness_ms == 0 || self.max_staleness_ms > MAX_STALENESS_CEILING_MS {
            return Err((
                "auth.session_cache.max_staleness_ms",
                "must be between 1 and 60000",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
// `Jail::expect_with` closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use crate::config::{ConfigError, Settings};
    use figment::Jail;

    fn invalid_key(error: ConfigError) -> &'static str {
        match error {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("expected an invalid key, got {other}"),
        }
    }

    #[test]
    fn defaults_bound_revocation_at_250_ms() {
        Jail::expect_with(|_jail| {
            let settings = Settings::load(None).expect("settings load");
            let cache = &settings.auth.session_cache;
            assert!(cache.enabled);
            assert_eq!(cache.max_staleness_ms, 250);
            assert_eq!(cache.capacity, 100_000);
            Ok(())
        });
    }

    #[test]
    fn keys_come_from_file_and_environment() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "brigade.toml",
                "[auth.session_cache]\nenabled = false\ncapacity = 10\n",
            )?;
            jail.set_env("BRIGADE_AUTH__SESSION_CACHE__MAX_STALENESS_MS", "100");
            let cache = Settings::load(None)
                .expect("settings load")
                .auth
                .session_cache;
            assert!(!cache.enabled);
            assert_eq!(cache.capacity, 10);
            assert_eq!(cache.max_staleness_ms, 100);
            Ok(())
        });
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        for (env, value, key) in [
            (
                "BRIGADE_AUTH__SESSION_CACHE__CAPACITY",
                "0",
                "auth.session_cache.capacity",
            ),
            (
                "BRIGADE_AUTH__SESSION_CACHE__MAX_STALENESS_MS",
                "0",
                "auth.session_cache.max_staleness_ms",
            ),
            (
                "BRIGADE_AUTH__SESSION_CACHE__MAX_STALENESS_MS",
                "60001",
                "auth.session_cache.max_staleness_ms",
            ),
        ] {
            Jail::expect_with(|jail| {
                jail.set_env(env, value);
                assert_eq!(invalid_key(Settings::load(None).unwrap_err()), key);
                Ok(())
            });
        }
    }
}

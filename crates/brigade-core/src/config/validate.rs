//! The range checks of every section, run once at load: each names the key that is wrong.

use super::{ConfigError, DatabaseKind, PaymentProviderKind, Settings, replica};

impl Settings {
    /// Checks ranges that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_server()
            .and_then(|()| self.check_auth_limits())
            .and_then(|()| self.check_storage_and_cache())
            .and_then(|()| self.check_auth_secrets())
            .and_then(|()| self.check_payments_and_faults())
            .and_then(|()| {
                self.backup
                    .check()
                    .map_err(|(key, message)| (key, message.to_string()))
            })
            .and_then(|()| {
                let speed = self.delivery.courier_speed_kmh;
                if speed.is_finite() && speed > 0.0 {
                    Ok(())
                } else {
                    invalid("delivery.courier_speed_kmh", "must be a positive number")
                }
            })
            .map_err(|(key, message)| ConfigError::Invalid { key, message })
    }

    /// `[server]`: sizes, timeouts and the connection limit are positive.
    fn check_server(&self) -> Check {
        let server = &self.server;
        if server.body_limit_bytes == 0 {
            return invalid("server.body_limit_bytes", "must be greater than 0");
        }
        let timeouts = [
            ("server.request_timeout_ms", server.request_timeout_ms),
            (
                "server.header_read_timeout_ms",
                server.header_read_timeout_ms,
            ),
            ("server.idle_timeout_ms", server.idle_timeout_ms),
        ];
        if let Some((key, _)) = timeouts.iter().find(|(_, value)| *value == 0) {
            return invalid(key, "must be greater than 0");
        }
        if server.max_connections == 0 {
            return invalid("server.max_connections", "must be at least 1");
        }
        Ok(())
    }

    /// `[auth]`'s hashing memory and the log-in and sign-up limits are at least 1.
    fn check_auth_limits(&self) -> Check {
        let auth = &self.auth;
        if auth.hash_memory_mib == 0 {
            return invalid("auth.hash_memory_mib", "must be at least 1");
        }
        let limits = [
            (
                "auth.max_failures_per_account",
                auth.max_failures_per_account,
            ),
            (
                "auth.max_failures_per_address",
                auth.max_failures_per_address,
            ),
            (
                "auth.max_failures_per_account_total",
                auth.max_failures_per_account_total,
            ),
            ("auth.max_signups_per_address", auth.max_signups_per_address),
            ("auth.login_window_secs", auth.login_window_secs),
            ("auth.account_window_secs", auth.account_window_secs),
            ("auth.signup_window_secs", auth.signup_window_secs),
        ];
        if let Some((key, _)) = limits.iter().find(|(_, value)| *value == 0) {
            return invalid(key, "must be at least 1");
        }
        Ok(())
    }

    /// `[storage]` (pool, URL, read standby) and `[cache]`'s Redis URL.
    fn check_storage_and_cache(&self) -> Check {
        if self.storage.max_connections == 0 {
            return invalid("storage.max_connections", "must be at least 1");
        }
        if let Some(url) = &self.storage.database_url
            && DatabaseKind::of(url).is_none()
        {
            return invalid(
                "storage.database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            );
        }
        replica::check(&self.storage).map_err(|(key, message)| (key, message.to_string()))?;
        if let Some(url) = &self.cache.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return invalid("cache.redis_url", "must start with redis:// or rediss://");
        }
        Ok(())
    }

    /// `[auth]`'s session cache, signing keys and Argon2 cost.
    fn check_auth_secrets(&self) -> Check {
        let auth = &self.auth;
        auth.session_cache
            .check()
            .map_err(|(key, message)| (key, message.to_string()))?;
        if let Some(key) = auth.keys.iter().find(|key| key.secret.len() < 32) {
            return Err((
                "auth.keys",
                format!("the secret of key {:?} must be at least 32 bytes", key.id),
            ));
        }
        if auth.argon2_memory_kib < 8 || auth.argon2_iterations == 0 {
            return invalid(
                "auth.argon2_memory_kib",
                "argon2 needs at least 8 KiB and 1 iteration",
            );
        }
        Ok(())
    }

    /// `[payments]` (simulated ratios, timeout, Stripe's key and URL) and `[faults]`' ratio.
    fn check_payments_and_faults(&self) -> Check {
        let payments = &self.payments;
        let ratios = [
            (
                "payments.simulated.decline_ratio",
                payments.simulated.decline_ratio,
            ),
            (
                "payments.simulated.error_ratio",
                payments.simulated.error_ratio,
            ),
            ("faults.error_ratio", self.faults.error_ratio),
        ];
        if let Some((key, _)) = ratios
            .iter()
            .find(|(_, value)| !(0.0..=1.0).contains(value))
        {
            return invalid(key, "must be between 0.0 and 1.0");
        }
        if payments.timeout_ms == 0 {
            return invalid("payments.timeout_ms", "must be greater than 0");
        }
        if payments.provider == PaymentProviderKind::Stripe {
            if payments.stripe.secret_key.is_empty() {
                return invalid(
                    "payments.stripe.secret_key",
                    "is required when payments.provider is stripe",
                );
            }
            if !(payments.stripe.base_url.starts_with("http://")
                || payments.stripe.base_url.starts_with("https://"))
            {
                return invalid(
                    "payments.stripe.base_url",
                    "must start with http:// or https://",
                );
            }
        }
        Ok(())
    }
}

/// One section's verdict: the key that is wrong and why.
type Check = Result<(), (&'static str, String)>;

/// The verdict naming `key`.
fn invalid(key: &'static str, message: &str) -> Check {
    Err((key, message.to_owned()))
}

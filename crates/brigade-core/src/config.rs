//! Layered, typed settings shared by every brigade component.
//!
//! Layers, lowest first: built-in defaults < `brigade.toml` (or `--config FILE`) <
//! `BRIGADE_<SECTION>__<KEY>` environment variables < command-line flags. `DATABASE_URL`,
//! `DATABASE_READ_URL` and `REDIS_URL` are honoured as they are, because hosting platforms set
//! them under those names. A bad value stops the process with an error naming the key and
//! where it came from.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
mod auth;
mod backup;
mod cache;
mod log;
mod payments;
mod replica;
mod server;
mod session_cache;
mod storage;
mod validate;

pub use auth::{AuthSettings, SigningKey};
pub use backup::BackupSettings;
pub use cache::CacheSettings;
pub use log::{LogFormat, LogSettings};
pub use payments::{
    PaymentProviderKind, PaymentSettings, SimulatedPaymentSettings, StripeSettings,
};
pub use server::ServerSettings;
pub use session_cache::SessionCacheSettings;
pub use storage::{DatabaseKind, DatabaseUrl, StorageSettings};

/// The file read when no `--config` is given; missing is fine, unreadable or invalid is not.
pub const DEFAULT_CONFIG_FILE: &str = "brigade.toml";

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named with `--config` does not exist (the default file may be absent).
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// A layer holds a value of the wrong type or an unknown key; the message names both.
    #[error("invalid configuration: {0}")]
    Parse(Box<figment::Error>),
    /// A value parsed but is out of range.
    #[error("invalid configuration: {key}: {message}")]
    Invalid {
        /// Dotted key, as written in `brigade.toml` (e.g. `server.body_limit_bytes`).
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        Self::Parse(Box::new(error))
    }
}

/// Every setting, grouped by the part of brigade it steers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The HTTP server of `brigade serve`.
    pub server: ServerSettings,
    /// Where orders live.
    pub storage: StorageSettings,
    /// The shared cache (menus, shop load).
    pub cache: CacheSettings,
    /// Log output.
    pub log: LogSettings,
    /// How delivery time is estimated.
    pub delivery: DeliverySettings,
    /// Accounts, passwords and tokens.
    pub auth: AuthSettings,
    /// How orders are paid for.
    pub payments: PaymentSettings,
    /// Injected failures, for alerting drills.
    pub faults: FaultSettings,
    /// Point-in-time recovery of a PostgreSQL store (pgBackRest).
    pub backup: BackupSettings,
}
/// Delivery estimate settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Average courier speed, used to turn distance into travel time.
    pub courier_speed_kmh: f64,
    /// Time from "ready" to the courier leaving the pass.
    pub handover_seconds: u32,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            courier_speed_kmh: 20.0,
            handover_seconds: 120,
        }
    }
}
/// Failures brigade injects on purpose, so alerts and runbooks can be drilled.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSettings {
    /// Share of requests under `/api/` answered with 500 (0.0–1.0). Health and metrics are
    /// never affected. Admins change it at run time with `PUT /api/v1/admin/faults`.
    pub error_ratio: f64,
}

impl Settings {
    /// The layered figment without command-line flags: defaults, the config file, `BRIGADE_*`
    /// variables, then `DATABASE_URL` / `DATABASE_READ_URL` / `REDIS_URL`.
    ///
    /// `config_file` is `--config`; when `None`, `brigade.toml` in the working directory is read
    /// if it exists.
    pub fn figment(config_file: Option<&Path>) -> Result<Figment, ConfigError> {
        let file = match config_file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.into())),
            Some(path) => Some(path.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|path| path.exists()),
        };
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        Ok(figment
            .merge(
                // Only `SECTION__KEY` variables: `BRIGADE_TEST_POSTGRES_URL` and the like are
                // not settings and must not be mistaken for unknown keys.
                Env::prefixed("BRIGADE_")
                    .filter(|key| key.as_str().contains("__"))
                    .split("__"),
            )
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL"])
                    .map(|key| {
                        if key.as_str().eq_ignore_ascii_case("DATABASE_URL") {
                            "storage.database_url".into()
                        } else if key.as_str().eq_ignore_ascii_case("DATABASE_READ_URL") {
                            "storage.read_url".into()
                        } else {
                            "cache.redis_url".into()
                        }
                    }),
            ))
    }

    /// Extracts and validates settings from a figment (use [`Settings::figment`] and merge
    /// command-line flags on top first).
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = figment.extract()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Loads settings without command-line flags.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(config_file)?)
    }
}

#[cfg(test)]
// `Jail::expect_with` closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests;

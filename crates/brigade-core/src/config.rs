//! Layered, typed settings shared by every brigade component.
//!
//! Layers, lowest first: built-in defaults < `brigade.toml` (or `--config FILE`) <
//! `BRIGADE_<SECTION>__<KEY>` environment variables < command-line flags. `DATABASE_URL`,
//! `DATABASE_READ_URL` and `REDIS_URL` are honoured as they are, because hosting platforms set
//! them under those names. A bad value stops the process with an error naming the key and
//! where it came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod backup;
mod replica;
mod session_cache;

pub use backup::BackupSettings;
pub use session_cache::SessionCacheSettings;

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

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on; port 0 picks a free port (printed in the `listening` log line).
    pub listen: SocketAddr,
    /// Largest accepted request body; larger bodies get 413 before any handler runs.
    pub body_limit_bytes: usize,
    /// A request still running after this long is answered with 503, so a stuck database
    /// cannot pin connections forever.
    pub request_timeout_ms: u64,
    /// After SIGTERM, how long readiness reports 503 before the listener closes, so balancers
    /// notice and stop sending new requests.
    pub drain_delay_ms: u64,
    /// After the listener closes, how long in-flight requests may take before the process exits.
    pub shutdown_timeout_ms: u64,
    /// A client must send a whole request head within this time, so slow or half-open
    /// connections cannot hold sockets and buffers forever.
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with no request in flight is closed after this long.
    pub idle_timeout_ms: u64,
    /// Most client connections served at once; more wait in the kernel's accept queue, so
    /// memory stays bounded however many sockets are opened.
    pub max_connections: usize,
    /// Proxies (CIDR blocks, e.g. `10.0.0.0/8`) whose `X-Forwarded-For` is believed when
    /// naming the client for login and sign-up limits. Empty: the peer address is the client.
    /// The rule is the balancer's: walk `X-Forwarded-For` from the right, skipping trusted
    /// addresses; the first untrusted one is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            drain_delay_ms: 1_000,
            shutdown_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ServerSettings {
    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    /// `drain_delay_ms` as a duration.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.drain_delay_ms)
    }
    /// `shutdown_timeout_ms` as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
    /// `header_read_timeout_ms` as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
    /// `idle_timeout_ms` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

/// Storage settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Directory holding the embedded SQLite database (`brigade.db`) when no URL is given.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; overrides `data_dir`. Also read from `DATABASE_URL`.
    pub database_url: Option<String>,
    /// Largest number of pooled database connections per process.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before failing with 503.
    pub acquire_timeout_ms: u64,
    /// How long SQLite waits on a lock held by another process before giving up.
    pub busy_timeout_ms: u64,
    /// `postgres://…` of a streaming standby of `database_url`; reads that tolerate staleness
    /// go there (see `brigade_store::replica`). Also read from `DATABASE_READ_URL`.
    pub read_url: Option<String>,
    /// A standby further behind the primary than this is skipped; reads go to the primary.
    pub read_max_lag_ms: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./brigade-data"),
            database_url: None,
            max_connections: 10,
            acquire_timeout_ms: 3_000,
            busy_timeout_ms: 5_000,
            read_url: None,
            read_max_lag_ms: 5_000,
        }
    }
}

impl StorageSettings {
    /// The URL to connect to: `database_url`, or the SQLite file under `data_dir`.
    pub fn effective_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("brigade.db").display()),
        }
    }

    /// The engine of [`effective_url`](Self::effective_url).
    pub fn database_kind(&self) -> Option<DatabaseKind> {
        DatabaseKind::of(&self.effective_url())
    }
}

/// The database engine a URL names. The one place brigade tells URLs apart, so every process
/// agrees on which store it talks to (`postgres://` and `postgresql://` are both PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:…`: the embedded store.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

impl DatabaseKind {
    /// The engine `url` names; `None` for any other scheme.
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }

    /// Whether `url` names a PostgreSQL server.
    pub fn is_postgres(url: &str) -> bool {
        Self::of(url) == Some(Self::Postgres)
    }
}

/// Cache settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Redis URL for a cache shared by all replicas; without it each process caches in memory.
    /// Also read from `REDIS_URL`.
    pub redis_url: Option<String>,
    /// How long a menu stays cached. Writes through this process invalidate at once; other
    /// processes with an in-memory cache may serve the old menu for up to this long.
    pub menu_ttl_ms: u64,
    /// How long a shop's kitchen load (used for ETAs) stays cached.
    pub load_ttl_ms: u64,
    /// Longest wait for Redis before treating the cache as a miss, so a slow or dead Redis
    /// costs milliseconds, never an error.
    pub redis_timeout_ms: u64,
    /// Most entries the in-memory cache holds.
    pub max_entries: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            menu_ttl_ms: 10_000,
            load_ttl_ms: 1_000,
            redis_timeout_ms: 100,
            max_entries: 10_000,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty text on a terminal, JSON lines otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Pretty,
}

/// Log settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directives, e.g. `info` or `info,brigade_store=debug`.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            filter: "info".to_owned(),
        }
    }
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

/// Which payment provider charges orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentProviderKind {
    /// In-process provider with configurable declines, errors and latency; no money moves.
    Simulated,
    /// Stripe's PaymentIntents API (or anything speaking it at `stripe.base_url`).
    Stripe,
}

/// Payment settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    /// The provider that authorises, captures and voids.
    pub provider: PaymentProviderKind,
    /// Longest one provider operation may take, retries included; past it the payment counts
    /// as timed out and the order as `payment_failed`.
    pub timeout_ms: u64,
    /// Consecutive provider failures (errors, timeouts) that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker answers at once without calling the provider, before letting
    /// one trial call through.
    pub breaker_open_ms: u64,
    /// A payment still unsettled this long after it started (its replica died mid-call, or its
    /// answer could not be recorded) is given up by the background reconciler on any replica:
    /// its order ends `payment_failed` and any hold is released, since its client was never
    /// told the order was placed. A retry with the order's `Idempotency-Key` before then
    /// settles it instead.
    pub reconcile_after_secs: u64,
    /// The simulated provider.
    pub simulated: SimulatedPaymentSettings,
    /// The Stripe provider.
    pub stripe: StripeSettings,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            provider: PaymentProviderKind::Simulated,
            timeout_ms: 5_000,
            breaker_failures: 5,
            breaker_open_ms: 30_000,
            reconcile_after_secs: 30,
            simulated: SimulatedPaymentSettings::default(),
            stripe: StripeSettings::default(),
        }
    }
}

impl PaymentSettings {
    /// `timeout_ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The simulated provider: outcomes drawn from the payment's idempotency key and `seed`, so the
/// same payment always gets the same answer (as from a real provider) and drills repeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatedPaymentSettings {
    /// Share of authorisations declined (0.0–1.0).
    pub decline_ratio: f64,
    /// Share of calls that fail as a provider error (0.0–1.0).
    pub error_ratio: f64,
    /// Delay added to every call.
    pub latency_ms: u64,
    /// Seed of the outcome draw.
    pub seed: u64,
}

impl Default for SimulatedPaymentSettings {
    fn default() -> Self {
        Self {
            decline_ratio: 0.0,
            error_ratio: 0.0,
            latency_ms: 0,
            seed: 0,
        }
    }
}

/// Stripe settings. The secret key is never logged.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StripeSettings {
    /// API base URL; a local server speaking the same endpoints works for tests and drills.
    pub base_url: String,
    /// Secret API key (`sk_...`).
    pub secret_key: String,
    /// Timeout of one HTTP attempt.
    pub request_timeout_ms: u64,
    /// Retries of a call that failed without an answer or with a 5xx/429 (every call carries
    /// an idempotency key, so a retry never charges twice).
    pub max_retries: u32,
}

impl Default for StripeSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.stripe.com".to_owned(),
            secret_key: String::new(),
            request_timeout_ms: 2_000,
            max_retries: 2,
        }
    }
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("base_url", &self.base_url)
            .field("secret_key", &"***")
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_retries", &self.max_retries)
            .finish()
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

#[cfg(test)]
// `Jail::expect_with` closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_apply_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "brigade.toml",
                "[server]\nlisten = \"127.0.0.1:4000\"\nbody_limit_bytes = 100\n",
            )?;
            jail.set_env("BRIGADE_SERVER__BODY_LIMIT_BYTES", "200");
            jail.set_env("BRIGADE_TEST_POSTGRES_URL", "postgres://ignored");
            jail.set_env("DATABASE_URL", "postgres://db/test");
            jail.set_env("REDIS_URL", "redis://cache");
            let settings = Settings::load(None).expect("settings load");
            assert_eq!(settings.server.listen.port(), 4000);
            assert_eq!(settings.server.body_limit_bytes, 200);
            assert_eq!(
                settings.storage.database_url.as_deref(),
                Some("postgres://db/test")
            );
            assert_eq!(settings.cache.redis_url.as_deref(), Some("redis://cache"));
            let flags = Serialized::default("server.body_limit_bytes", 300);
            let settings =
                Settings::from_figment(Settings::figment(None).unwrap().merge(flags)).unwrap();
            assert_eq!(settings.server.body_limit_bytes, 300);
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("BRIGADE_SERVER__LISTEN", "not-an-address");
            let error = Settings::load(None).unwrap_err().to_string().to_lowercase();
            assert!(error.contains("server.listen"), "{error}");
            assert!(error.contains("brigade_"), "{error}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("brigade.toml", "[server]\nlisen = \"x\"\n")?;
            let error = Settings::load(None).unwrap_err().to_string();
            assert!(error.contains("lisen"), "{error}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("BRIGADE_STORAGE__MAX_CONNECTIONS", "0");
            let error = Settings::load(None).unwrap_err().to_string();
            assert!(error.contains("storage.max_connections"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn every_section_names_its_bad_key() {
        let key_of = |change: &dyn Fn(&mut Settings)| {
            let mut settings = Settings::default();
            change(&mut settings);
            match settings.validate() {
                Err(ConfigError::Invalid { key, .. }) => key,
                other => panic!("not refused: {other:?}"),
            }
        };
        assert!(Settings::default().validate().is_ok());
        assert_eq!(
            key_of(&|s| s.server.idle_timeout_ms = 0),
            "server.idle_timeout_ms"
        );
        assert_eq!(
            key_of(&|s| s.auth.signup_window_secs = 0),
            "auth.signup_window_secs"
        );
        assert_eq!(
            key_of(&|s| s.cache.redis_url = Some("http://x".into())),
            "cache.redis_url"
        );
        assert_eq!(
            key_of(&|s| s.auth.argon2_iterations = 0),
            "auth.argon2_memory_kib"
        );
        assert_eq!(
            key_of(&|s| s.faults.error_ratio = f64::NAN),
            "faults.error_ratio"
        );
        assert_eq!(
            key_of(&|s| s.payments.provider = PaymentProviderKind::Stripe),
            "payments.stripe.secret_key"
        );
        assert_eq!(
            key_of(&|s| s.delivery.courier_speed_kmh = 0.0),
            "delivery.courier_speed_kmh"
        );
    }

    #[test]
    fn a_named_config_file_must_exist() {
        let error = Settings::load(Some(Path::new("/nonexistent/brigade.toml"))).unwrap_err();
        assert!(matches!(error, ConfigError::MissingFile(_)));
    }

    #[test]
    fn sqlite_file_lives_in_the_data_dir() {
        let storage = StorageSettings {
            data_dir: PathBuf::from("/var/lib/brigade"),
            ..StorageSettings::default()
        };
        assert_eq!(
            storage.effective_url(),
            "sqlite:///var/lib/brigade/brigade.db"
        );
    }
}

//! `balance.toml`: the balancer's typed configuration, parsed strictly and validated once.
//!
//! Every table rejects unknown keys, so a typo (`helth = …`) is an error naming the key and its
//! line instead of a silently ignored setting. Semantic checks (a route naming a missing pool, a
//! weight of 0) name the key path, e.g. `pools[1].backends[0].weight`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::rate_limit::RateLimitConfig;
use crate::tls::TlsConfig;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown or mistyped key (the message names line and key).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with line, column and key.
        message: String,
    },
    /// A value is out of range or refers to something that does not exist.
    #[error("{key}: {message}")]
    Invalid {
        /// Key path, e.g. `pools[0].backends[1].weight`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// Shortest accepted admin token: a guessable token would hand the backend set (add, remove,
/// drain) to anyone who can reach the admin listener.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// The whole balancer configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Public listener (clients connect here). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Admin listener: health, metrics and the admin API.
    pub admin: AdminConfig,
    /// Worker threads, each with its own runtime and `SO_REUSEPORT` listener; 0 = one per core.
    pub workers: usize,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Size and count limits.
    pub limits: Limits,
    /// Retry policy and budget.
    pub retry: RetryConfig,
    /// Backend pools.
    pub pools: Vec<PoolConfig>,
    /// Routing rules; the first match wins and the last rule is the default.
    pub routes: Vec<RouteConfig>,
    /// Proxies (CIDR ranges) whose `X-Forwarded-For` names the client, e.g. `["10.0.0.0/8"]`;
    /// empty = the connection's peer is the client. Loopback is not trusted unless listed.
    pub trusted_proxies: Vec<IpNet>,
    /// Per-client rate limits; the first rule matching a request applies.
    pub rate_limits: Vec<RateLimitConfig>,
    /// TLS on the public listener; absent = plain HTTP.
    pub tls: Option<TlsConfig>,
    /// The HTTP core serving client connections.
    pub server: ServerConfig,
}

/// `[server]`: how client connections are served.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `fast` (default): the single-task httparse core for plain HTTP/1.1 connections;
    /// `hyper`: hyper's HTTP/1.1 server and client for every connection.
    pub core: Core,
}

/// The HTTP core of plain-HTTP client connections.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Core {
    /// One task per connection, httparse, per-thread upstream pools (`fast`).
    #[default]
    Fast,
    /// hyper's server and client connections (`hyper`).
    Hyper,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin: AdminConfig::default(),
            workers: 0,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            retry: RetryConfig::default(),
            pools: Vec::new(),
            routes: Vec::new(),
            trusted_proxies: Vec::new(),
            rate_limits: Vec::new(),
            tls: None,
            server: ServerConfig::default(),
        }
    }
}

/// The admin listener: `admin = "127.0.0.1:8082"` or a table `[admin] listen, token`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AdminConfig {
    /// Where the admin API listens; loopback by default.
    pub listen: SocketAddr,
    /// Bearer token required on every admin call; mandatory when `listen` is not loopback.
    #[serde(skip_serializing)]
    pub token: Option<String>,
    /// A file holding the token (a mounted secret), so the token need not be written in
    /// balance.toml; relative to the file's folder, read again on every reload.
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            token: None,
            token_file: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminTable {
    #[serde(default = "default_admin_listen")]
    listen: SocketAddr,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
}

fn default_admin_listen() -> SocketAddr {
    AdminConfig::default().listen
}

impl<'de> Deserialize<'de> for AdminConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AdminVisitor;
        impl<'de> Visitor<'de> for AdminVisitor {
            type Value = AdminConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an address like \"127.0.0.1:8082\" or a table with listen and token or token_file",
                )
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<AdminConfig, E> {
                let listen = value.parse().map_err(E::custom)?;
                Ok(AdminConfig {
                    listen,
                    ..AdminConfig::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AdminConfig, A::Error> {
                let table = AdminTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(AdminConfig {
                    listen: table.listen,
                    token: table.token,
                    token_file: table.token_file,
                })
            }
        }
        deserializer.deserialize_any(AdminVisitor)
    }
}

/// Timeouts, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// Opening a TCP connection to a backend.
    pub connect_ms: u64,
    /// A client must send the whole request head within this time (slow clients cannot hold
    /// connections forever).
    pub header_read_ms: u64,
    /// A request body small enough to be kept for retries must arrive whole within this time,
    /// counted from the end of the head; past it the answer is 408 (slow clients cannot hold a
    /// request with half a body). Larger bodies stream and fall under `upstream_response_ms`.
    pub body_read_ms: u64,
    /// From sending a request upstream to its response head; past it the answer is 504.
    pub upstream_response_ms: u64,
    /// A client connection with no request in flight is closed after this long.
    pub idle_ms: u64,
    /// A pooled upstream connection unused this long is closed rather than reused (kept below
    /// the backends' own keep-alive timeout so a reused connection is rarely stale).
    pub upstream_idle_ms: u64,
    /// On SIGTERM, in-flight requests get this long to finish before the process exits.
    pub shutdown_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect_ms: 1_000,
            header_read_ms: 10_000,
            body_read_ms: 30_000,
            upstream_response_ms: 30_000,
            idle_ms: 60_000,
            upstream_idle_ms: 20_000,
            shutdown_ms: 30_000,
        }
    }
}

/// Size and count limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request head (request line and headers) in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// Most header fields in a request head; more gets the HTTP parser's bare 431. Up to 100
    /// the parser works on the stack; a larger limit costs two heap buffers per request.
    pub max_headers: usize,
    /// Largest request body in bytes; larger gets 413.
    pub max_body_bytes: u64,
    /// Most client connections open at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Bodies up to this size are kept so that a failed attempt can be replayed on another
    /// backend; larger bodies stream through and are retried only when no byte was sent.
    pub retry_buffer_bytes: u64,
    /// Idle upstream connections kept per backend.
    pub max_idle_per_backend: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 10 * 1024 * 1024,
            max_connections: 10_000,
            retry_buffer_bytes: 64 * 1024,
            max_idle_per_backend: 512,
        }
    }
}

/// Retry policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Retries may add at most this fraction of the pool's request rate.
    pub budget_ratio: f64,
    /// Retries always allowed per second, so a quiet pool can still retry.
    pub min_per_sec: f64,
    /// No new attempt starts later than this after the first one began: slow failures
    /// (a locked database answering 503 after its busy timeout) cannot add up to a hang.
    pub deadline_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            budget_ratio: 0.2,
            min_per_sec: 10.0,
            deadline_ms: 10_000,
        }
    }
}

/// How a pool picks a backend.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// In turn (weighted).
    RoundRobin,
    /// Power of two choices over in-flight requests per weight.
    LeastRequests,
    /// Power of two choices over peak-EWMA latency × (in-flight + 1): the shortest ETA.
    #[default]
    PeakEwma,
    /// Consistent hashing of a request key with bounded load.
    ConsistentHash,
}

impl Algorithm {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastRequests => "least_requests",
            Self::PeakEwma => "peak_ewma",
            Self::ConsistentHash => "consistent_hash",
        }
    }

    /// Parses a configuration name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::RoundRobin,
            Self::LeastRequests,
            Self::PeakEwma,
            Self::ConsistentHash,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }
}

/// Where the consistent-hash key comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashKey {
    /// A request header, e.g. `{ header = "x-shop-id" }`.
    Header(String),
    /// A cookie, e.g. `{ cookie = "shop" }`.
    Cookie(String),
    /// A path segment counted from 0, e.g. `{ path_segment = 3 }` for `/api/v1/shops/{id}`.
    PathSegment(usize),
}

/// Active health checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Path requested with GET; 2xx or 3xx counts as a pass.
    pub path: String,
    /// Time between checks of one backend.
    pub interval_ms: u64,
    /// A check slower than this fails.
    pub timeout_ms: u64,
    /// Consecutive passes that make an unhealthy backend healthy.
    pub rise: u32,
    /// Consecutive failures that make a healthy backend unhealthy.
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            path: "/health/ready".to_owned(),
            interval_ms: 2_000,
            timeout_ms: 1_000,
            rise: 2,
            fall: 3,
        }
    }
}

/// Passive outlier ejection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierConfig {
    /// Consecutive failures (connect errors, 5xx, timeouts) that eject a backend; 0 disables.
    pub consecutive_failures: u32,
    /// First ejection's length; each repeat ejection doubles it.
    pub base_ejection_ms: u64,
    /// Longest ejection.
    pub max_ejection_ms: u64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection_ms: 5_000,
            max_ejection_ms: 300_000,
        }
    }
}

/// One pool of interchangeable backends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Name used by routes, the admin API and metric labels.
    pub name: String,
    /// Selection algorithm.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Key for `consistent_hash`; requests without it fall back to least requests.
    #[serde(default)]
    pub hash_key: Option<HashKey>,
    /// How far above the average load (in-flight) a hashed backend may go before its keys
    /// spill to the next node on the ring.
    #[serde(default = "default_bounded_load")]
    pub bounded_load: f64,
    /// Active health checks; none means passive ejection only.
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// Passive outlier ejection.
    #[serde(default)]
    pub outlier: OutlierConfig,
    /// A backend that turns healthy ramps its share up over this window; 0 = at once.
    #[serde(default)]
    pub slow_start_ms: u64,
    /// When fewer than this fraction of primaries is usable (and no backup is), traffic goes to
    /// every primary anyway, so failing health checks cannot empty the pool; 0 disables.
    #[serde(default = "default_panic_threshold")]
    pub panic_threshold: f64,
    /// The backends.
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
}

fn default_bounded_load() -> f64 {
    1.25
}

fn default_panic_threshold() -> f64 {
    0.5
}

/// One backend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `ip:port`.
    pub address: SocketAddr,
    /// Relative share of traffic.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Receives traffic only while no primary of the pool is usable.
    #[serde(default)]
    pub backup: bool,
}

fn default_weight() -> u32 {
    1
}

/// A header a route matches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    pub name: String,
    /// Exact value; absent = the header only has to be present.
    #[serde(default)]
    pub value: Option<String>,
}

/// A routing rule: every condition given must hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Host (without port), case-insensitive.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix, e.g. `/api/v1/kitchen`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// A header condition.
    #[serde(default)]
    pub header: Option<HeaderMatch>,
    /// The pool that serves matching requests.
    pub pool: String,
}

impl Config {
    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::parse_unchecked(&text, &path.display().to_string())?;
        // Paths in the file are relative to the file's folder, wherever the balancer was
        // started from.
        let folder = path.parent().unwrap_or(Path::new(""));
        if let Some(tls) = config.tls.as_mut() {
            tls.cert = folder.join(&tls.cert);
            tls.key = folder.join(&tls.key);
        }
        config.read_token_file(folder)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates TOML text; `origin` names it in errors, and a relative
    /// `admin.token_file` is read from the working directory.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut config = Self::parse_unchecked(text, origin)?;
        config.read_token_file(Path::new(""))?;
        config.validate()?;
        Ok(config)
    }

    fn parse_unchecked(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: origin.to_owned(),
            message: error.to_string().trim_end().replace('\n', " "),
        })
    }

    /// Puts the content of `admin.token_file` (trimmed: files often end in a newline) into
    /// `admin.token`.
    fn read_token_file(&mut self, folder: &Path) -> Result<(), ConfigError> {
        let Some(file) = self.admin.token_file.as_mut() else {
            return Ok(());
        };
        if self.admin.token.is_some() {
            return Err(invalid(
                "admin.token_file",
                "give admin.token or admin.token_file, not both",
            ));
        }
        *file = folder.join(&*file);
        let text = std::fs::read_to_string(&*file).map_err(|error| {
            invalid(
                "admin.token_file",
                format!("cannot read {}: {error}", file.display()),
            )
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(invalid(
                "admin.token_file",
                format!("{} is empty", file.display()),
            ));
        }
        self.admin.token = Some(token.to_owned());
        Ok(())
    }

    /// Checks values and references.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_limits()?;
        self.validate_listeners()?;
        self.validate_pools()?;
        self.validate_rate_limits()?;
        self.validate_routes()
    }

    /// Timeouts, limits and retry settings in range.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let t = &self.timeouts;
        for (key, value) in [
            ("timeouts.connect_ms", t.connect_ms),
            ("timeouts.header_read_ms", t.header_read_ms),
            ("timeouts.body_read_ms", t.body_read_ms),
            ("timeouts.upstream_response_ms", t.upstream_response_ms),
            ("timeouts.idle_ms", t.idle_ms),
            ("timeouts.upstream_idle_ms", t.upstream_idle_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.limits.max_header_bytes < 256 {
            return Err(invalid("limits.max_header_bytes", "must be at least 256"));
        }
        if !(8..=1000).contains(&self.limits.max_headers) {
            return Err(invalid("limits.max_headers", "must be between 8 and 1000"));
        }
        if self.limits.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        if self.retry.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "must be at least 1"));
        }
        if !(0.0..=10.0).contains(&self.retry.budget_ratio) {
            return Err(invalid("retry.budget_ratio", "must be between 0 and 10"));
        }
        if !(0.0..=1e6).contains(&self.retry.min_per_sec) {
            return Err(invalid(
                "retry.min_per_sec",
                "must be between 0 and 1000000",
            ));
        }
        Ok(())
    }

    /// The admin token where the admin listener needs one, and a redirect listener apart
    /// from the public one.
    fn validate_listeners(&self) -> Result<(), ConfigError> {
        if !self.admin.listen.ip().is_loopback() && self.admin.token.is_none() {
            return Err(invalid(
                "admin.token",
                "is required (or admin.token_file) when the admin listener is not on loopback",
            ));
        }
        if let Some(token) = &self.admin.token
            && token.len() < MIN_ADMIN_TOKEN_BYTES
        {
            return Err(invalid(
                "admin.token",
                format!(
                    "must be at least {MIN_ADMIN_TOKEN_BYTES} bytes (it has {})",
                    token.len()
                ),
            ));
        }
        if let Some(tls) = &self.tls
            && tls.redirect_listen == Some(self.listen)
            && self.listen.port() != 0
        {
            return Err(invalid("tls.redirect_listen", "must differ from listen"));
        }
        Ok(())
    }

    /// At least one pool, each valid, no name twice.
    fn validate_pools(&self) -> Result<(), ConfigError> {
        if self.pools.is_empty() {
            return Err(invalid("pools", "at least one pool is required"));
        }
        for (i, pool) in self.pools.iter().enumerate() {
            pool.validate(&format!("pools[{i}]"))?;
            if self.pools[..i].iter().any(|p| p.name == pool.name) {
                return Err(invalid(
                    format!("pools[{i}].name"),
                    format!("pool {:?} is defined twice", pool.name),
                ));
            }
        }
        Ok(())
    }

    /// Each rate-limit rule valid, no name twice.
    fn validate_rate_limits(&self) -> Result<(), ConfigError> {
        for (i, rule) in self.rate_limits.iter().enumerate() {
            rule.validate(&format!("rate_limits[{i}]"))
                .map_err(|(key, message)| invalid(key, message))?;
            if self.rate_limits[..i].iter().any(|r| r.name == rule.name) {
                return Err(invalid(
                    format!("rate_limits[{i}].name"),
                    format!("rule {:?} is defined twice", rule.name),
                ));
            }
        }
        Ok(())
    }

    /// Each route names an existing pool, a path prefix from the root and a valid header name.
    fn validate_routes(&self) -> Result<(), ConfigError> {
        for (i, route) in self.routes.iter().enumerate() {
            if !self.pools.iter().any(|p| p.name == route.pool) {
                return Err(invalid(
                    format!("routes[{i}].pool"),
                    format!("no pool is named {:?}", route.pool),
                ));
            }
            if let Some(prefix) = &route.path_prefix
                && !prefix.starts_with('/')
            {
                return Err(invalid(
                    format!("routes[{i}].path_prefix"),
                    "must start with /",
                ));
            }
            if let Some(header) = &route.header
                && http::HeaderName::from_bytes(header.name.as_bytes()).is_err()
            {
                return Err(invalid(
                    format!("routes[{i}].header.name"),
                    "is not a valid header name",
                ));
            }
        }
        Ok(())
    }
}

impl PoolConfig {
    /// A pool with these backends and defaults for everything else.
    pub fn new(name: &str, algorithm: Algorithm, backends: Vec<BackendConfig>) -> Self {
        Self {
            name: name.to_owned(),
            algorithm,
            hash_key: None,
            bounded_load: default_bounded_load(),
            health: None,
            outlier: OutlierConfig::default(),
            slow_start_ms: 0,
            panic_threshold: default_panic_threshold(),
            backends,
        }
    }

    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(invalid(
                format!("{key}.name"),
                "must be 1-64 letters, digits, - or _",
            ));
        }
        if self.algorithm == Algorithm::ConsistentHash && self.hash_key.is_none() {
            return Err(invalid(
                format!("{key}.hash_key"),
                "is required by algorithm consistent_hash",
            ));
        }
        // NaN (TOML's `nan`) compares false with everything: it would cap every backend at 0.
        if self.bounded_load.is_nan() || self.bounded_load < 1.0 {
            return Err(invalid(format!("{key}.bounded_load"), "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.panic_threshold) {
            return Err(invalid(
                format!("{key}.panic_threshold"),
                "must be between 0 and 1",
            ));
        }
        if let Some(health) = &self.health {
            if !health.path.starts_with('/') {
                return Err(invalid(format!("{key}.health.path"), "must start with /"));
            }
            if health.interval_ms == 0 || health.timeout_ms == 0 {
                return Err(invalid(
                    format!("{key}.health"),
                    "interval_ms and timeout_ms must be at least 1",
                ));
            }
            if health.rise == 0 || health.fall == 0 {
                return Err(invalid(
                    format!("{key}.health"),
                    "rise and fall must be at least 1",
                ));
            }
        }
        for (j, backend) in self.backends.iter().enumerate() {
            if backend.weight == 0 || backend.weight > 1000 {
                return Err(invalid(
                    format!("{key}.backends[{j}].weight"),
                    "must be between 1 and 1000",
                ));
            }
            if self.backends[..j]
                .iter()
                .any(|b| b.address == backend.address)
            {
                return Err(invalid(
                    format!("{key}.backends[{j}].address"),
                    format!("{} is listed twice", backend.address),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! The balancer's shared state: the routing table (pools and rules) behind an `ArcSwap`, so a
//! reload publishes a new table while requests in flight finish on the one they loaded.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};

use crate::config::{Config, ConfigError, RouteConfig};
use crate::pool::Pool;
use crate::rate_limit::Limiter;
use crate::tls::{CertStore, TlsError};
use crate::view::RequestView;

/// A compiled routing rule.
#[derive(Debug)]
struct Route {
    host: Option<String>,
    path_prefix: Option<String>,
    header: Option<(HeaderName, Option<HeaderValue>)>,
    pool: usize,
}

impl Route {
    fn compile(config: &RouteConfig, pools: &[Arc<Pool>]) -> Option<Self> {
        let header = match &config.header {
            Some(h) => Some((
                HeaderName::from_bytes(h.name.as_bytes()).ok()?,
                match &h.value {
                    Some(v) => Some(HeaderValue::from_str(v).ok()?),
                    None => None,
                },
            )),
            None => None,
        };
        Some(Self {
            host: config.host.as_ref().map(|h| h.to_ascii_lowercase()),
            path_prefix: config.path_prefix.clone(),
            header,
            pool: pools.iter().position(|p| p.name() == config.pool)?,
        })
    }

    fn matches(&self, request: &impl RequestView, host: Option<&str>) -> bool {
        if let Some(want) = &self.host
            && !host.is_some_and(|h| h.eq_ignore_ascii_case(want))
        {
            return false;
        }
        if let Some(prefix) = &self.path_prefix
            && !request.path().starts_with(prefix.as_str())
        {
            return false;
        }
        if let Some((name, value)) = &self.header {
            match (request.header(name.as_str()), value) {
                (None, _) => return false,
                (Some(got), Some(want)) if got != want.as_bytes() => return false,
                _ => {}
            }
        }
        true
    }
}

/// Pools, rules and the settings they were loaded with.
#[derive(Debug)]
pub struct Table {
    /// The configuration this table was built from.
    pub config: Config,
    /// The pools, in configuration order.
    pub pools: Vec<Arc<Pool>>,
    routes: Vec<Route>,
    /// Rate limits; kept across a reload when `rate_limits` and `trusted_proxies` are unchanged,
    /// so a reload does not hand every client a fresh burst.
    pub limiter: Arc<Limiter>,
}

impl Table {
    /// Builds a table, reusing the pools (and so the backends) of `previous` by name.
    pub fn new(config: Config, previous: Option<&Table>) -> Self {
        let pools: Vec<Arc<Pool>> = config
            .pools
            .iter()
            .map(|p| {
                let old = previous.and_then(|t| t.pool(&p.name));
                Arc::new(Pool::new(p.clone(), &config.retry, old.map(|p| &**p)))
            })
            .collect();
        let routes = config
            .routes
            .iter()
            .filter_map(|r| Route::compile(r, &pools))
            .collect();
        let limiter = match previous {
            Some(old)
                if old.config.rate_limits == config.rate_limits
                    && old.config.trusted_proxies == config.trusted_proxies =>
            {
                Arc::clone(&old.limiter)
            }
            _ => Arc::new(Limiter::new(&config.rate_limits, &config.trusted_proxies)),
        };
        for rule in limiter.rules() {
            for pool in &pools {
                crate::metrics::rate_limited(&rule.config.name, pool.name()).increment(0);
            }
        }
        Self {
            config,
            pools,
            routes,
            limiter,
        }
    }

    /// The pool with this name.
    pub fn pool(&self, name: &str) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| p.name() == name)
    }

    /// The pool for a request: the first matching rule's, else the last rule's, else the
    /// first pool's.
    pub fn route(&self, request: &impl RequestView) -> &Arc<Pool> {
        if self.routes.is_empty() {
            return &self.pools[0];
        }
        let host = request.host();
        let index = self
            .routes
            .iter()
            .find(|r| r.matches(request, host))
            .or(self.routes.last())
            .map_or(0, |r| r.pool);
        &self.pools[index]
    }
}

/// Everything the listeners, health checks and admin API share.
#[derive(Debug)]
pub struct State {
    table: ArcSwap<Table>,
    /// The file reloads read; `None` when configured by flags.
    pub config_path: Option<PathBuf>,
    ready: AtomicBool,
    shutting_down: AtomicBool,
    reload_lock: Mutex<()>,
    /// The served certificate when the public listener speaks TLS.
    tls: OnceLock<Arc<CertStore>>,
}

impl State {
    /// State for a validated configuration.
    pub fn new(config: Config, config_path: Option<PathBuf>) -> Self {
        Self {
            table: ArcSwap::from_pointee(Table::new(config, None)),
            config_path,
            ready: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            reload_lock: Mutex::new(()),
            tls: OnceLock::new(),
        }
    }

    /// The current table.
    pub fn table(&self) -> arc_swap::Guard<Arc<Table>> {
        self.table.load()
    }

    /// The current table, owned.
    pub fn table_full(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// Re-reads the configuration file and publishes the new table. Listeners and worker
    /// count cannot change without a restart; a change there is logged and ignored.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.config_path else {
            return Err(ConfigError::Invalid {
                key: "--config".into(),
                message: "the balancer was started with flags, there is no file to reload".into(),
            });
        };
        let _guard = self.reload_lock.lock();
        let mut config = Config::load(path)?;
        let current = self.table.load_full();
        if config.listen != current.config.listen
            || config.admin.listen != current.config.admin.listen
            || config.workers != current.config.workers
        {
            tracing::warn!(
                "listen, admin and workers take effect only on restart; keeping the current ones"
            );
            config.listen = current.config.listen;
            config.admin.listen = current.config.admin.listen;
            config.workers = current.config.workers;
        }
        // The certificate files are re-read (below); which files, and whether TLS is on at
        // all, is fixed at start.
        config.tls = current.config.tls.clone();
        let table = Table::new(config, Some(&current));
        // Active checks of new pools run at once; readiness does not regress.
        self.table.store(Arc::new(table));
        tracing::info!(path = %path.display(), "configuration reloaded");
        Ok(())
    }

    /// Serves this certificate store's pair on the public listener (once, at start).
    pub fn set_tls(&self, store: Arc<CertStore>) {
        let _ = self.tls.set(store);
    }

    /// Re-reads the certificate and key; `Ok(false)` when TLS is off.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        match self.tls.get() {
            Some(store) => store.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// Whether the first health-check round has run.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.is_shutting_down()
    }

    /// Marks the first health-check round as done.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Begins shutdown (readiness fails from now on).
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_route_wins_and_last_is_the_default() {
        let config = Config::parse(
            r#"
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"
[[pools]]
name = "orders"
[[pools]]
name = "kitchen"
[[pools]]
name = "beta"
[[routes]]
header = { name = "x-beta", value = "1" }
pool = "beta"
[[routes]]
host = "kitchen.example"
pool = "kitchen"
[[routes]]
path_prefix = "/api/v1/kitchen"
pool = "kitchen"
[[routes]]
pool = "orders"
"#,
            "t",
        )
        .unwrap();
        let table = Table::new(config, None);
        let route = |uri: &str, headers: &[(&str, &str)]| {
            let mut builder = http::Request::builder().uri(uri);
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            let (parts, ()) = builder.body(()).unwrap().into_parts();
            table.route(&parts).name().to_owned()
        };
        assert_eq!(route("/api/v1/kitchen/tickets", &[]), "kitchen");
        assert_eq!(route("/api/v1/orders", &[]), "orders");
        assert_eq!(route("/", &[("host", "Kitchen.Example:8080")]), "kitchen");
        assert_eq!(route("/api/v1/kitchen", &[("x-beta", "1")]), "beta");
        assert_eq!(route("/api/v1/kitchen", &[("x-beta", "2")]), "kitchen");
    }
}

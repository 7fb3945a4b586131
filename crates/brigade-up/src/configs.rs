//! The configs `brigade up` writes for its children (`<data-dir>/up/balance.toml` and
//! `watch.toml`), built as the balancer's and watch's own config types and rendered with
//! `toml::to_string`: what the child parses is by construction what the supervisor meant.
//! Every path in them is absolute (the data directory was made absolute at start), so the
//! child's own rule for relative paths never comes into play.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use brigade_balance::config::{
    BackendConfig, Config as BalanceConfig, HealthConfig, PoolConfig, RouteConfig,
};
use brigade_balance::tls::TlsConfig;
use brigade_watch::config::{
    BalanceConfig as WatchBalanceTarget, EvaluationConfig, ScrapeConfig, StaticConfig, WatchConfig,
};
use brigade_watch::duration::ConfigDuration;

use crate::api::ChildStatus;
use crate::child_state::ChildState;
use crate::tls::TlsFiles;
use crate::topology::UpOptions;

/// Why a config could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigWriteError {
    /// Serialising failed (a value TOML cannot express).
    #[error("cannot render {path}: {source}")]
    Render {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: toml::ser::Error,
    },
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The balancer's config: the public and admin addresses the supervisor holds, every pool with
/// the replicas that are ready now (empty on the first start: replicas join through the admin
/// API once ready; after a restart of the balancer they are there from its first request),
/// path routes first, the default route last; `[tls]` with `tls`.
pub(crate) fn balance(
    options: &UpOptions,
    public: SocketAddr,
    admin: SocketAddr,
    ready: &[ChildStatus],
    tls: Option<&TlsFiles>,
) -> BalanceConfig {
    let pools = options
        .pools
        .iter()
        .map(|plan| PoolConfig {
            name: plan.name.clone(),
            algorithm: brigade_balance::Algorithm::PeakEwma,
            hash_key: None,
            bounded_load: 1.25,
            health: Some(HealthConfig {
                path: "/health/ready".into(),
                interval_ms: 1000,
                timeout_ms: 1000,
                rise: 1,
                fall: 2,
            }),
            outlier: Default::default(),
            slow_start_ms: 5000,
            panic_threshold: 0.5,
            backends: ready
                .iter()
                .filter(|child| child.pool.as_deref() == Some(plan.name.as_str()))
                .filter(|child| child.state == ChildState::Ready)
                .filter_map(|child| {
                    Some(BackendConfig {
                        address: child.address.as_deref()?.parse().ok()?,
                        weight: 1,
                        backup: child.backup,
                    })
                })
                .collect(),
        })
        .collect();
    let route = |plan: &crate::topology::PoolPlan| RouteConfig {
        host: None,
        path_prefix: plan.path_prefix.clone(),
        header: None,
        pool: plan.name.clone(),
    };
    let prefixed = options.pools.iter().filter(|p| p.path_prefix.is_some());
    let default = options.pools.iter().filter(|p| p.path_prefix.is_none());
    let mut config = BalanceConfig {
        listen: public,
        pools,
        routes: prefixed.chain(default).map(route).collect(),
        tls: tls.map(public_tls),
        ..BalanceConfig::default()
    };
    config.admin.listen = admin;
    config
}

/// `[tls]` of the public port, without `Strict-Transport-Security`: `up` listens on loopback
/// only, and HSTS for `localhost` would hold every other local server on that name to https
/// for as long as the header says. No plain-http redirect listener either: `up` has one port.
fn public_tls(files: &TlsFiles) -> TlsConfig {
    TlsConfig {
        hsts_max_age_secs: 0,
        ..TlsConfig::new(files.cert.clone(), files.key.clone())
    }
}

/// Watch's config: brigade's rules and the extra rule files (absolute paths), the balancer and
/// the supervisor scraped, the replicas found through the balancer's admin API.
pub(crate) fn watch(rule_files: Vec<PathBuf>, admin: SocketAddr, ops: SocketAddr) -> WatchConfig {
    let static_target = |job: &str, target: SocketAddr| StaticConfig {
        job: job.into(),
        targets: vec![target.to_string()],
        metrics_path: "/metrics".into(),
        scheme: "http".into(),
        labels: Default::default(),
    };
    WatchConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        rule_files,
        scrape: ScrapeConfig {
            interval: ConfigDuration::from_secs(5),
            timeout: ConfigDuration::from_secs(4),
            static_configs: vec![
                static_target("balance", admin),
                static_target("supervisor", ops),
            ],
            balance_configs: vec![WatchBalanceTarget {
                admin_url: format!("http://{admin}"),
                scrape_balancer: true,
                metrics_path: "/metrics".into(),
            }],
            ..ScrapeConfig::default()
        },
        evaluation: EvaluationConfig {
            interval: ConfigDuration::from_secs(5),
        },
        ..WatchConfig::default()
    }
}

/// Writes `config` as TOML to `path`, with a first line saying who wrote it.
pub(crate) fn write(path: &Path, config: &impl serde::Serialize) -> Result<(), ConfigWriteError> {
    let text = toml::to_string(config).map_err(|source| ConfigWriteError::Render {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, format!("# Written by brigade up.\n{text}")).map_err(|source| {
        ConfigWriteError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Service;

    #[test]
    fn the_written_configs_parse_back_as_their_children_read_them() {
        let dir = tempfile::tempdir().unwrap();
        let options = UpOptions::new("brigade".into(), dir.path().to_path_buf());
        let public: SocketAddr = "127.0.0.1:28080".parse().unwrap();
        let admin: SocketAddr = "127.0.0.1:28082".parse().unwrap();
        let ready = ChildStatus {
            service: Service::Serve,
            instance: "serve-orders-1".into(),
            pool: Some("orders".into()),
            backup: false,
            state: ChildState::Ready,
            address: Some("127.0.0.1:28090".into()),
            pid: Some(1),
            restarts: 0,
            last_error: None,
        };
        let path = dir.path().join("balance.toml");
        write(&path, &balance(&options, public, admin, &[ready], None)).unwrap();
        let parsed = BalanceConfig::load(&path).unwrap();
        assert_eq!(parsed.listen, public);
        assert_eq!(parsed.tls, None);
        assert_eq!(parsed.admin.listen, admin);
        assert_eq!(parsed.pools[0].backends.len(), 1);
        assert_eq!(
            parsed.routes.last().unwrap().path_prefix,
            None,
            "default route last"
        );

        // A rule file under a relative data directory, made absolute, loads from anywhere.
        let rules = dir.path().join("up").join("rules.yml");
        let path = dir.path().join("up").join("watch.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write(&path, &watch(vec![rules.clone()], admin, public)).unwrap();
        let parsed = WatchConfig::load(&path).unwrap();
        assert_eq!(parsed.rule_files, vec![rules]);
    }

    #[test]
    fn tls_files_become_the_tls_section_without_hsts() {
        let dir = tempfile::tempdir().unwrap();
        let options = UpOptions::new("brigade".into(), dir.path().to_path_buf());
        let tls = crate::PublicTls::SelfSigned.files(dir.path()).unwrap();
        let public: SocketAddr = "127.0.0.1:28443".parse().unwrap();
        let admin: SocketAddr = "127.0.0.1:28082".parse().unwrap();
        let path = dir.path().join("balance.toml");
        write(&path, &balance(&options, public, admin, &[], Some(&tls))).unwrap();
        let parsed = BalanceConfig::load(&path).unwrap().tls.unwrap();
        assert_eq!((parsed.cert, parsed.key), (tls.cert, tls.key));
        assert_eq!(parsed.hsts_max_age_secs, 0);
        assert_eq!(parsed.redirect_listen, None);
    }
}

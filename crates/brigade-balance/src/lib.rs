//! brigade balance: the load balancer in front of brigade replicas (or any HTTP/1.1 service).
//!
//! The host of the restaurant: it seats every guest at the least busy kitchen, notices a
//! kitchen that has stopped cooking, calls the standby chef only when all the regulars are out,
//! and never loses an order on the way.
//!
//! ```text
//! brigade balance --config balance.toml
//! brigade balance --listen 0.0.0.0:8080 --admin 127.0.0.1:8082 \
//!     --backend 127.0.0.1:3001 --backend 127.0.0.1:3002 --backup 127.0.0.1:3009
//! ```
//!
//! Layout: [`config`] (the TOML file), [`head`] (request head checks), `ids` (request and trace ids), [`state`] (routing table behind an `ArcSwap`),
//! [`pool`], [`select`] and [`ring`] (selection), [`backend`] (per-backend health, load and latency),
//! [`health`] (active checks), [`budget`] (retry budget), [`rate_limit`] (per-client limits), [`upstream`] (connection pool and
//! bodies), [`proxy`] (one request), [`answer`] (own problem+json answers), [`admin`] (admin
//! API), [`server`] (listeners and lifecycle), [`tls`] (certificates and rustls), [`metrics`] (Prometheus names).

pub mod admin;
pub mod answer;
pub mod api;
pub mod backend;
pub mod budget;
pub mod clock;
pub mod config;
pub mod ewma;
pub mod fast;
pub mod head;
pub mod health;
use brigade_core::ids;
pub mod metrics;
pub mod outcome;
pub mod pool;
pub mod proxy;
pub mod rate_limit;
pub mod redirect;
pub mod ring;
pub mod select;
pub mod server;
pub mod state;
pub mod tls;
mod trace;
pub mod upstream;
pub mod view;

pub use config::{Algorithm, BackendConfig, Config, ConfigError, PoolConfig};
pub use server::{Inherited, Running, StartError, reload_on_sighup, start, start_with};

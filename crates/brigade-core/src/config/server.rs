//! `[server]`: the HTTP server of `brigade serve` — address, limits and timeouts.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

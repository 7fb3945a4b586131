//! Active health checks (and, in the same loop, closing stale idle upstream connections): every pool with a `health` table gets a `GET path` to each backend
//! every `interval_ms`; `rise` consecutive passes admit a backend, `fall` failures remove it.
//!
//! One task checks all pools; each round's checks run concurrently. Readiness (`/health/ready`)
//! turns on after the first round, so a supervisor does not send traffic to a balancer that
//! does not yet know which backends are alive.

use std::sync::Arc;
use std::time::Duration;

use brigade_core::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::task::JoinSet;

use crate::backend::Backend;
use crate::clock::uptime_ms;
use crate::config::HealthConfig;
use crate::state::State;

/// How often the loop looks for due checks.
const TICK: Duration = Duration::from_millis(50);

/// How often idle upstream connections past `upstream_idle_ms` are closed.
const REAP_EVERY_MS: u64 = 1_000;

/// Runs checks (and the idle-connection reaper) until shutdown.
pub async fn run(state: Arc<State>, shutdown: Shutdown) {
    let mut next_reap = 0;
    loop {
        let table = state.table_full();
        let now = uptime_ms();
        if now >= next_reap {
            next_reap = now + REAP_EVERY_MS;
            for pool in &table.pools {
                for backend in pool.backends() {
                    backend.idle.reap(table.config.timeouts.upstream_idle_ms);
                }
            }
        }
        let mut round = JoinSet::new();
        for pool in &table.pools {
            let Some(health) = &pool.config.health else {
                continue;
            };
            if pool
                .next_check_ms
                .load(std::sync::atomic::Ordering::Relaxed)
                > now
            {
                continue;
            }
            pool.next_check_ms.store(
                now + health.interval_ms,
                std::sync::atomic::Ordering::Relaxed,
            );
            for backend in pool.backends() {
                let health = health.clone();
                let pool_name = pool.name().to_owned();
                round.spawn(async move {
                    let passed = check(&backend, &health).await;
                    if let Some(healthy) = backend.record_check(passed, health.rise, health.fall) {
                        if healthy {
                            tracing::info!(pool = %pool_name, backend = %backend.label, "backend healthy");
                        } else {
                            tracing::warn!(pool = %pool_name, backend = %backend.label, "backend unhealthy");
                        }
                    }
                });
            }
        }
        while round.join_next().await.is_some() {}
        state.set_ready();
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = shutdown.wait() => return,
        }
    }
}

/// One check: a 2xx or 3xx answer within the timeout passes.
pub async fn check(backend: &Backend, health: &HealthConfig) -> bool {
    let timeout = Duration::from_millis(health.timeout_ms);
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(backend.address).await.ok()?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(connection);
        let request = http::Request::get(health.path.as_str())
            .header(http::header::HOST, backend.label.as_str())
            .header(http::header::CONNECTION, "close")
            .header(http::header::USER_AGENT, "brigade-balance-health")
            .body(Empty::new())
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        let status = response.status();
        Some(status.is_success() || status.is_redirection())
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}

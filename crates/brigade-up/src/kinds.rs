//! The balancer and watch as kinds of supervised child (replicas are in [`crate::pool`]): how
//! each is started and stopped; restarts, backoff and crash loops are [`crate::supervise`]'s.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use brigade_core::Shutdown;

use crate::api::{EventKind, EventLevel, Service};
use crate::balancer::BalancerAdmin;
use crate::child::{self, ChildSpec, Running};
use crate::child_state::ChildState;
use crate::configs;
use crate::logs::LogSink;
use crate::pool::STOP_GRACE;
use crate::shared::Shared;
use crate::supervise::{Kind, StartFailure};
use crate::topology::UpOptions;
use crate::trace_env::TraceEnv;

/// brigade's alert rules (the same file Prometheus loads in Kubernetes).
const ALERT_RULES: &str = include_str!("../../../deploy/prometheus/rules/brigade.yml");

/// `brigade balance` on the sockets the supervisor holds.
pub(crate) struct Balancer {
    /// The topology (pools and routes) and the binary.
    pub options: Arc<UpOptions>,
    /// Status and events (the ready replicas are read from it).
    pub shared: Shared,
    /// Central logs.
    pub sink: LogSink,
    /// The public listener (descriptor 3 of each balancer process).
    pub public: Arc<TcpListener>,
    /// The admin listener (descriptor 4).
    pub admin_listener: Arc<TcpListener>,
    /// Client of that admin listener.
    pub admin: BalancerAdmin,
    /// The certificate and key of the public port, when it speaks TLS.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Where the balancer sends its traces.
    pub trace_env: TraceEnv,
}

impl Balancer {
    fn addresses(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.public.local_addr()?, self.admin_listener.local_addr()?))
    }
}

impl Kind for Balancer {
    fn instance(&self) -> &str {
        "balance"
    }

    fn metrics_label(&self) -> String {
        "balance".into()
    }

    /// Writes balance.toml with the replicas that are ready now, starts the balancer on the
    /// held sockets, then puts every ready replica in again through its admin API (adding one
    /// twice is harmless), so a replica that became ready meanwhile is not missed.
    async fn start(&mut self, _stop: &Shutdown) -> Result<Running, StartFailure> {
        let failed = |error: &dyn std::fmt::Display| StartFailure::Failed(error.to_string());
        let (public, admin) = self.addresses().map_err(|e| failed(&e))?;
        let children = self.shared.status().children;
        let config = configs::balance(&self.options, public, admin, &children, self.tls.as_ref());
        let path = self.options.data_dir.join("up").join("balance.toml");
        configs::write(&path, &config).map_err(|e| failed(&e))?;
        let spec = ChildSpec {
            service: Service::Balance,
            instance: "balance".into(),
            args: vec![
                "balance".into(),
                "--log-format".into(),
                "json".into(),
                "--config".into(),
                path.display().to_string(),
            ],
            env: self.trace_env.for_child("brigade-balance", "balance"),
            listeners: vec![self.public.clone(), self.admin_listener.clone()],
        };
        let running = child::spawn(&self.options.binary, &spec, &self.sink)
            .await
            .map_err(|e| failed(&e))?;
        for replica in self.shared.status().children {
            if let (Some(pool), Some(address), ChildState::Ready) =
                (&replica.pool, &replica.address, replica.state)
                && let Err(error) = self.admin.add(pool, address, replica.backup).await
            {
                tracing::warn!(%error, instance = %replica.instance, "cannot put a replica back");
            }
        }
        self.shared.events.push(
            EventLevel::Info,
            EventKind::Ready,
            Some("balance"),
            format!("balancer listening on {public}"),
        );
        Ok(running)
    }

    fn address(&self, running: &Running) -> Option<String> {
        running.address()
    }

    async fn exited(&mut self, _running: &Running) {}

    async fn retire(&mut self, running: Running) {
        running.stop(STOP_GRACE).await;
    }
}

/// `brigade watch` scraping the balancer, its replicas and the supervisor.
pub(crate) struct Watch {
    /// Data directory, alert rules and the binary.
    pub options: Arc<UpOptions>,
    /// Status and events (watch's address is published there).
    pub shared: Shared,
    /// Central logs.
    pub sink: LogSink,
    /// The balancer's admin address.
    pub balancer_admin: SocketAddr,
    /// The supervisor's ops address.
    pub ops: SocketAddr,
    /// Watch's listening socket, held by the supervisor (descriptor 3 of each watch process).
    pub listener: Option<Arc<TcpListener>>,
    /// Watch's own trace settings (never its own collector).
    pub trace_env: TraceEnv,
}

impl Kind for Watch {
    fn instance(&self) -> &str {
        "watch"
    }

    fn metrics_label(&self) -> String {
        "watch".into()
    }

    /// Writes the alert rules (compiled into the binary, so `brigade up` alerts from any
    /// working directory) and watch.toml next to them, then starts watch.
    async fn start(&mut self, _stop: &Shutdown) -> Result<Running, StartFailure> {
        let failed = |error: &dyn std::fmt::Display| StartFailure::Failed(error.to_string());
        let up_dir = self.options.data_dir.join("up");
        let rules = up_dir.join("rules.yml");
        std::fs::write(&rules, ALERT_RULES)
            .map_err(|e| failed(&format!("cannot write {}: {e}", rules.display())))?;
        let rule_files = std::iter::once(rules)
            .chain(self.options.alert_rules.iter().cloned())
            .collect();
        let path = up_dir.join("watch.toml");
        let config = configs::watch(rule_files, self.balancer_admin, self.ops);
        configs::write(&path, &config).map_err(|e| failed(&e))?;
        let spec = ChildSpec {
            service: Service::Watch,
            instance: "watch".into(),
            args: vec![
                "watch".into(),
                "--log-format".into(),
                "json".into(),
                "--config".into(),
                path.display().to_string(),
                "--data-dir".into(),
                self.options.data_dir.display().to_string(),
            ],
            env: self.trace_env.for_child("brigade-watch", "watch"),
            listeners: self.listener.iter().cloned().collect(),
        };
        let running = child::spawn(&self.options.binary, &spec, &self.sink)
            .await
            .map_err(|e| failed(&e))?;
        self.shared.set_watch(running.address());
        Ok(running)
    }

    fn address(&self, running: &Running) -> Option<String> {
        running.address()
    }

    async fn exited(&mut self, _running: &Running) {
        self.shared.set_watch(None);
    }

    async fn retire(&mut self, running: Running) {
        running.stop(STOP_GRACE).await;
    }
}

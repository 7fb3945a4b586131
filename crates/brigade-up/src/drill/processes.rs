//! Process faults of the parts every replica depends on: `kill-balancer` (SIGKILL of the public
//! entry) and `kill-watch` (SIGKILL of the observer). Both measure how soon what was lost is
//! back; the supervisor restarts both like any other child.

use std::time::{Duration, Instant};

use crate::api::{ChildState, Service, Status};

use super::DrillError;
pub use super::checks::ProcessCheck;
use super::client;
use super::ctx::{Ctx, Findings, wait_until};

/// kill-balancer's claim: the public port serves again within this.
pub const SERVING_AGAIN_LIMIT: Duration = Duration::from_secs(1);
/// kill-watch's claim: watch answers again within this.
pub const WATCH_BACK_LIMIT: Duration = Duration::from_secs(10);
/// Between two probes of the public port.
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// SIGKILL the balancer; whole again when it runs as a new process. Meanwhile a probe opens a
/// new connection every few milliseconds and asks for the shops, until one is answered.
pub async fn kill_balancer(ctx: &Ctx) -> Result<Findings, DrillError> {
    let (instance, pid) = child(&ctx.status, Service::Balance)?;
    let probe = ctx
        .public
        .client(
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(2)),
        )
        .map_err(|e| DrillError::Setup(e.to_string()))?;
    let url = ctx.public.url("/api/v1/shops");
    sigkill(&instance, pid).await?;
    let killed = Instant::now();
    let mut refused = 0;
    let mut back = None;
    while killed.elapsed() < Duration::from_secs(60) {
        match probe.get(&url).send().await {
            Ok(answer) if answer.status().is_success() => {
                back = Some(killed.elapsed());
                break;
            }
            Err(error) if error.is_connect() => refused += 1,
            _ => {}
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    let recovered = restarted(ctx, &instance, pid, None).await?;
    Ok(Findings {
        fault: killed.elapsed(),
        recovered: recovered && back.is_some(),
        recovery: format!("{instance} ready again with a new process, the public port serving"),
        process: Some(ProcessCheck {
            instance,
            back_ms: back.unwrap_or(killed.elapsed()).as_millis(),
            refused,
        }),
        ..Findings::default()
    })
}

/// SIGKILL watch; whole again when a new watch process answers its API.
pub async fn kill_watch(ctx: &Ctx) -> Result<Findings, DrillError> {
    let (instance, pid) = child(&ctx.status, Service::Watch)?;
    sigkill(&instance, pid).await?;
    let killed = Instant::now();
    let recovered = restarted(ctx, &instance, pid, Some("/health/ready")).await?;
    Ok(Findings {
        fault: killed.elapsed(),
        recovered,
        recovery: format!("{instance} answering again with a new process"),
        process: Some(ProcessCheck {
            instance,
            back_ms: killed.elapsed().as_millis(),
            refused: 0,
        }),
        ..Findings::default()
    })
}

/// The instance and process id of the child of `service`.
fn child(status: &Status, service: Service) -> Result<(String, u32), DrillError> {
    status
        .children
        .iter()
        .find(|c| c.service == service && c.state == ChildState::Ready)
        .and_then(|c| Some((c.instance.clone(), c.pid?)))
        .ok_or_else(|| DrillError::Setup(format!("no ready {} to kill", service.as_str())))
}

async fn sigkill(instance: &str, pid: u32) -> Result<(), DrillError> {
    let killed = tokio::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .await
        .map_err(|e| DrillError::Setup(format!("cannot run kill: {e}")))?;
    if killed.success() {
        Ok(())
    } else {
        Err(DrillError::Setup(format!("cannot kill {instance} ({pid})")))
    }
}

/// Waits until `instance` is ready with a process other than `pid` (and, with `path`, its
/// address answers `path` with a success).
async fn restarted(
    ctx: &Ctx,
    instance: &str,
    pid: u32,
    path: Option<&str>,
) -> Result<bool, DrillError> {
    wait_until(async || {
        let now = client::status(&ctx.http, &ctx.ops).await?;
        let Some(child) = now.child(instance) else {
            return Ok(false);
        };
        if child.state != ChildState::Ready || child.pid == Some(pid) {
            return Ok(false);
        }
        let (Some(path), Some(address)) = (path, child.address.as_deref()) else {
            return Ok(path.is_none());
        };
        Ok(ctx
            .http
            .get(format!("http://{address}{path}"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()))
    })
    .await
}

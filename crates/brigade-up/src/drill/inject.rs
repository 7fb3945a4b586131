//! The faults: each drill's fault, held for its time, undone, and awaited until the system is
//! whole again. Every fault that is switched on is switched off again, also when the drill
//! fails half way.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::client::{self, answer_of};
pub use super::ctx::{Ctx, Findings};
use super::ctx::{POLL, wait_until};
use super::load::Load;
use super::report::{DatabaseCheck, Scaling};
use super::{Drill, DrillError};
use crate::api::{ChildState, LinkRequest, LinkView};
use brigade_api::faults::FaultSwitch;

/// Latency the slow-replica drill adds to one replica.
pub const SLOW_REPLICA_LATENCY_MS: u64 = 400;
/// The surge's load, as a multiple of the usual clients.
pub const SURGE_FACTOR: usize = 5;

/// Does the drill's fault and returns once the system is whole again (or the limit passed).
pub async fn inject(ctx: &Ctx, load: &mut Load) -> Result<Findings, DrillError> {
    match ctx.drill {
        Drill::KillReplica => kill_replica(ctx).await,
        Drill::RollingRestart => rolling_restart(ctx).await,
        Drill::ErrorBurst => {
            let victim = ctx.victim()?;
            let address = victim.address.unwrap_or_default();
            switched(
                ctx,
                &[address],
                FaultSwitch {
                    error_ratio: 1.0,
                    ..FaultSwitch::default()
                },
            )
            .await
        }
        Drill::SlowReplica => {
            let victim = ctx.victim()?;
            let address = victim.address.unwrap_or_default();
            let switch = FaultSwitch {
                latency_ms: SLOW_REPLICA_LATENCY_MS,
                ..FaultSwitch::default()
            };
            let mut findings = switched(ctx, std::slice::from_ref(&address), switch).await?;
            findings.slowed = Some(address);
            Ok(findings)
        }
        Drill::PaymentOutage => payment_outage(ctx).await,
        Drill::DbOutage => db_outage(ctx).await,
        Drill::Surge => surge(ctx, load).await,
        Drill::KillBalancer => super::processes::kill_balancer(ctx).await,
        Drill::KillWatch => super::processes::kill_watch(ctx).await,
    }
}

/// SIGKILL one replica; whole again when its slot runs a new ready process.
async fn kill_replica(ctx: &Ctx) -> Result<Findings, DrillError> {
    let victim = ctx.victim()?;
    let instance = victim.instance;
    let pid = victim.pid.unwrap_or_default();
    let killed = tokio::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .await
        .map_err(|e| DrillError::Setup(format!("cannot run kill: {e}")))?;
    if !killed.success() {
        return Err(DrillError::Setup(format!("cannot kill {instance} ({pid})")));
    }
    let started = Instant::now();
    let recovered = wait_until(async || {
        let now = client::status(&ctx.http, &ctx.ops).await?;
        Ok(now
            .replicas(None)
            .any(|c| c.instance == instance && c.state == ChildState::Ready && c.pid != Some(pid)))
    })
    .await?;
    Ok(Findings {
        fault: started.elapsed(),
        recovered,
        recovery: format!("{instance} ready again with a new process"),
        ..Findings::default()
    })
}

/// Replace every orders replica; whole again when the rollout answered.
async fn rolling_restart(ctx: &Ctx) -> Result<Findings, DrillError> {
    let started = Instant::now();
    let _: crate::api::RolloutAnswer = answer_of(
        ctx.http
            .post(format!("http://{}/api/pools/orders/rollout", ctx.ops))
            .header(crate::ops_guard::TOKEN_HEADER, &ctx.ops_token)
            .json(&crate::api::RolloutRequest::default())
            .send()
            .await,
    )
    .await?;
    Ok(Findings {
        fault: started.elapsed(),
        recovered: true,
        recovery: "the rollout replaced every orders replica".into(),
        ..Findings::default()
    })
}

/// Sets `switch` on the replicas at `addresses` for the hold, then switches them off.
async fn switched(
    ctx: &Ctx,
    addresses: &[String],
    switch: FaultSwitch,
) -> Result<Findings, DrillError> {
    let admin = ctx.admin_token().await?;
    let started = Instant::now();
    let mut result = Ok(());
    for address in addresses {
        result = client::set_faults(&ctx.http, address, &admin, &switch)
            .await
            .map(drop);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        tokio::time::sleep(ctx.hold).await;
    }
    let fault = started.elapsed();
    for address in addresses {
        let off = client::set_faults(&ctx.http, address, &admin, &FaultSwitch::default()).await;
        if result.is_ok() {
            result = off.map(drop);
        }
    }
    result?;
    Ok(Findings {
        fault,
        recovered: true,
        recovery: "the fault switch is off".into(),
        ..Findings::default()
    })
}

/// The payment provider fails on every replica; whole again when every orders replica's
/// circuit breaker closed (a trial call succeeded).
async fn payment_outage(ctx: &Ctx) -> Result<Findings, DrillError> {
    let addresses: Vec<String> = ctx
        .status
        .replicas(None)
        .filter_map(|c| c.address.clone())
        .collect();
    let mut findings = switched(
        ctx,
        &addresses,
        FaultSwitch {
            payments_outage: true,
            ..FaultSwitch::default()
        },
    )
    .await?;
    let admin = ctx.admin_token().await?;
    let primaries: Vec<String> = ctx
        .status
        .replicas(Some("orders"))
        .filter(|c| !c.backup)
        .filter_map(|c| c.address.clone())
        .collect();
    let closed = wait_until(async || {
        for address in &primaries {
            let faults = client::faults_of(&ctx.http, address, &admin).await?;
            if faults.payments_breaker != "closed" {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    findings.recovered = closed;
    findings.recovery = "every orders replica's payment breaker closed again".into();
    findings.breakers_closed = Some(closed);
    Ok(findings)
}

/// Cuts the replicas' database link for the hold (watching readiness), restores it; whole
/// again when every orders replica is ready and in the balancer again.
async fn db_outage(ctx: &Ctx) -> Result<Findings, DrillError> {
    let link = format!("http://{}/api/db-link", ctx.ops);
    let cut: LinkView = answer_of(
        ctx.http
            .put(&link)
            .header(crate::ops_guard::TOKEN_HEADER, &ctx.ops_token)
            .json(&LinkRequest { cut: true })
            .send()
            .await,
    )
    .await
    .map_err(|e| DrillError::Setup(format!("cannot cut the database link: {e}")))?;
    let started = Instant::now();
    let mut unready_seen = false;
    while started.elapsed() < ctx.hold {
        let backends = client::pool_backends(&ctx.http, &ctx.balancer_admin, "orders").await;
        unready_seen |= backends.iter().any(|b| !b.healthy);
        tokio::time::sleep(POLL).await;
    }
    let fault = started.elapsed();
    let _: LinkView = answer_of(
        ctx.http
            .put(&link)
            .header(crate::ops_guard::TOKEN_HEADER, &ctx.ops_token)
            .json(&LinkRequest { cut: false })
            .send()
            .await,
    )
    .await
    .map_err(|e| DrillError::Setup(format!("cannot restore the database link: {e}")))?;
    let ready_after = wait_until(async || {
        let backends = client::pool_backends(&ctx.http, &ctx.balancer_admin, "orders").await;
        if backends.is_empty() || backends.iter().any(|b| !b.healthy) {
            return Ok(false);
        }
        for backend in &backends {
            let address = &backend.address;
            let ready = ctx
                .http
                .get(format!("http://{address}/health/ready"))
                .send()
                .await;
            if !ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    Ok(Findings {
        fault,
        recovered: ready_after,
        recovery: "every orders replica ready and healthy in the balancer".into(),
        database: Some(DatabaseCheck {
            mode: cut.mode,
            unready_seen,
            ready_after,
        }),
        ..Findings::default()
    })
}

/// Five times the clients for the hold, counting the orders replicas as the autoscaler adds
/// them.
async fn surge(ctx: &Ctx, load: &mut Load) -> Result<Findings, DrillError> {
    let before = client::ready_primaries(&ctx.status);
    let extra = ctx.clients * (SURGE_FACTOR - 1);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    load.add(extra, &stop);
    let mut peak = before;
    while started.elapsed() < ctx.hold {
        tokio::time::sleep(POLL).await;
        if let Ok(now) = client::status(&ctx.http, &ctx.ops).await {
            peak = peak.max(client::ready_primaries(&now));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(Findings {
        fault: started.elapsed(),
        recovered: true,
        recovery: "the surge ended".into(),
        scaling: Some(Scaling {
            clients: ctx.clients * SURGE_FACTOR,
            replicas: [before, peak, 0],
            events: Vec::new(),
        }),
        ..Findings::default()
    })
}

//! `brigade drill NAME`: a fault under load against `brigade up`, and a report.

use std::time::Duration;

use anyhow::bail;
use brigade_up::drill::{self, DrillError, DrillOptions};

use crate::cli::DrillArgs;
use crate::commands::BadSetting;

/// A missing or unusable setting is the user's to fix (exit 2, naming the key); the rest stay
/// runtime failures.
fn drill_error(error: DrillError) -> anyhow::Error {
    match error {
        DrillError::Setting { .. } => BadSetting(error.to_string()).into(),
        other => anyhow::Error::new(other),
    }
}

/// Runs the drill, prints the report, fails when a claim does not hold.
pub async fn run(args: DrillArgs) -> anyhow::Result<()> {
    drill::preflight(&args.name).map_err(drill_error)?;
    let ops_token = super::rollout::ops_token(&args.token, &args.ops).await?;
    let report = drill::run(&DrillOptions {
        ops_token,
        name: args.name,
        ops: args.ops,
        password: args.password,
        phase: Duration::from_secs(args.phase_secs.max(1)),
        clients: args.clients.max(1),
        fault: args.fault_secs.map(|secs| Duration::from_secs(secs.max(1))),
    })
    .await
    .map_err(drill_error)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if !report.passed() {
        bail!("drill {} failed its claims", report.drill);
    }
    Ok(())
}

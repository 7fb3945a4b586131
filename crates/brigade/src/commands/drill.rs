//! `brigade drill NAME`: a fault under load against `brigade up`, and a report.

use std::time::Duration;

use anyhow::bail;
use brigade_up::drill::{self, DrillOptions};

use crate::cli::DrillArgs;

/// Runs the drill, prints the report, fails when a claim does not hold.
pub async fn run(args: DrillArgs) -> anyhow::Result<()> {
    drill::preflight(&args.name)?;
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
    .await?;
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

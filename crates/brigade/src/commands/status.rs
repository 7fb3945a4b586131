//! `brigade status`: what a running `brigade up` runs, read from its ops API.

use std::io::Write;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::cli::StatusArgs;

/// Prints the children and recent events; fails when nothing answers.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let url = format!("http://{}/api/status", args.ops);
    let status: Value = reqwest::get(&url)
        .await
        .with_context(|| format!("nothing answers at {url}; is `brigade up` running?"))?
        .json()
        .await
        .context("the ops API answered something else than its status")?;
    let Some(children) = status["children"].as_array() else {
        bail!("the ops API answered without children");
    };
    match print(&status, children) {
        // `brigade status | head` closes the pipe early: not an error.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn print(status: &Value, children: &[Value]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "public {}   balancer admin {}   watch {}",
        status["public"].as_str().unwrap_or("-"),
        status["balancer_admin"].as_str().unwrap_or("-"),
        status["watch"].as_str().unwrap_or("-")
    )?;
    writeln!(
        out,
        "{:<20} {:<8} {:<8} {:<11} {:<22} {:>8} {:>8}",
        "INSTANCE", "SERVICE", "POOL", "STATE", "ADDRESS", "PID", "RESTARTS"
    )?;
    for child in children {
        let pool = match (child["pool"].as_str(), child["backup"].as_bool()) {
            (Some(pool), Some(true)) => format!("{pool}*"),
            (Some(pool), _) => pool.to_owned(),
            _ => "-".to_owned(),
        };
        writeln!(
            out,
            "{:<20} {:<8} {:<8} {:<11} {:<22} {:>8} {:>8}",
            child["instance"].as_str().unwrap_or("?"),
            child["service"].as_str().unwrap_or("?"),
            pool,
            child["state"].as_str().unwrap_or("?"),
            child["address"].as_str().unwrap_or("-"),
            child["pid"]
                .as_u64()
                .map_or("-".to_owned(), |p| p.to_string()),
            child["restarts"].as_u64().unwrap_or(0),
        )?;
    }
    if let Some(events) = status["events"].as_array() {
        writeln!(out, "\nrecent events (* = backup replica):")?;
        for event in events.iter().rev().take(10).rev() {
            writeln!(
                out,
                "  {} {:<5} {:<18} {}",
                event["at"].as_str().unwrap_or(""),
                event["level"].as_str().unwrap_or(""),
                event["instance"].as_str().unwrap_or("-"),
                event["message"].as_str().unwrap_or("")
            )?;
        }
    }
    Ok(())
}

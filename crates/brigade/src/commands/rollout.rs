//! `brigade rollout restart` and `brigade scale`: asks a running `brigade up` through its ops API.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::cli::{OpsTokenArgs, RolloutArgs, ScaleArgs};

/// The ops API refuses changes without this start's token: `--ops-token`, or the file the
/// running `brigade up` names.
pub async fn ops_token(args: &OpsTokenArgs, ops: &str) -> anyhow::Result<String> {
    if let Some(token) = &args.ops_token {
        return Ok(token.clone());
    }
    brigade_up::ops_guard::discover(&reqwest::Client::new(), ops)
        .await
        .map_err(|reason| anyhow::anyhow!("{reason} (or pass --ops-token)"))
}

/// Rolls the named pool (or every pool) and reports how many replicas were replaced.
pub async fn restart(args: RolloutArgs) -> anyhow::Result<()> {
    let token = ops_token(&args.token, &args.ops).await?;
    let client = reqwest::Client::new();
    let pools = match &args.pool {
        Some(pool) => vec![pool.clone()],
        None => {
            let status: Value = client
                .get(format!("http://{}/api/status", args.ops))
                .send()
                .await
                .with_context(|| {
                    format!("nothing answers at {}; is `brigade up` running?", args.ops)
                })?
                .json()
                .await?;
            let mut pools: Vec<String> = status["children"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["pool"].as_str().map(str::to_owned))
                .collect();
            pools.sort();
            pools.dedup();
            pools
        }
    };
    for pool in pools {
        let body = match &args.binary {
            Some(binary) => {
                json!({"binary": std::fs::canonicalize(binary).with_context(|| format!("--binary {}", binary.display()))?})
            }
            None => json!({}),
        };
        let answer = client
            .post(format!("http://{}/api/pools/{pool}/rollout", args.ops))
            .header(brigade_up::ops_guard::TOKEN_HEADER, &token)
            .json(&body)
            .send()
            .await
            .with_context(|| {
                format!("nothing answers at {}; is `brigade up` running?", args.ops)
            })?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "rollout of {pool} failed: {}",
                body["detail"].as_str().unwrap_or("?")
            );
        }
        println!("{pool}: {} replicas replaced", body["replaced"]);
    }
    Ok(())
}

/// Sets a pool's replica count.
pub async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let token = ops_token(&args.token, &args.ops).await?;
    let answer = reqwest::Client::new()
        .post(format!("http://{}/api/pools/{}/scale", args.ops, args.pool))
        .header(brigade_up::ops_guard::TOKEN_HEADER, &token)
        .json(&json!({"replicas": args.replicas}))
        .send()
        .await
        .with_context(|| format!("nothing answers at {}; is `brigade up` running?", args.ops))?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{}", body["detail"].as_str().unwrap_or("scaling refused"));
    }
    println!("{}: scaling to {} replicas", args.pool, args.replicas);
    Ok(())
}

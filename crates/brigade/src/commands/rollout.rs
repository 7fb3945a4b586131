//! `brigade rollout restart` and `brigade scale`: asks a running `brigade up` through its ops API.

use anyhow::Context;
use brigade_core::Problem;
use brigade_up::api::{RolloutAnswer, RolloutRequest, ScaleAnswer, ScaleRequest, Status};

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
            let status: Status = client
                .get(format!("http://{}/api/status", args.ops))
                .send()
                .await
                .with_context(|| unreachable(&args.ops))?
                .json()
                .await
                .with_context(|| format!("{} answered something else than a status", args.ops))?;
            status.pools()
        }
    };
    let binary = match &args.binary {
        Some(binary) => Some(
            std::fs::canonicalize(binary)
                .with_context(|| format!("--binary {}", binary.display()))?,
        ),
        None => None,
    };
    for pool in pools {
        let answer = client
            .post(format!("http://{}/api/pools/{pool}/rollout", args.ops))
            .header(brigade_up::ops_guard::TOKEN_HEADER, &token)
            .json(&RolloutRequest {
                binary: binary.clone(),
            })
            .send()
            .await
            .with_context(|| unreachable(&args.ops))?;
        let answer: RolloutAnswer = read(answer)
            .await
            .with_context(|| format!("rollout of {pool} failed"))?;
        println!("{}: {} replicas replaced", answer.pool, answer.replaced);
    }
    Ok(())
}

/// Sets a pool's replica count.
pub async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let token = ops_token(&args.token, &args.ops).await?;
    let answer = reqwest::Client::new()
        .post(format!("http://{}/api/pools/{}/scale", args.ops, args.pool))
        .header(brigade_up::ops_guard::TOKEN_HEADER, &token)
        .json(&ScaleRequest {
            replicas: args.replicas,
        })
        .send()
        .await
        .with_context(|| unreachable(&args.ops))?;
    let answer: ScaleAnswer = read(answer).await?;
    println!("{}: scaling to {} replicas", answer.pool, answer.replicas);
    Ok(())
}

fn unreachable(ops: &str) -> String {
    format!("nothing answers at {ops}; is `brigade up` running?")
}

/// The answer of type `T`, or the problem's detail when the ops API refused.
async fn read<T: serde::de::DeserializeOwned>(answer: reqwest::Response) -> anyhow::Result<T> {
    if answer.status().is_success() {
        return answer.json().await.context("unexpected answer");
    }
    let status = answer.status();
    let problem: Option<Problem> = answer.json().await.ok();
    Err(anyhow::anyhow!(
        problem
            .and_then(|p| p.detail)
            .unwrap_or_else(|| format!("refused with {status}"))
    ))
}

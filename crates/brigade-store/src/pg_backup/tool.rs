//! Running pgBackRest: one child process per command, its output kept for the error, and the
//! repository listing (`info --output=json`) as typed values.

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use super::{PitrError, Plan};

/// Runs `pgbackrest --config=… --stanza=… COMMAND ARGS…`; returns what it printed.
pub(super) async fn run(plan: &Plan, command: &str, args: &[&str]) -> Result<String, PitrError> {
    let output = Command::new(&plan.program)
        .arg(format!("--config={}", plan.config_file().display()))
        .arg(format!("--stanza={}", plan.stanza))
        .args(args)
        .arg(command)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| PitrError::Program {
            program: plan.program.display().to_string(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let printed = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let tail: Vec<&str> = printed.trim().lines().rev().take(8).collect();
    Err(PitrError::Tool {
        command: command.to_owned(),
        status: output.status.to_string(),
        output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

/// The stanza as `pgbackrest info --output=json` lists it (the fields brigade reads).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StanzaInfo {
    /// The stanza's name.
    pub name: String,
    /// Backups, oldest first.
    #[serde(default)]
    pub backup: Vec<BackupInfo>,
    /// Archived WAL per database version.
    #[serde(default)]
    pub archive: Vec<ArchiveRange>,
}

/// One backup in the repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupInfo {
    /// pgBackRest's label, e.g. `20261205-215252F` (`…F_…I` for an incremental).
    pub label: String,
    /// `full`, `diff` or `incr`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Start and stop, Unix seconds.
    pub timestamp: Span,
    /// Sizes.
    pub info: Sizes,
    /// The WAL segments the backup needs to be consistent.
    pub archive: Option<WalRange>,
}

/// Start and stop times of a backup, Unix seconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Span {
    /// Start.
    pub start: i64,
    /// Stop.
    pub stop: i64,
}

/// Sizes of a backup.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Sizes {
    /// The database as restored, bytes.
    pub size: u64,
    /// What this backup stores in the repository.
    pub repository: RepoSize,
}

/// Bytes a backup takes in the repository (compressed; only changed files for diff/incr).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RepoSize {
    /// Bytes.
    pub delta: u64,
}

/// First and last WAL segment of a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WalRange {
    /// First segment.
    pub start: String,
    /// Last segment.
    pub stop: String,
}

/// The archived WAL of one database version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveRange {
    /// Oldest segment kept.
    pub min: Option<String>,
    /// Newest segment archived.
    pub max: Option<String>,
}

/// The repository's listing of this stanza (empty when nothing was backed up yet).
pub(super) async fn info(plan: &Plan) -> Result<StanzaInfo, PitrError> {
    let text = run(plan, "info", &["--output=json"]).await?;
    let stanzas: Vec<StanzaInfo> = serde_json::from_str(&text).map_err(|e| PitrError::Tool {
        command: "info".into(),
        status: "ok".into(),
        output: format!("unexpected JSON ({e}): {text}"),
    })?;
    Ok(stanzas.into_iter().next().unwrap_or(StanzaInfo {
        name: plan.stanza.clone(),
        backup: Vec::new(),
        archive: Vec::new(),
    }))
}

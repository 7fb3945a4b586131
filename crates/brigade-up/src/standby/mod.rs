//! The local streaming standby `brigade up --local-standby` makes and supervises, so read
//! replicas (`storage.read_url`) can be tried on one machine.
//!
//! On start `up` makes the standby when its data directory does not exist yet
//! (`pg_basebackup -R -X stream -c fast` from the primary of `DATABASE_URL`, with the PostgreSQL
//! programs of the primary's major version), runs `postgres` on it as a child like the others
//! (restarted with the same backoff, in the status and the central log) and waits until it
//! accepts connections in recovery; only then do the replicas start, with `DATABASE_READ_URL`
//! pointing at it. On stop it gets PostgreSQL's fast shutdown (SIGINT) after the replicas left.
//! Its lifeline is the parent-death signal ([`crate::tied`], armed by `setpriv --pdeathsig`):
//! `postgres` cannot watch a stdin pipe as brigade's children do, so the kernel sends it
//! SIGINT when `up` dies.
//!
//! What it does not do: fail over or promote. A standby that lags or is down costs the
//! replicas nothing (they read from the primary), and a lost primary is the primary's
//! problem, as without a standby.

mod kind;
mod prepare;

use std::path::PathBuf;

pub(crate) use kind::Standby;
pub(crate) use prepare::{StandbyPlan, prepare};

/// What the user asked for: `--local-standby` / `[standby] local = true` of up.toml.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalStandby {
    /// The standby's data directory (default `<data-dir>/up/standby`); made when missing.
    pub dir: PathBuf,
    /// The primary's URL (`DATABASE_URL`), which may hold a password: never printed.
    pub primary_url: String,
    /// Where the user asked for it (`--local-standby`, or up.toml's `standby.local` with the
    /// file's path): every refusal starts with it, so it names what to change.
    pub origin: String,
}

impl std::fmt::Debug for LocalStandby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStandby")
            .field("dir", &self.dir)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// `[standby]` of up.toml, as written.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandbySection {
    /// `true` = `--local-standby`.
    pub local: Option<bool>,
    /// The standby's data directory, relative to up.toml's folder.
    pub dir: Option<PathBuf>,
}

/// Why the local standby cannot be made or run; each is the user's to fix (exit code 2).
/// Shown after the setting that asked for the standby ([`LocalStandby::origin`]).
#[derive(Debug, thiserror::Error)]
pub enum StandbyError {
    /// PostgreSQL refuses to run as root.
    #[error(
        "PostgreSQL refuses to run as root; run brigade up as a non-root user \
         (e.g. sudo -u postgres) to start the local standby"
    )]
    Root,
    /// `setpriv` (util-linux), which ties the standby to `up`'s life, is not installed.
    #[error(
        "setpriv not found on PATH; install util-linux (it stops the standby \
         when brigade up dies)"
    )]
    NoSetpriv,
    /// The primary did not answer the version query.
    #[error("cannot ask the primary (DATABASE_URL) for its version: {0}")]
    Primary(String),
    /// A PostgreSQL program of the primary's major version is not installed.
    #[error(
        "{program} of PostgreSQL {major} not found (looked in {looked}); \
         install the server package of the primary's version"
    )]
    Missing {
        /// `postgres` or `pg_basebackup`.
        program: &'static str,
        /// The primary's major version.
        major: u32,
        /// Where it was looked for.
        looked: String,
    },
    /// `pg_basebackup` failed: usually the primary refuses replication connections.
    #[error(
        "pg_basebackup from the primary failed ({status}): {stderr}\nthe \
         primary must allow a replication connection for this user from 127.0.0.1: a \
         `host replication <user> 127.0.0.1/32 <method>` line in pg_hba.conf and \
         max_wal_senders >= 2 (see docs/operations.md, \"Trying a read replica\")"
    )]
    BaseBackup {
        /// Its exit status.
        status: String,
        /// What it wrote.
        stderr: String,
    },
    /// The data directory exists but is not a standby's.
    #[error(
        "{dir} exists but holds no standby.signal; remove it (up makes it \
         again) or point [standby] dir elsewhere"
    )]
    NotAStandby {
        /// The directory.
        dir: PathBuf,
    },
    /// A file or directory could not be prepared, or a program could not be run.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The standby's first start failed.
    #[error("the standby did not start: {0}")]
    NotStarted(String),
}

/// Whether `up` runs as root, where PostgreSQL refuses to run: checked with the flags, before
/// anything is made.
pub fn runs_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

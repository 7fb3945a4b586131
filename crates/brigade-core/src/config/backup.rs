//! `[backup]` of brigade.toml: point-in-time recovery of a PostgreSQL store with pgBackRest.
//!
//! ```toml
//! [backup]
//! pg_data = "/var/lib/postgresql/15/main"  # the cluster's data directory (required on PostgreSQL)
//! repo = "/mnt/backup/pgbackrest"          # backups and archived WAL; a second disk in production
//! stanza = "brigade"
//! retention_full = 2                       # full backups kept (with their incrementals and WAL)
//! archive_timeout_secs = 60                # WAL is shipped at least this often: the RPO when idle
//! pg_socket_dir = "/var/run/postgresql"
//! pg_user = "postgres"
//! ```
//! The SQLite store needs none of it (`brigade backup` copies the file); these keys steer
//! `brigade backup` and `brigade restore` when `storage.database_url` is PostgreSQL.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How `brigade backup` and `brigade restore` drive pgBackRest for a PostgreSQL store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// The PostgreSQL cluster's data directory (pgBackRest's `pg1-path`). pgBackRest reads it
    /// directly, so `brigade backup` runs on the database host as the cluster's OS user.
    pub pg_data: Option<PathBuf>,
    /// The pgBackRest repository (`repo1-path`): backups, archived WAL, and the
    /// `pgbackrest.conf` brigade writes. Default: `<storage.data_dir>/pgbackrest`.
    pub repo: Option<PathBuf>,
    /// The pgBackRest stanza (its name for this cluster).
    pub stanza: String,
    /// Full backups kept; older ones, and the WAL only they need, are expired.
    pub retention_full: u32,
    /// `archive_timeout` brigade sets on the server: a WAL segment is shipped at least this
    /// often even when little is written, which bounds the recovery point of an idle store.
    pub archive_timeout_secs: u32,
    /// Directory of the server's Unix socket (pgBackRest connects only through it).
    pub pg_socket_dir: PathBuf,
    /// Port of the server; default: the port of `storage.database_url`.
    pub pg_port: Option<u16>,
    /// Superuser pgBackRest connects as (it starts and stops backups on the server).
    pub pg_user: String,
    /// The pgBackRest program.
    pub pgbackrest: PathBuf,
    /// Folder of the PostgreSQL programs (`postgres`, `pg_ctl`) for the scratch cluster that
    /// checks each backup; default: `/usr/lib/postgresql/<server major>/bin`, else `pg_config
    /// --bindir`.
    pub pg_bin_dir: Option<PathBuf>,
    /// Where each backup is restored for its check (a scratch cluster, deleted afterwards);
    /// default: the system's temporary directory.
    pub scratch_dir: Option<PathBuf>,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            pg_data: None,
            repo: None,
            stanza: "brigade".into(),
            retention_full: 2,
            archive_timeout_secs: 60,
            pg_socket_dir: PathBuf::from("/var/run/postgresql"),
            pg_port: None,
            pg_user: "postgres".into(),
            pgbackrest: PathBuf::from("pgbackrest"),
            pg_bin_dir: None,
            scratch_dir: None,
        }
    }
}

impl BackupSettings {
    /// The first out-of-range key and what is wrong with it.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.stanza.is_empty()
            || !self
                .stanza
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err((
                "backup.stanza",
                "must be letters, digits, '-' or '_' (it names files in the repository)",
            ));
        }
        if !(1..=100).contains(&self.retention_full) {
            return Err(("backup.retention_full", "must be between 1 and 100"));
        }
        if !(1..=60).contains(&self.archive_timeout_secs) {
            return Err((
                "backup.archive_timeout_secs",
                "must be between 1 and 60 (it bounds the recovery point: one minute)",
            ));
        }
        if self.pg_user.is_empty() || self.pg_user.contains(['\'', '"', ' ']) {
            return Err(("backup.pg_user", "must be a plain role name"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hold_and_bad_values_name_the_key() {
        assert_eq!(BackupSettings::default().check(), Ok(()));
        let bad = |edit: fn(&mut BackupSettings)| {
            let mut settings = BackupSettings::default();
            edit(&mut settings);
            settings.check().unwrap_err().0
        };
        assert_eq!(
            bad(|s| s.archive_timeout_secs = 61),
            "backup.archive_timeout_secs"
        );
        assert_eq!(
            bad(|s| s.archive_timeout_secs = 0),
            "backup.archive_timeout_secs"
        );
        assert_eq!(bad(|s| s.retention_full = 0), "backup.retention_full");
        assert_eq!(bad(|s| s.stanza = "a b".into()), "backup.stanza");
        assert_eq!(bad(|s| s.pg_user = "x'y".into()), "backup.pg_user");
    }
}

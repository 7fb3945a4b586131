//! `[storage]`: where orders live, and which engine a database URL names.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Storage settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Directory holding the embedded SQLite database (`brigade.db`) when no URL is given.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; overrides `data_dir`. Also read from `DATABASE_URL`.
    pub database_url: Option<String>,
    /// Largest number of pooled database connections per process.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before failing with 503.
    pub acquire_timeout_ms: u64,
    /// How long SQLite waits on a lock held by another process before giving up.
    pub busy_timeout_ms: u64,
    /// `postgres://…` of a streaming standby of `database_url`; reads that tolerate staleness
    /// go there (see `brigade_store::replica`). Also read from `DATABASE_READ_URL`.
    pub read_url: Option<String>,
    /// A standby further behind the primary than this is skipped; reads go to the primary.
    pub read_max_lag_ms: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./brigade-data"),
            database_url: None,
            max_connections: 10,
            acquire_timeout_ms: 3_000,
            busy_timeout_ms: 5_000,
            read_url: None,
            read_max_lag_ms: 5_000,
        }
    }
}

impl StorageSettings {
    /// The URL to connect to: `database_url`, or the SQLite file under `data_dir`.
    pub fn effective_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("brigade.db").display()),
        }
    }

    /// The engine of [`effective_url`](Self::effective_url).
    pub fn database_kind(&self) -> Option<DatabaseKind> {
        DatabaseKind::of(&self.effective_url())
    }

    /// `database_url` parsed, when one is set and names an engine brigade knows (load refuses
    /// any other, naming `storage.database_url`).
    pub fn database(&self) -> Option<DatabaseUrl> {
        self.database_url.as_deref().and_then(DatabaseUrl::parse)
    }
}

/// A database URL told apart once: the engine it names and, for SQLite, the file. The one
/// place brigade reads a URL's scheme, so every process agrees on which store it talks to
/// (`postgres://` and `postgresql://` are both PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    kind: DatabaseKind,
}

impl DatabaseUrl {
    /// `url` with its engine; `None` for any scheme other than `sqlite:`, `postgres://` and
    /// `postgresql://`.
    pub fn parse(url: &str) -> Option<Self> {
        let kind = if url.starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DatabaseKind::Postgres
        } else {
            return None;
        };
        Some(Self {
            url: url.to_owned(),
            kind,
        })
    }

    /// The engine the URL names.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The URL as given (it may hold a password: redact before logging).
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The file of a `sqlite://PATH[?options]` URL, options dropped; `None` for PostgreSQL and
    /// for SQLite URLs that name no file that way (`sqlite::memory:`).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        if self.kind != DatabaseKind::Sqlite {
            return None;
        }
        let rest = self.url.strip_prefix("sqlite://")?;
        Some(PathBuf::from(rest.split('?').next().unwrap_or(rest)))
    }
}

/// The database engine a URL names ([`DatabaseUrl::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:…`: the embedded store.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

impl DatabaseKind {
    /// The engine `url` names; `None` for any other scheme.
    pub fn of(url: &str) -> Option<Self> {
        DatabaseUrl::parse(url).map(|url| url.kind)
    }

    /// Whether `url` names a PostgreSQL server.
    pub fn is_postgres(url: &str) -> bool {
        Self::of(url) == Some(Self::Postgres)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_its_engine_and_sqlite_its_file() {
        let sqlite = DatabaseUrl::parse("sqlite:///var/lib/brigade/brigade.db?mode=rwc").unwrap();
        assert_eq!(sqlite.kind(), DatabaseKind::Sqlite);
        assert_eq!(
            sqlite.sqlite_file(),
            Some(PathBuf::from("/var/lib/brigade/brigade.db"))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap().sqlite_file(),
            None
        );
        for url in ["postgres://app@db/brigade", "postgresql://app@db/brigade"] {
            let postgres = DatabaseUrl::parse(url).unwrap();
            assert_eq!(postgres.kind(), DatabaseKind::Postgres);
            assert_eq!(postgres.sqlite_file(), None);
        }
        assert_eq!(DatabaseUrl::parse("mysql://db/brigade"), None);
    }
}

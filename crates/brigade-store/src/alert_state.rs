//! Watch's own state — alert state, alert history, silences and the notification log — kept
//! in brigade's database through the store, like every other process's data.
//!
//! Watch used to open pools of its own on the replicas' SQLite file and write past the write
//! gate, so its writes competed with orders in SQLite's unfair busy handler. Through this module
//! every writer of the file queues at the same gate (`write_gate`), and the rule "a process
//! reaches the database only through brigade-store" has no exception. Only fault injection
//! (`brigade drill db-outage`, which must hold the file's lock to stage an outage) and
//! `brigade restore` touch the file otherwise.
//!
//! The tables come from the store's migrations (`0005_watch.sql`) and stay there: databases
//! that already applied it would refuse to migrate if it moved to a folder of its own (sqlx
//! checks every applied migration is still present). One SQL text serves both backends
//! (`$n` parameters, `ON CONFLICT … DO UPDATE`).

use brigade_core::config::{DatabaseKind, StorageSettings};
use serde::Serialize;
use sqlx::{PgPool, Row, SqlitePool};

use crate::Store as _;
use crate::StoreError;
use crate::write_gate::WriteGate;

/// A failure reading or writing watch's state.
#[derive(Debug, thiserror::Error)]
pub enum AlertStateError {
    /// Migrating or connecting failed.
    #[error("cannot open the database: {0}")]
    Connect(#[source] StoreError),
    /// A statement failed (or the write gate timed out).
    #[error("database error: {0}")]
    Query(#[from] StoreError),
    /// A stored body is not valid JSON of the expected shape.
    #[error("stored {0} is corrupt: {1}")]
    Corrupt(&'static str, serde_json::Error),
}

impl From<sqlx::Error> for AlertStateError {
    fn from(error: sqlx::Error) -> Self {
        Self::Query(crate::error::classify(error))
    }
}

/// One row of the alert history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// Its name.
    pub alertname: String,
    /// `pending`, `firing` or `inactive` (resolved).
    pub state: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// The alert at that moment.
    pub alert: serde_json::Value,
}

/// The pool, on either backend; SQLite's writes go through the write gate.
#[derive(Debug)]
enum Backend {
    Sqlite { pool: SqlitePool, writer: WriteGate },
    Postgres(PgPool),
}

/// Watch's state in brigade's database.
#[derive(Debug)]
pub struct AlertStateStore {
    backend: Backend,
}

/// Runs one statement on whichever pool is open; on SQLite a write first takes its turn at
/// the write gate.
macro_rules! on_pool {
    ($self:expr, write, $pool:ident => $body:expr) => {
        match &$self.backend {
            Backend::Sqlite {
                pool: $pool,
                writer,
            } => {
                let _turn = writer.enter().await?;
                $body
            }
            Backend::Postgres($pool) => $body,
        }
    };
    ($self:expr, read, $pool:ident => $body:expr) => {
        match &$self.backend {
            Backend::Sqlite { pool: $pool, .. } => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

impl AlertStateStore {
    /// Applies brigade's migrations (watch's tables included), then opens a small pool for
    /// watch: two connections on SQLite (one writer at a time anyway), four on PostgreSQL.
    pub async fn open(settings: &StorageSettings) -> Result<Self, AlertStateError> {
        // One pool, small: watch writes a few rows per evaluation. The schema is the store's;
        // migrating through this pool leaves no second connection behind.
        let url = settings.effective_url();
        let postgres = DatabaseKind::is_postgres(&url);
        let settings = StorageSettings {
            max_connections: if postgres { 4 } else { 2 },
            ..settings.clone()
        };
        let connect_error = AlertStateError::Connect;
        let backend = if postgres {
            let store = crate::PostgresStore::connect(&url, &settings)
                .await
                .map_err(connect_error)?;
            store.migrate().await.map_err(connect_error)?;
            Backend::Postgres(store.pool)
        } else {
            let store = crate::SqliteStore::connect(&url, &settings)
                .await
                .map_err(connect_error)?;
            store.migrate().await.map_err(connect_error)?;
            Backend::Sqlite {
                pool: store.pool,
                writer: store.writer,
            }
        };
        Ok(Self { backend })
    }

    /// The engine it stores in.
    pub fn kind(&self) -> DatabaseKind {
        match self.backend {
            Backend::Sqlite { .. } => DatabaseKind::Sqlite,
            Backend::Postgres(_) => DatabaseKind::Postgres,
        }
    }

    async fn upsert(
        &self,
        sql: &'static str,
        key: &str,
        body: &str,
        number: i64,
    ) -> Result<(), AlertStateError> {
        on_pool!(self, write, pool => {
            sqlx::query(sql).bind(key).bind(body).bind(number).execute(pool).await?;
        });
        Ok(())
    }

    /// Runs a query returning (text, text) rows, with one optional number bound to `$1`.
    async fn pairs(
        &self,
        sql: &'static str,
        bind: Option<i64>,
    ) -> Result<Vec<(String, String)>, AlertStateError> {
        let rows: Vec<(String, String)> = on_pool!(self, read, pool => {
            let mut query = sqlx::query(sql);
            if let Some(value) = bind {
                query = query.bind(value);
            }
            query
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|row| (row.get::<String, _>(0), row.get::<String, _>(1)))
                .collect()
        });
        Ok(rows)
    }

    /// Stores the alerts of one rule (JSON), replacing what was there.
    pub async fn save_rule_state(
        &self,
        rule_key: &str,
        body: &str,
        now: i64,
    ) -> Result<(), AlertStateError> {
        self.upsert(
            "INSERT INTO watch_alert_state (rule_key, body, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (rule_key) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            rule_key,
            body,
            now,
        )
        .await
    }

    /// Every rule's stored alerts: (rule key, JSON).
    pub async fn load_rule_states(&self) -> Result<Vec<(String, String)>, AlertStateError> {
        self.pairs("SELECT rule_key, body FROM watch_alert_state", None)
            .await
    }

    /// Appends a history row.
    pub async fn append_history(
        &self,
        fingerprint: &str,
        alertname: &str,
        state: &str,
        at_ms: i64,
        body: &str,
    ) -> Result<(), AlertStateError> {
        let id = uuid::Uuid::now_v7().to_string();
        on_pool!(self, write, pool => {
            sqlx::query(
                "INSERT INTO watch_alert_history (id, fingerprint, alertname, state, at_ms, body) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(fingerprint)
            .bind(alertname)
            .bind(state)
            .bind(at_ms)
            .bind(body)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The latest history rows, newest first.
    pub async fn history(&self, limit: i64) -> Result<Vec<HistoryRow>, AlertStateError> {
        let sql = "SELECT fingerprint, alertname, state, at_ms, body FROM watch_alert_history \
                   ORDER BY id DESC LIMIT $1";
        let rows: Vec<(String, String, String, i64, String)> = on_pool!(self, read, pool => {
            sqlx::query(sql)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                .collect()
        });
        rows.into_iter()
            .map(|(fingerprint, alertname, state, at_ms, body)| {
                Ok(HistoryRow {
                    fingerprint,
                    alertname,
                    state,
                    at_ms,
                    alert: serde_json::from_str(&body)
                        .map_err(|e| AlertStateError::Corrupt("history", e))?,
                })
            })
            .collect()
    }

    /// Stores a silence.
    pub async fn save_silence(
        &self,
        id: &str,
        body: &str,
        ends_at_ms: i64,
    ) -> Result<(), AlertStateError> {
        self.upsert(
            "INSERT INTO watch_silences (id, body, ends_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET body = excluded.body, ends_at_ms = excluded.ends_at_ms",
            id,
            body,
            ends_at_ms,
        )
        .await
    }

    /// Silences that ended less than `keep_ms` before `now` or not at all: (id, JSON).
    pub async fn load_silences(
        &self,
        now: i64,
        keep_ms: i64,
    ) -> Result<Vec<(String, String)>, AlertStateError> {
        self.pairs(
            "SELECT id, body FROM watch_silences WHERE ends_at_ms > $1",
            Some(now - keep_ms),
        )
        .await
    }

    /// Stores a notification-log entry.
    pub async fn save_log_entry(
        &self,
        key: &str,
        body: &str,
        now: i64,
    ) -> Result<(), AlertStateError> {
        self.upsert(
            "INSERT INTO watch_notification_log (log_key, body, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (log_key) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            key,
            body,
            now,
        )
        .await
    }

    /// Every notification-log entry: (key, JSON).
    pub async fn load_log(&self) -> Result<Vec<(String, String)>, AlertStateError> {
        self.pairs("SELECT log_key, body FROM watch_notification_log", None)
            .await
    }
}

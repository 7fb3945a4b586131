//! Alert state, history, silences and the notification log in brigade's database.
//!
//! The tables come from brigade-store's migrations (`0005_watch.sql`), applied by
//! `brigade_store::connect` at start like every other migration. brigade-watch then opens a
//! small pool of its own on the same URL: SQLite (WAL) or PostgreSQL, with one SQL text for
//! both (`$n` parameters, `ON CONFLICT … DO UPDATE`).

use std::str::FromStr;
use std::time::Duration;

use brigade_core::config::StorageSettings;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, Row, SqlitePool};

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Migrating or connecting failed.
    #[error("cannot open the database: {0}")]
    Connect(String),
    /// A statement failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored body is not valid JSON of the expected shape.
    #[error("stored {0} is corrupt: {1}")]
    Corrupt(&'static str, serde_json::Error),
}

/// The pool, on either backend.
#[derive(Debug, Clone)]
pub enum Db {
    /// The embedded SQLite file.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
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

/// Runs one statement on whichever pool is open.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

impl Db {
    /// Applies brigade's migrations (watch's tables included), then opens watch's pool.
    pub async fn connect(settings: &StorageSettings) -> Result<Self, DbError> {
        let store = brigade_store::connect(settings)
            .await
            .map_err(|e| DbError::Connect(e.to_string()))?;
        drop(store);
        let url = settings.effective_url();
        let acquire = Duration::from_millis(settings.acquire_timeout_ms);
        if brigade_core::config::DatabaseKind::is_postgres(&url) {
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(acquire)
                .connect(&url)
                .await
                .map_err(|e| DbError::Connect(e.to_string()))?;
            Ok(Db::Postgres(pool))
        } else {
            let options = SqliteConnectOptions::from_str(&url)
                .map_err(|e| DbError::Connect(e.to_string()))?
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_millis(settings.busy_timeout_ms));
            let pool = SqlitePoolOptions::new()
                .max_connections(2)
                .acquire_timeout(acquire)
                .connect_with(options)
                .await
                .map_err(|e| DbError::Connect(e.to_string()))?;
            Ok(Db::Sqlite(pool))
        }
    }

    async fn upsert(
        &self,
        sql: &'static str,
        key: &str,
        body: &str,
        number: i64,
    ) -> Result<(), DbError> {
        on_pool!(self, pool => {
            sqlx::query(sql).bind(key).bind(body).bind(number).execute(pool).await?;
        });
        Ok(())
    }

    /// Runs a query returning (text, text) rows, with one optional number bound to `$1`.
    async fn pairs(
        &self,
        sql: &'static str,
        bind: Option<i64>,
    ) -> Result<Vec<(String, String)>, DbError> {
        let rows: Vec<(String, String)> = on_pool!(self, pool => {
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
    ) -> Result<(), DbError> {
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
    pub async fn load_rule_states(&self) -> Result<Vec<(String, String)>, DbError> {
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
    ) -> Result<(), DbError> {
        let id = uuid::Uuid::now_v7().to_string();
        on_pool!(self, pool => {
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
    pub async fn history(&self, limit: i64) -> Result<Vec<HistoryRow>, DbError> {
        let sql = "SELECT fingerprint, alertname, state, at_ms, body FROM watch_alert_history \
                   ORDER BY id DESC LIMIT $1";
        let rows: Vec<(String, String, String, i64, String)> = on_pool!(self, pool => {
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
                        .map_err(|e| DbError::Corrupt("history", e))?,
                })
            })
            .collect()
    }

    /// Stores a silence.
    pub async fn save_silence(&self, id: &str, body: &str, ends_at_ms: i64) -> Result<(), DbError> {
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
    ) -> Result<Vec<(String, String)>, DbError> {
        self.pairs(
            "SELECT id, body FROM watch_silences WHERE ends_at_ms > $1",
            Some(now - keep_ms),
        )
        .await
    }

    /// Stores a notification-log entry.
    pub async fn save_log_entry(&self, key: &str, body: &str, now: i64) -> Result<(), DbError> {
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
    pub async fn load_log(&self) -> Result<Vec<(String, String)>, DbError> {
        self.pairs("SELECT log_key, body FROM watch_notification_log", None)
            .await
    }
}

//! The embedded backend: one SQLite file shared by every replica process on the machine.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use brigade_core::config::StorageSettings;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Pool, Sqlite};

use crate::error::classify;
use crate::{Backend, StoreResult};

/// brigade's SQLite migrations (also what a backup is checked against).
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A [`Store`](crate::Store) on a SQLite file.
///
/// WAL mode lets readers proceed while one writer writes; the write gate queues writers, also
/// those of other processes (see `write_gate`), and the busy timeout makes any other writer
/// wait for the lock instead of failing; `synchronous = NORMAL` is the
/// documented safe setting for WAL (a power cut may lose the last commits, never corrupt).
///
/// Write transactions run on a connection of their own ([`WriteConnection`]), reads on the
/// pool.
#[derive(Debug)]
pub struct SqliteStore {
    pub(crate) pool: Pool<Sqlite>,
    /// The write connection; `None` for a database in memory, which exists once per pool.
    writes: Option<WriteConnection>,
    pub(crate) migrator: &'static Migrator,
    pub(crate) writer: crate::WriteGate,
}

/// A pool of one connection for write transactions.
///
/// SQLite throws away a connection's page cache whenever another connection has written to
/// the file. With writes spread over the pool, nearly every write transaction started on a
/// connection whose cache another writer had just made stale, and read again the B-tree pages
/// an order touches. One connection that does every write of the process keeps them warm
/// (the write gate lets only one write transaction run at a time anyway).
///
/// A connection opened while the data directory is read-only stays read-only after the
/// directory is writable again, so a single long-lived connection would never recover from
/// that fault. A probe write (which readiness runs only while writes fail) therefore asks for
/// a fresh connection first ([`Self::renew`]): the pool closes the old one when it is next
/// taken and opens another.
#[derive(Debug)]
struct WriteConnection {
    pool: Pool<Sqlite>,
    renew: Arc<AtomicBool>,
}

impl WriteConnection {
    async fn open(options: SqliteConnectOptions, settings: &StorageSettings) -> StoreResult<Self> {
        let renew = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&renew);
        let pool = sqlite_pool_options(settings)
            .max_connections(1)
            .min_connections(0)
            .before_acquire(move |_, _| {
                // `false` closes the connection; the pool opens a fresh one in its place.
                let keep = !flag.swap(false, Ordering::AcqRel);
                Box::pin(async move { Ok(keep) })
            })
            .connect_with(options)
            .await
            .map_err(classify)?;
        Ok(Self { pool, renew })
    }

    /// The next write starts on a freshly opened connection.
    fn renew(&self) {
        self.renew.store(true, Ordering::Release);
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`), creating the
    /// directory that holds it.
    pub async fn connect(url: &str, settings: &StorageSettings) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(classify)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_millis(settings.busy_timeout_ms))
            .foreign_keys(true);
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| classify(sqlx::Error::Io(e)))?;
        }
        let file = (!is_in_memory(url)).then(|| options.get_filename().to_owned());
        let pool = sqlite_pool_options(settings)
            .connect_with(options.clone())
            .await
            .map_err(classify)?;
        let writes = match file {
            Some(_) => Some(WriteConnection::open(options, settings).await?),
            None => None,
        };
        Ok(Self {
            pool,
            writes,
            migrator: &MIGRATOR,
            writer: crate::WriteGate::serial(
                file.as_deref(),
                Duration::from_millis(settings.busy_timeout_ms),
            ),
        })
    }

    /// A stale-tolerant read: SQLite has no standby, so it is simply run on the file.
    pub(crate) async fn stale_read<T, F, Fut>(&self, run: F) -> StoreResult<T>
    where
        F: Fn(Pool<Sqlite>) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        run(self.pool.clone()).await.map_err(classify)
    }

    /// No standby, so no fence.
    pub(crate) async fn read_fence_now(&self) -> StoreResult<Option<crate::replica::Lsn>> {
        Ok(None)
    }

    /// Where write transactions run (see [`WriteConnection`]).
    pub(crate) fn write_pool(&self) -> &Pool<Sqlite> {
        self.writes.as_ref().map_or(&self.pool, |w| &w.pool)
    }

    /// The next write transaction starts on a freshly opened connection.
    pub(crate) fn renew_write_connection(&self) {
        if let Some(writes) = &self.writes {
            writes.renew();
        }
    }

    /// Closes the write connection and the pool.
    pub(crate) async fn close_pools(&self) {
        if let Some(writes) = &self.writes {
            writes.pool.close().await;
        }
        self.pool.close().await;
    }
}

/// Whether `url` names a database that lives in this process's memory (`sqlite::memory:`,
/// `?mode=memory`): no other process can open it, so it needs no cross-process write lock.
/// The pool settings of both SQLite pools: the common ones, without a ping when a
/// connection is taken.
///
/// sqlx pings a pooled connection before handing it out, so that a connection whose server
/// went away is replaced instead of failing a request. An SQLite connection has no server: its
/// ping is a message to the connection's worker thread and an answer back, proving only that
/// the thread runs, and it cost every statement and every transaction of a request two thread
/// switches of its own. What a ping would catch (a worker thread that panicked) fails the
/// statement itself with the same error.
fn sqlite_pool_options(settings: &StorageSettings) -> sqlx::pool::PoolOptions<Sqlite> {
    crate::pool_options::<Sqlite>(settings).test_before_acquire(false)
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

impl SqliteStore {
    /// SQLite runs in process, so the round trips that PostgreSQL's single-statement fast path
    /// saves cost nothing here: every order takes the general path.
    async fn place_in_one_statement(
        &self,
        _placement: &crate::Placement,
    ) -> StoreResult<Option<crate::PlaceOutcome>> {
        Ok(None)
    }

    /// The same for settling: the transaction in `sql_settle` is as short here.
    async fn settle_in_one_statement(
        &self,
        _plan: &crate::settle::SettlePlan,
    ) -> StoreResult<Option<bool>> {
        Ok(None)
    }
}

crate::sql::impl_store!(
    SqliteStore,
    Sqlite,
    backend = Backend::Sqlite,
    begin = "BEGIN IMMEDIATE",
    lock = ""
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_database_in_memory_counts_as_in_memory() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://brigade.db?mode=memory&cache=shared"));
        assert!(!is_in_memory("sqlite://brigade-data/brigade.db"));
        assert!(!is_in_memory(
            "sqlite:///var/lib/brigade/brigade.db?mode=rwc"
        ));
    }

    #[tokio::test]
    async fn a_store_on_a_file_queues_its_writers_on_a_lock_file_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("brigade.db");
        let url = format!("sqlite://{}", database.display());
        let _store = SqliteStore::connect(&url, &StorageSettings::default())
            .await
            .unwrap();
        assert!(dir.path().join("brigade.db.write-lock").exists());
    }

    /// The workspace's `.cargo/config.toml` compiles the bundled SQLite without memory
    /// statistics (a global mutex on every allocation inside SQLite); a build that lost the
    /// setting would still work, only slower, so this says so.
    #[tokio::test]
    async fn the_bundled_sqlite_is_built_with_the_workspace_options() {
        let store = SqliteStore::connect("sqlite::memory:", &StorageSettings::default())
            .await
            .unwrap();
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        for wanted in [
            "DEFAULT_MEMSTATUS=0",
            "LIKE_DOESNT_MATCH_BLOBS",
            "USE_ALLOCA",
        ] {
            assert!(
                options.iter().any(|option| option == wanted),
                "{wanted} missing from {options:?}"
            );
        }
    }
}

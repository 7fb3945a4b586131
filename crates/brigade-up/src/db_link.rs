//! The replicas' link to the database, owned by the supervisor so that the `db-outage` drill
//! can cut it for real and restore it.
//!
//! - PostgreSQL (`DATABASE_URL=postgres://…` set for `brigade up`): the replicas do not
//!   connect to the database directly but to a loopback TCP relay of the supervisor, which
//!   copies bytes both ways to the database. Cutting it resets every live connection and
//!   resets new ones at once after accepting them (the replicas see what a vanished database
//!   host looks like: `connection reset by peer`); restoring it lets new connections through.
//!   `brigade watch` and `brigade demo-data` keep connecting directly: the observer must see
//!   the outage, not suffer it. The rewritten URL keeps credentials and parameters and changes
//!   only host and port, so TLS with `sslmode=verify-full` cannot pass through it.
//! - SQLite (the default): the database is a file every replica opens itself, so there is no
//!   connection to cut. Cutting takes SQLite's write lock instead: the supervisor holds an
//!   `EXCLUSIVE` transaction on the file until restored. Reads still work (WAL), writes wait
//!   `storage.busy_timeout_ms` and fail, which is what a full or read-only disk looks like to
//!   the service.
//!
//! The ops API exposes it as `GET /api/db-link` and `PUT /api/db-link {"cut": true|false}`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use brigade_core::config::{DatabaseKind, DatabaseUrl};
use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::api::{LinkMode, LinkView};

/// How long taking the SQLite write lock may wait for writes in flight.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Why the link could not be set up or switched.
#[derive(Debug, thiserror::Error)]
pub enum DbLinkError {
    /// The relay's loopback listener could not be bound.
    #[error("cannot start the database relay: {0}")]
    Bind(#[source] std::io::Error),
    /// The SQLite write lock could not be taken or released.
    #[error("cannot lock the SQLite file {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
}

/// The link; cheap to clone, clones share it.
#[derive(Clone)]
pub struct DbLink(Arc<Link>);

enum Link {
    Relay(Relay),
    Sqlite(SqliteLock),
}

impl DbLink {
    /// Sets the link up from `DATABASE_URL` (the variable the replicas inherit and that wins
    /// over their `--data-dir`). Returns it and the environment the replicas need: for
    /// PostgreSQL a `DATABASE_URL` pointing at the relay; `None` when the URL names no TCP
    /// host (a Unix socket), so the replicas connect directly and the link cannot be cut.
    pub async fn start(
        data_dir: &Path,
    ) -> Result<Option<(Self, Vec<(String, String)>)>, DbLinkError> {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty());
        match url {
            Some(url) if DatabaseKind::is_postgres(&url) => {
                let Some((target, parsed)) = relay_target(&url) else {
                    return Ok(None);
                };
                let relay = Relay::start(target).await?;
                let env = vec![("DATABASE_URL".to_owned(), replica_url(parsed, relay.listen))];
                Ok(Some((Self(Arc::new(Link::Relay(relay))), env)))
            }
            Some(url) => {
                let path = DatabaseUrl::parse(&url).and_then(|url| url.sqlite_file());
                Ok(path.map(|path| {
                    (
                        Self(Arc::new(Link::Sqlite(SqliteLock::new(path)))),
                        Vec::new(),
                    )
                }))
            }
            None => Ok(Some((
                Self(Arc::new(Link::Sqlite(SqliteLock::new(
                    data_dir.join("brigade.db"),
                )))),
                Vec::new(),
            ))),
        }
    }

    /// Cuts (`true`) or restores (`false`) the link; doing what is already done changes
    /// nothing.
    pub async fn set_cut(&self, cut: bool) -> Result<LinkView, DbLinkError> {
        match &*self.0 {
            Link::Relay(relay) => relay.set_cut(cut),
            Link::Sqlite(lock) => lock.set_cut(cut).await?,
        }
        Ok(self.view())
    }

    /// What the link is and whether it is cut.
    pub fn view(&self) -> LinkView {
        match &*self.0 {
            Link::Relay(relay) => LinkView {
                mode: LinkMode::PostgresRelay,
                target: relay.target.clone(),
                relay: Some(relay.listen.to_string()),
                cut: *relay.cut.borrow(),
                connections: relay.open.load(Ordering::Relaxed),
                connections_total: relay.accepted.load(Ordering::Relaxed),
            },
            Link::Sqlite(lock) => LinkView {
                mode: LinkMode::SqliteLock,
                target: lock.path.display().to_string(),
                relay: None,
                cut: lock.cut.load(Ordering::Relaxed),
                connections: 0,
                connections_total: 0,
            },
        }
    }
}

/// The database's `host:port` and the URL to rewrite, or `None` without a TCP host.
fn relay_target(url: &str) -> Option<(String, reqwest::Url)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str().filter(|h| !h.is_empty())?.to_owned();
    let port = parsed.port().unwrap_or(5432);
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Some((format!("{host}:{port}"), parsed))
}

/// `url` with host and port replaced by the relay's.
fn replica_url(mut url: reqwest::Url, relay: SocketAddr) -> String {
    let _ = url.set_host(Some(&relay.ip().to_string()));
    let _ = url.set_port(Some(relay.port()));
    url.to_string()
}

/// The loopback TCP relay to PostgreSQL.
struct Relay {
    listen: SocketAddr,
    target: String,
    /// `true` while cut; every connection task watches it.
    cut: watch::Sender<bool>,
    open: Arc<AtomicUsize>,
    accepted: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: String) -> Result<Self, DbLinkError> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(DbLinkError::Bind)?;
        let listen = listener.local_addr().map_err(DbLinkError::Bind)?;
        let (cut, _) = watch::channel(false);
        let open = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            target.clone(),
            cut.clone(),
            open.clone(),
            accepted.clone(),
        ));
        tracing::info!(relay = %listen, target = %target, "database relay listening");
        Ok(Self {
            listen,
            target,
            cut,
            open,
            accepted,
            accept,
        })
    }

    fn set_cut(&self, cut: bool) {
        if self.cut.send_replace(cut) != cut {
            tracing::warn!(cut, target = %self.target, "database relay switched");
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: String,
    cut: watch::Sender<bool>,
    open: Arc<AtomicUsize>,
    accepted: Arc<AtomicU64>,
) {
    loop {
        let mut inbound = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "database relay cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let mut cut = cut.subscribe();
        if *cut.borrow_and_update() {
            // Refused: reset at once, like a database host that is not there.
            reset(inbound);
            continue;
        }
        let (target, open) = (target.clone(), open.clone());
        tokio::spawn(async move {
            let outbound = tokio::select! {
                outbound = TcpStream::connect(&target) => outbound,
                _ = cut.wait_for(|cut| *cut) => return,
            };
            let Ok(mut outbound) = outbound else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            open.fetch_add(1, Ordering::Relaxed);
            let copied = tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => true,
                _ = cut.wait_for(|cut| *cut) => false,
            };
            open.fetch_sub(1, Ordering::Relaxed);
            if !copied {
                // Cut: the replica's connection breaks mid-session with a reset.
                reset(inbound);
            }
        });
    }
}

/// Closes `stream` with a TCP reset rather than an orderly close: what a client sees when the
/// database host goes away, and unmistakable for a protocol answer.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// SQLite's write lock, held by the supervisor while cut.
struct SqliteLock {
    path: PathBuf,
    cut: AtomicBool,
    held: tokio::sync::Mutex<Option<SqliteConnection>>,
}

impl SqliteLock {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            cut: AtomicBool::new(false),
            held: tokio::sync::Mutex::new(None),
        }
    }

    async fn set_cut(&self, cut: bool) -> Result<(), DbLinkError> {
        let failed = |source| DbLinkError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let mut held = self.held.lock().await;
        match (cut, held.take()) {
            (true, Some(connection)) => *held = Some(connection),
            (true, None) => {
                let options = SqliteConnectOptions::from_str("sqlite://")
                    .map_err(failed)?
                    .filename(&self.path)
                    .busy_timeout(LOCK_WAIT);
                let mut connection = SqliteConnection::connect_with(&options)
                    .await
                    .map_err(failed)?;
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut connection)
                    .await
                    .map_err(failed)?;
                *held = Some(connection);
                tracing::warn!(path = %self.path.display(), "SQLite write lock taken");
            }
            (false, Some(mut connection)) => {
                let rolled_back = sqlx::raw_sql("ROLLBACK").execute(&mut connection).await;
                // Closing the connection ends the transaction even if ROLLBACK failed.
                let _ = connection.close().await;
                rolled_back.map_err(failed)?;
                tracing::warn!(path = %self.path.display(), "SQLite write lock released");
            }
            (false, None) => {}
        }
        self.cut.store(held.is_some(), Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn the_replicas_url_keeps_everything_but_host_and_port() {
        let (target, url) =
            relay_target("postgres://brigade:s3cret@db.internal:6543/orders?sslmode=prefer")
                .unwrap();
        assert_eq!(target, "db.internal:6543");
        let rewritten = replica_url(url, SocketAddr::from(([127, 0, 0, 1], 40001)));
        assert_eq!(
            rewritten,
            "postgres://brigade:s3cret@127.0.0.1:40001/orders?sslmode=prefer"
        );
        assert_eq!(
            relay_target("postgres://postgres@127.0.0.1/test")
                .unwrap()
                .0,
            "127.0.0.1:5432"
        );
        assert!(relay_target("postgres:///test?host=/run/postgresql").is_none());
    }

    /// An echo server standing in for the database.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        address
    }

    async fn round_trip(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        stream.write_all(b"ping").await?;
        let mut answer = vec![0; 4];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn a_cut_closes_live_connections_refuses_new_ones_and_a_restore_lets_them_through() {
        let relay = Relay::start(echo().await.to_string()).await.unwrap();
        let mut live = TcpStream::connect(relay.listen).await.unwrap();
        assert_eq!(round_trip(&mut live).await.unwrap(), b"ping");

        relay.set_cut(true);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), live.read_to_end(&mut rest))
            .await
            .expect("the live connection is closed at once");
        assert!(closed.is_err() || rest.is_empty(), "nothing more arrives");
        let mut refused = TcpStream::connect(relay.listen).await.unwrap();
        assert!(
            round_trip(&mut refused).await.is_err(),
            "a new connection is closed"
        );

        relay.set_cut(false);
        let mut again = TcpStream::connect(relay.listen).await.unwrap();
        assert_eq!(round_trip(&mut again).await.unwrap(), b"ping");
        assert_eq!(relay.accepted.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn the_sqlite_lock_blocks_writers_of_the_file_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brigade.db");
        let options = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_millis(200));
        let mut writer = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (x INTEGER)")
            .execute(&mut writer)
            .await
            .unwrap();

        let lock = SqliteLock::new(path);
        lock.set_cut(true).await.unwrap();
        lock.set_cut(true).await.unwrap();
        let blocked = sqlx::raw_sql("INSERT INTO t VALUES (1)")
            .execute(&mut writer)
            .await;
        assert!(blocked.is_err(), "writes fail while the lock is held");
        let read: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&mut writer)
            .await
            .unwrap();
        assert_eq!(read, 0, "reads still work");

        lock.set_cut(false).await.unwrap();
        sqlx::raw_sql("INSERT INTO t VALUES (1)")
            .execute(&mut writer)
            .await
            .unwrap();
    }
}

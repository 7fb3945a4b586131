//! The resource faults of `disk-full`, `db-refuse` and `cache-outage`: what each needs, how it
//! is made, and how it is undone (also when the drill fails half way).
//!
//! The drill runs beside `brigade up` and reads the same settings (`DATABASE_URL`,
//! `REDIS_URL`, `BRIGADE_STORAGE__DATA_DIR`, …), so it finds the resources `up`'s replicas use.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brigade_core::Settings;
use sqlx::Connection;

use super::DrillError;

/// The largest file system `disk-full` fills: a disk of its own made for the drill, never the
/// machine's main disk.
pub const DISK_FULL_MAX_BYTES: u64 = 1 << 30;

/// Name of the file `disk-full` fills the data directory's disk with.
const FILLER: &str = "drill-disk-full.filler";

/// A resource fault, ready to be made.
#[derive(Debug)]
pub enum Fault {
    /// Fill the data directory's file system (SQLite).
    DiskFull {
        /// The data directory.
        dir: PathBuf,
    },
    /// `ALTER DATABASE … ALLOW_CONNECTIONS false` and end the database's other sessions.
    DbRefuse {
        /// A URL of the database, to connect as its owner or a superuser.
        url: String,
    },
    /// Make Redis stop answering (`CLIENT PAUSE … ALL`) for the hold.
    CacheOutage {
        /// The Redis URL.
        url: String,
    },
}

impl Fault {
    /// The fault of drill `name` (`None`: not a resource drill), checked against the settings
    /// `up` runs with; a drill that does not apply is a setup error that says why.
    pub fn for_drill(name: &str) -> Option<Result<Self, DrillError>> {
        let fault = match name {
            "disk-full" => settings().and_then(|s| disk_full(&s)),
            "db-refuse" => settings().and_then(|s| match s.storage.database_url {
                Some(url) if brigade_core::config::DatabaseKind::is_postgres(&url) => {
                    Ok(Self::DbRefuse { url })
                }
                _ => Err(DrillError::Setup(
                    "db-refuse needs brigade up on PostgreSQL (DATABASE_URL=postgres://…)".into(),
                )),
            }),
            "cache-outage" => settings().and_then(|s| match s.cache.redis_url {
                Some(url) => Ok(Self::CacheOutage { url }),
                None => Err(DrillError::Setup(
                    "cache-outage needs brigade up with Redis (REDIS_URL)".into(),
                )),
            }),
            _ => return None,
        };
        Some(fault)
    }

    /// Makes the fault; it lasts until [`undo`](Self::undo) (Redis's pause lasts `hold`).
    pub async fn make(&self, hold: Duration) -> Result<(), DrillError> {
        match self {
            Self::DiskFull { dir } => fill(&dir.join(FILLER)),
            Self::DbRefuse { url } => refuse_connections(url, true).await,
            Self::CacheOutage { url } => pause_redis(url, hold).await,
        }
    }

    /// Ends the fault.
    pub async fn undo(&self) -> Result<(), DrillError> {
        match self {
            Self::DiskFull { dir } => match std::fs::remove_file(dir.join(FILLER)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(DrillError::Setup(format!("cannot remove the filler: {e}"))),
            },
            Self::DbRefuse { url } => refuse_connections(url, false).await,
            Self::CacheOutage { url } => unpause_redis(url).await,
        }
    }
}

fn settings() -> Result<Settings, DrillError> {
    Settings::load(None).map_err(|e| DrillError::Setup(format!("settings: {e}")))
}

/// `disk-full` applies when the store is SQLite and its data directory is on a small file
/// system of its own.
fn disk_full(settings: &Settings) -> Result<Fault, DrillError> {
    if settings.storage.database_url.is_some() {
        return Err(DrillError::Setup(
            "disk-full needs brigade up on SQLite (no DATABASE_URL)".into(),
        ));
    }
    let dir = settings.storage.data_dir.clone();
    let size = disk_size(&dir)?;
    if size > DISK_FULL_MAX_BYTES {
        return Err(DrillError::Setup(format!(
            "disk-full fills the data directory's file system, and {} is on one of {} MiB: \
             the drill only fills a disk of at most {} MiB made for it. Mounting one needs \
             root: stop brigade up, `sudo mount -t tmpfs -o size=64m tmpfs {}`, start it again",
            dir.display(),
            size >> 20,
            DISK_FULL_MAX_BYTES >> 20,
            dir.display()
        )));
    }
    Ok(Fault::DiskFull { dir })
}

fn disk_size(dir: &Path) -> Result<u64, DrillError> {
    let stat = rustix::fs::statvfs(dir).map_err(|e| {
        DrillError::Setup(format!(
            "cannot read the file system of {}: {e}",
            dir.display()
        ))
    })?;
    Ok(stat.f_blocks.saturating_mul(stat.f_frsize))
}

/// Writes `path` until the disk refuses another byte.
fn fill(path: &Path) -> Result<(), DrillError> {
    let mut file = std::fs::File::create(path)
        .map_err(|e| DrillError::Setup(format!("cannot create {}: {e}", path.display())))?;
    let block = vec![0u8; 64 * 1024];
    for size in [block.len(), 512, 1] {
        while file.write_all(&block[..size]).is_ok() {}
    }
    let _ = file.sync_all();
    Ok(())
}

/// Sets the database's `ALLOW_CONNECTIONS`; when refusing, also ends every other session on
/// it, since connections already open are not refused. PostgreSQL changes it only from
/// another database: the server's `postgres` database, with the same credentials.
async fn refuse_connections(url: &str, refuse: bool) -> Result<(), DrillError> {
    use std::str::FromStr;
    let failed = |e: sqlx::Error| DrillError::Setup(format!("db-refuse: {e}"));
    let options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(failed)?;
    let name = options
        .get_database()
        .ok_or_else(|| DrillError::Setup("db-refuse: DATABASE_URL names no database".into()))?
        .to_owned();
    let mut connection = sqlx::PgConnection::connect_with(&options.database("postgres"))
        .await
        .map_err(failed)?;
    let quoted = name.replace('"', "\"\"");
    let allow = if refuse { "false" } else { "true" };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{quoted}\" ALLOW_CONNECTIONS {allow}"
    )))
    .execute(&mut connection)
    .await
    .map_err(failed)?;
    if refuse {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&name)
        .execute(&mut connection)
        .await
        .map_err(failed)?;
    }
    let _ = connection.close().await;
    Ok(())
}

async fn redis_connection(url: &str) -> Result<redis::aio::MultiplexedConnection, DrillError> {
    let failed = |e: redis::RedisError| DrillError::Setup(format!("cache-outage: {e}"));
    redis::Client::open(url)
        .map_err(failed)?
        .get_multiplexed_async_connection()
        .await
        .map_err(failed)
}

/// Redis answers no client for `hold` (it ends by itself even if the drill dies).
async fn pause_redis(url: &str, hold: Duration) -> Result<(), DrillError> {
    let mut connection = redis_connection(url).await?;
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX))
        .arg("ALL")
        .query_async::<()>(&mut connection)
        .await
        .map_err(|e| DrillError::Setup(format!("cache-outage: {e}")))
}

async fn unpause_redis(url: &str) -> Result<(), DrillError> {
    let mut connection = redis_connection(url).await?;
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async::<()>(&mut connection)
        .await
        .map_err(|e| DrillError::Setup(format!("cache-outage: {e}")))
}

//! The scale-out backend: a PostgreSQL server shared by replicas on many machines.

use brigade_core::config::StorageSettings;
use sqlx::migrate::Migrator;
use sqlx::{Pool, Postgres};

use crate::error::classify;
use crate::{Backend, StoreResult};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A [`Store`](crate::Store) on PostgreSQL, through a connection pool.
#[derive(Debug)]
pub struct PostgresStore {
    pub(crate) pool: Pool<Postgres>,
    pub(crate) migrator: &'static Migrator,
    pub(crate) writer: crate::WriteGate,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`); fails at once when the server cannot be reached, so
    /// a misconfigured replica never reports ready.
    pub async fn connect(url: &str, settings: &StorageSettings) -> StoreResult<Self> {
        let pool = crate::pool_options::<Postgres>(settings)
            .connect(url)
            .await
            .map_err(classify)?;
        Ok(Self {
            pool,
            migrator: &MIGRATOR,
            writer: crate::WriteGate::open(),
        })
    }
}

crate::sql::impl_store!(
    PostgresStore,
    Postgres,
    backend = Backend::Postgres,
    begin = "BEGIN",
    lock = " FOR UPDATE"
);

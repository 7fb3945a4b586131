//! brigade-store: where orders live, behind one [`Store`] trait with two implementations.
//!
//! The embedded default is a SQLite file in WAL mode with a busy timeout, so several replica
//! processes on one machine can share it; PostgreSQL is the scale-out backend. Both run the
//! *same* SQL text (see `sql.rs`): only the schema's column types and two locking clauses
//! differ, so the behaviour the integration suite checks on one holds on the other. Migrations
//! are embedded in the binary and applied at start and by `brigade migrate`.
//!
//! The [`cache`] module holds the shared cache (Redis or in-process) used in front of the store.

pub mod alert_state;
mod batch;
pub mod cache;
mod error;
mod ledger;
mod order_list;
pub mod pg_archiver;
pub mod pg_backup;
mod postgres;
pub mod replica;
mod reports;
mod rows;
mod settle;
mod sql;
mod sql_accounts;
mod sql_catalogue;
mod sql_kitchen;
mod sql_ledger;
mod sql_orders;
mod sql_reports;
mod sql_settle;
mod sql_shared;
mod sqlite;
pub mod sqlite_backup;
pub(crate) mod trace;
mod write_gate;

use std::sync::Arc;

pub(crate) use write_gate::WriteGate;

use async_trait::async_trait;
use brigade_core::config::StorageSettings;
use brigade_domain::{
    Account, Actor, AuditEvent, Item, MenuItem, NewItem, NewShop, NewStation, Order, OrderStatus,
    OrderSummary, Payment, PaymentStatus, QueuedTicket, Shop, ShopPatch, Station, StationLoad,
    Ticket,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use error::{ConflictKind, StorageFault, StoreError};
pub use ledger::{AuditEntry, AuditFilter, NewPayment, RenderAnswer, Settled, Settlement};
pub use postgres::PostgresStore;
pub use reports::{DailySales, SalesFilter};
pub use sqlite::SqliteStore;

/// Result of every store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which database engine a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Connection pool occupancy, exported as metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Most connections the pool may open.
    pub max: u32,
}

/// Filters of `GET /api/v1/shops`.
#[derive(Debug, Clone, Default)]
pub struct ShopFilter {
    /// Only shops in this region.
    pub region: Option<String>,
    /// Only open (true) or closed (false) shops.
    pub open: Option<bool>,
}

/// Filters and page of `GET /api/v1/orders`. Orders come newest first.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Only this shop's orders.
    pub shop_id: Option<Uuid>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only this customer's orders.
    pub customer_id: Option<Uuid>,
    /// Only orders older than this one (the cursor of the previous page).
    pub before: Option<Uuid>,
    /// Page size.
    pub limit: u32,
}

/// Identifies a client's retry of the same request (`Idempotency-Key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Whose key it is: keys of different callers never collide.
    pub scope: String,
    /// The header value.
    pub key: String,
    /// Hash of the request body, to tell a retry from a different request reusing the key.
    pub request_hash: String,
}

/// An order ready to be written, with everything the API computed (shop, prices, tickets,
/// estimate). The store re-checks what may have changed since (shop open, items available,
/// prices) inside the transaction that writes it.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The order as it will be stored (status `awaiting_payment`, version 1, tickets held).
    pub order: Order,
    /// Who placed it.
    pub actor: Actor,
    /// The retry key, when the client sent one.
    pub idempotency: Option<IdempotencyKey>,
    /// Its payment, written `pending` with the order.
    pub payment: NewPayment,
}

/// What placing an order did.
#[derive(Debug, Clone)]
pub enum PlaceOutcome {
    /// A new order was written.
    Created(Box<Order>),
    /// The key was used before with the same body: the first response, to send again.
    Replayed(StoredResponse),
    /// The key was used before with a different body.
    KeyReused,
    /// The key's first request is still waiting for its payment to settle.
    InProgress {
        /// The order it placed (absent for keys written before payments existed).
        order_id: Option<Uuid>,
    },
}

/// A response kept for idempotent replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status of the first response.
    pub status: u16,
    /// Its JSON body.
    pub body: String,
}

/// Everything brigade keeps in its database.
///
/// Implementations must be safe to share between tasks and between processes: every method is
/// either a single statement or one transaction, and concurrent calls (two chefs claiming one
/// ticket) resolve to exactly one winner.
#[async_trait]
pub trait Store:
    Catalogue + Orders + Kitchen + Accounts + Ledger + Reports + Send + Sync + 'static
{
    /// Which engine this is.
    fn backend(&self) -> Backend;
    /// Pool occupancy.
    fn pool_stats(&self) -> PoolStats;
    /// Runs a trivial query; used by readiness.
    async fn ping(&self) -> StoreResult<()>;
    /// Commits a one-row write; readiness runs it while writes are failing, to learn when
    /// they work again.
    async fn probe_write(&self) -> StoreResult<()>;
    /// Applies pending migrations; returns how many were applied.
    async fn migrate(&self) -> StoreResult<usize>;
    /// Where a standby must have replayed to before it may serve the caller's reads, asked
    /// right after a write (`Brigade-Read-After`); `None` when there is no standby.
    async fn read_fence(&self) -> StoreResult<Option<replica::Lsn>>;
    /// Closes the pool, waiting for connections in use to be returned.
    async fn close(&self);
}

/// Shops, their stations, the items and the menu (`sql_catalogue.rs`).
///
/// Part of [`Store`]; a component that needs only this part can take `&dyn Catalogue`.
#[async_trait]
pub trait Catalogue: Send + Sync + 'static {
    /// Creates a shop.
    async fn create_shop(&self, shop: &NewShop, actor: &Actor) -> StoreResult<Shop>;
    /// Lists shops by name.
    async fn list_shops(&self, filter: &ShopFilter) -> StoreResult<Vec<Shop>>;
    /// One shop.
    async fn get_shop(&self, id: Uuid) -> StoreResult<Shop>;
    /// Changes the fields present in `patch`.
    async fn update_shop(&self, id: Uuid, patch: &ShopPatch, actor: &Actor) -> StoreResult<Shop>;
    /// Adds a station to a shop.
    async fn create_station(
        &self,
        shop_id: Uuid,
        station: &NewStation,
        actor: &Actor,
    ) -> StoreResult<Station>;
    /// A shop's stations by name.
    async fn list_stations(&self, shop_id: Uuid) -> StoreResult<Vec<Station>>;
    /// Work waiting at each station of a shop.
    async fn station_loads(&self, shop_id: Uuid) -> StoreResult<Vec<StationLoad>>;
    /// Adds an item to the catalogue.
    async fn create_item(&self, item: &NewItem, actor: &Actor) -> StoreResult<Item>;
    /// The catalogue by category and name.
    async fn list_items(&self) -> StoreResult<Vec<Item>>;
    /// One item.
    async fn get_item(&self, id: Uuid) -> StoreResult<Item>;
    /// Puts an item on a shop's menu (or marks it unavailable there).
    async fn set_availability(
        &self,
        shop_id: Uuid,
        item_id: Uuid,
        available: bool,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// A shop's menu: its items with availability and the station cooking each.
    async fn menu(&self, shop_id: Uuid) -> StoreResult<Vec<MenuItem>>;
}

/// Placing orders exactly once (idempotency keys), reading, listing and moving them through
/// their states (`sql_orders.rs`).
///
/// Part of [`Store`]; a component that needs only this part can take `&dyn Orders`.
#[async_trait]
pub trait Orders: Send + Sync + 'static {
    /// Writes a new order with its tickets in one transaction, honouring the idempotency key.
    async fn place_order(&self, placement: Placement) -> StoreResult<PlaceOutcome>;
    /// Looks up a stored idempotent response without writing anything.
    async fn find_idempotent(
        &self,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<(String, StoredResponse)>>;
    /// Deletes idempotency records older than `before`; returns how many.
    async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// One order with lines, tickets and history.
    async fn get_order(&self, id: Uuid) -> StoreResult<Order>;
    /// A page of orders, newest first.
    async fn list_orders(&self, filter: &OrderFilter) -> StoreResult<Vec<OrderSummary>>;
    /// Moves an order to `to` if its version is still `expected_version`. An authorised
    /// payment moves with it: to `capturing` when the order is delivered, to `voiding` when it
    /// is cancelled; the caller then makes that provider call.
    async fn transition_order(
        &self,
        id: Uuid,
        expected_version: i64,
        to: OrderStatus,
        actor: &Actor,
    ) -> StoreResult<Order>;
}

/// Station queues and the tickets chefs claim and complete (`sql_kitchen.rs`).
///
/// Part of [`Store`]; a component that needs only this part can take `&dyn Kitchen`.
#[async_trait]
pub trait Kitchen: Send + Sync + 'static {
    /// A station's queued and claimed tickets, oldest first.
    async fn station_queue(&self, station_id: Uuid) -> StoreResult<Vec<QueuedTicket>>;
    /// Claims the oldest claimable ticket of a station, if any.
    async fn claim_next(&self, station_id: Uuid, actor: &Actor) -> StoreResult<Option<Ticket>>;
    /// Claims one ticket; it must be the next claimable one of its station.
    async fn claim_ticket(&self, ticket_id: Uuid, actor: &Actor) -> StoreResult<Ticket>;
    /// Marks a claimed ticket done; the order becomes `ready` when it was the last one.
    async fn complete_ticket(&self, ticket_id: Uuid, actor: &Actor) -> StoreResult<Ticket>;
    /// The shop a station belongs to.
    async fn shop_of_station(&self, station_id: Uuid) -> StoreResult<Uuid>;
    /// The shop a ticket is cooked at.
    async fn shop_of_ticket(&self, ticket_id: Uuid) -> StoreResult<Uuid>;
}

/// Accounts, sessions and roles, and the token signing key (`sql_accounts.rs`).
///
/// Part of [`Store`]; a component that needs only this part can take `&dyn Accounts`.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    /// Creates an account; a taken e-mail address is a duplicate conflict.
    async fn create_account(
        &self,
        account: &NewAccountRecord,
        actor: &Actor,
    ) -> StoreResult<Account>;
    /// An account and its password hash, by (normalised) e-mail address.
    async fn account_credentials(&self, email: &str) -> StoreResult<Option<(Account, String)>>;
    /// One account.
    async fn get_account(&self, id: Uuid) -> StoreResult<Account>;
    /// Starts a login session for an account.
    async fn create_session(
        &self,
        account_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Uuid>;
    /// A session with its account, if it exists.
    async fn session(&self, id: Uuid) -> StoreResult<Option<SessionRecord>>;
    /// The session epoch: a number that changes whenever a session is revoked or deleted or
    /// an account changes (triggers of migration 0008 move it in the same transaction). A
    /// replica that caches sessions drops them when it sees this move.
    async fn session_epoch(&self) -> StoreResult<i64>;
    /// Every account, by e-mail address.
    async fn list_accounts(&self) -> StoreResult<Vec<Account>>;
    /// Replaces an account's password hash (`brigade demo-data --reset-passwords`).
    async fn set_password_hash(
        &self,
        id: Uuid,
        password_hash: &str,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Changes an account's role and shop.
    async fn set_role(
        &self,
        id: Uuid,
        role: brigade_domain::Role,
        shop_id: Option<Uuid>,
        actor: &Actor,
    ) -> StoreResult<Account>;
    /// Revokes a session; false when it was unknown or already revoked.
    async fn revoke_session(&self, id: Uuid, actor: &Actor) -> StoreResult<bool>;
    /// The secret stored under `id`, storing `candidate` first if there is none yet: the first
    /// replica to start picks the secret, every other one reads it.
    async fn signing_key(&self, id: &str, candidate: &str) -> StoreResult<String>;
}

/// The money and the history: payments and the audit trail, kept by every [`Store`].
///
/// A trait of its own so that its implementation lives in its own file (`sql_ledger.rs`).
#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Records the provider's answer to an order's authorisation: the payment, the order
    /// (`placed` with its tickets queued, or `payment_failed` with its tickets cancelled), the
    /// answer for `Idempotency-Key` replays and the audit trail, in one transaction. Only a
    /// final answer (status below 500) is kept; a 5xx answer releases the key instead, so a
    /// retry with it is a new request. Settling an already settled payment changes nothing
    /// (`Settled::changed` is false).
    async fn settle_authorization(
        &self,
        payment_id: Uuid,
        settlement: &Settlement,
        actor: &Actor,
        render: &RenderAnswer,
    ) -> StoreResult<Settled>;
    /// [`settle_authorization`](Ledger::settle_authorization) for the request that placed
    /// the order and still holds it and its pending payment as they were written: the same
    /// rows and answer, worked out from what it holds and written in one guarded transaction
    /// (one statement on PostgreSQL) instead of locked and re-read; the general way when the
    /// order or the payment changed meanwhile.
    async fn settle_placed(
        &self,
        placed: &Order,
        payment: &Payment,
        settlement: &Settlement,
        actor: &Actor,
        render: &RenderAnswer,
    ) -> StoreResult<Settled>;
    /// Records the end of a capture or void: `from` (`capturing`/`voiding`) becomes `to`;
    /// `None` when the payment was no longer in `from`.
    async fn finish_payment(
        &self,
        payment_id: Uuid,
        from: PaymentStatus,
        to: PaymentStatus,
        actor: &Actor,
    ) -> StoreResult<Option<Payment>>;
    /// Notes a provider call that got no answer, so the reconciler retries it later.
    async fn payment_attempt_failed(&self, payment_id: Uuid, reason: &str) -> StoreResult<()>;
    /// An order's payment, if it has one (orders placed before payments existed do not).
    async fn payment_of_order(&self, order_id: Uuid) -> StoreResult<Option<Payment>>;
    /// Payments owing a provider call whose last change is older than `stale_before`, each
    /// leased to this caller (its `updated_at` moves to now) so that reconcilers on other
    /// replicas skip it.
    async fn lease_unsettled_payments(
        &self,
        stale_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>>;

    /// A page of the audit trail, newest first.
    async fn audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEvent>>;
}

/// Precomputed reports, kept by every [`Store`]: work done off-peak so that reading a report
/// never scans the orders.
///
/// A trait of its own so that its implementation lives in its own file (`sql_reports.rs`).
#[async_trait]
pub trait Reports: Send + Sync + 'static {
    /// Recomputes one UTC day's sales rows from the orders and payments, replacing what was
    /// stored for that day (running it twice gives the same rows); returns the day's rows.
    async fn refresh_daily_sales(&self, day: chrono::NaiveDate) -> StoreResult<Vec<DailySales>>;
    /// Stored daily sales rows by day, then shop name.
    async fn daily_sales(&self, filter: &SalesFilter) -> StoreResult<Vec<DailySales>>;
}

/// What the store keeps of a new account.
#[derive(Clone)]
pub struct NewAccountRecord {
    /// Account id, chosen by the caller so a sign-up can name the new account as its actor.
    pub id: Uuid,
    /// Normalised e-mail address.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: brigade_domain::Role,
    /// Shop of a staff member or courier.
    pub shop_id: Option<Uuid>,
}

/// A login session and whom it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The account, as it is now (role changes apply to existing sessions at once).
    pub account: Account,
    /// When the session ends by itself.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Connects to the configured database (SQLite under `data_dir` unless `database_url` says
/// otherwise) and applies migrations.
pub async fn connect(settings: &StorageSettings) -> StoreResult<Arc<dyn Store>> {
    let store = connect_without_migrating(settings).await?;
    store.migrate().await?;
    Ok(store)
}

/// Like [`connect`], and on PostgreSQL a store that samples the primary's WAL archiving into
/// metrics and, with `storage.read_url` set, sends its stale-tolerant reads to that standby
/// (what `brigade serve` uses; one-off commands read and write the primary only).
pub async fn connect_serving(settings: &StorageSettings) -> StoreResult<Arc<dyn Store>> {
    let url = settings.effective_url();
    if !brigade_core::config::DatabaseKind::is_postgres(&url) {
        return connect(settings).await;
    }
    let store = PostgresStore::connect_with_standby(&url, settings).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}

/// Connects without touching the schema (for `brigade migrate`, which reports what it applied).
pub async fn connect_without_migrating(settings: &StorageSettings) -> StoreResult<Arc<dyn Store>> {
    let url = settings.effective_url();
    if brigade_core::config::DatabaseKind::is_postgres(&url) {
        Ok(Arc::new(PostgresStore::connect(&url, settings).await?))
    } else {
        Ok(Arc::new(SqliteStore::connect(&url, settings).await?))
    }
}

/// Pool settings shared by both backends. One connection is opened at once, so a wrong URL or
/// an unreachable server fails at start rather than at the first request.
///
/// A connection goes back to the pool only when it is outside any transaction: see
/// [`clean_after_use`].
pub(crate) fn pool_options<DB: sqlx::Database>(
    settings: &StorageSettings,
) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(1)
        .acquire_timeout(std::time::Duration::from_millis(
            settings.acquire_timeout_ms,
        ))
        .after_release(|connection, _| Box::pin(clean_after_use(connection)))
}

/// Whether a connection handed back is fit to be used again (false closes it).
///
/// A transaction that failed part-way is rolled back when it is dropped; but when the database
/// already ended it by itself (SQLite does on `SQLITE_FULL` and on I/O errors), that rollback
/// fails and the driver still counts the connection as inside a transaction, so every later
/// `BEGIN` on it would fail until the process restarts. The ping waits for the queued rollback
/// to have run; a connection still inside a transaction after it is closed and the pool opens
/// a fresh one when needed.
///
/// Only a connection that still counts itself inside a transaction can have a rollback queued
/// (SQLite's driver counts a transaction as ended once its worker ran the `COMMIT` or
/// `ROLLBACK`; PostgreSQL's when it sent it), so every other connection, the one of almost
/// every statement, goes back without the ping: on PostgreSQL a ping is a round trip to the
/// server, and pinging after every statement doubled the round trips of an order.
async fn clean_after_use<C: sqlx::Connection>(connection: &mut C) -> Result<bool, sqlx::Error> {
    if !connection.is_in_transaction() {
        return Ok(true);
    }
    connection.ping().await?;
    let clean = !connection.is_in_transaction();
    if !clean {
        tracing::warn!("a connection left inside a failed transaction was closed");
    }
    Ok(clean)
}

/// A database URL with any password replaced by `***`, safe to log.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            super::redact_url("postgres://app:s3cret@db:5432/brigade"),
            "postgres://app:***@db:5432/brigade"
        );
        assert_eq!(super::redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}

/// Helpers for tests that need the optional PostgreSQL and Redis servers.
#[doc(hidden)]
pub mod test_support {
    /// `REDIS_URL` for tests. Unset means "skip", except under `CI=true`, where a missing or
    /// unreachable Redis fails the run instead of silently skipping its suite.
    pub fn redis_url() -> Option<String> {
        required_env("REDIS_URL")
    }

    /// `BRIGADE_TEST_POSTGRES_URL` for tests, with the same CI rule as [`redis_url`].
    pub fn postgres_url() -> Option<String> {
        required_env("BRIGADE_TEST_POSTGRES_URL")
    }

    /// A small file system of its own mounted on a directory, for tests of a full or
    /// read-only disk. Mounting needs root: the constructors answer `None` otherwise, and the
    /// caller skips (saying so). Unmounted (and its image deleted) when dropped.
    #[derive(Debug)]
    pub struct SmallDisk {
        path: std::path::PathBuf,
        image: Option<std::path::PathBuf>,
    }

    fn quietly(command: &mut std::process::Command) -> bool {
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    impl SmallDisk {
        /// A tmpfs of `size_mib` MiB on `path` (an existing, empty directory): fills up like a
        /// disk, and SQLite's shared-memory file lives in memory pages that never need space.
        pub fn tmpfs(path: &std::path::Path, size_mib: u32) -> Option<Self> {
            quietly(
                std::process::Command::new("mount")
                    .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
                    .arg(path),
            )
            .then(|| Self {
                path: path.to_owned(),
                image: None,
            })
        }

        /// An ext4 file system of `size_mib` MiB in an image file beside `path`, on a loop
        /// device: it honours the immutable attribute (see [`set_read_only`]).
        ///
        /// [`set_read_only`]: SmallDisk::set_read_only
        pub fn ext4(path: &std::path::Path, size_mib: u32) -> Option<Self> {
            let image = path.with_extension("img");
            let file = std::fs::File::create(&image).ok()?;
            file.set_len(u64::from(size_mib) << 20).ok()?;
            let mounted = quietly(
                std::process::Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-m", "0"])
                    .arg(&image),
            ) && quietly(
                std::process::Command::new("mount")
                    .args(["-o", "loop"])
                    .arg(&image)
                    .arg(path),
            );
            if !mounted {
                let _ = std::fs::remove_file(&image);
                return None;
            }
            Some(Self {
                path: path.to_owned(),
                image: Some(image),
            })
        }

        /// Fills the disk with a file named `filler` until no byte is left.
        pub fn fill(&self) -> std::path::PathBuf {
            use std::io::Write;
            let filler = self.path.join("filler");
            let mut file = std::fs::File::create(&filler).expect("filler file");
            let block = vec![0u8; 64 * 1024];
            while file.write_all(&block).is_ok() {}
            while file.write_all(&block[..512]).is_ok() {}
            while file.write_all(&block[..1]).is_ok() {}
            let _ = file.sync_all();
            filler
        }

        /// Frees what [`fill`](Self::fill) took.
        pub fn free(&self) {
            let _ = std::fs::remove_file(self.path.join("filler"));
        }

        /// Makes the disk's top directory and its files unwritable (`true`) or writable again
        /// (`false`) with the immutable attribute (ext4 only): like a read-only mount, it also
        /// stops writes through files already open, which a remount cannot do while they are.
        /// SQLite's shared-memory index (`-shm`) is left alone: it is mapped into memory, and a
        /// write to a mapped page the file system refuses kills the process (SIGBUS).
        pub fn set_read_only(&self, read_only: bool) {
            assert!(self.try_set_read_only(read_only), "chattr failed");
        }

        fn try_set_read_only(&self, read_only: bool) -> bool {
            let flag = if read_only { "+i" } else { "-i" };
            let mut targets = vec![self.path.clone()];
            for entry in std::fs::read_dir(&self.path)
                .expect("disk readable")
                .flatten()
            {
                let shared_memory = entry.file_name().to_string_lossy().ends_with("-shm");
                if entry.file_type().is_ok_and(|kind| kind.is_file()) && !shared_memory {
                    targets.push(entry.path());
                }
            }
            std::process::Command::new("chattr")
                .arg(flag)
                .args(&targets)
                .status()
                .is_ok_and(|status| status.success())
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            self.try_set_read_only(false);
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .status();
            if let Some(image) = &self.image {
                let _ = std::fs::remove_file(image);
            }
        }
    }

    fn required_env(name: &str) -> Option<String> {
        match std::env::var(name) {
            Ok(value) if !value.is_empty() => Some(value),
            _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
                panic!("CI=true but {name} is not set: this suite must not be skipped in CI")
            }
            _ => None,
        }
    }
}

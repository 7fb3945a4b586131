//! Store errors: what went wrong, in terms the HTTP layer can map to a status code.

use brigade_domain::TransitionError;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named row does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current data (a duplicate, a closed shop, a taken ticket).
    #[error("{detail}")]
    Conflict {
        /// Which conflict, for clients that branch on it.
        kind: ConflictKind,
        /// What happened, for people.
        detail: String,
    },
    /// `If-Match` named an older version.
    #[error("the order is at version {current}")]
    VersionMismatch {
        /// The version the order is at now.
        current: i64,
    },
    /// The lifecycle does not allow the requested status change.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The database cannot be reached or is too busy; retrying later may work.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database failure (a bug or a broken schema).
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A stored value cannot be read back (e.g. an unknown status name).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Applying migrations failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Kinds of [`StoreError::Conflict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// A unique name, SKU or category is already taken.
    Duplicate,
    /// The shop is closed.
    ShopClosed,
    /// An item is not (or no longer) available at the shop.
    ItemUnavailable,
    /// Someone else claimed the ticket first.
    TicketTaken,
    /// An older ticket at the station must be claimed first.
    NotNextInQueue,
    /// The ticket's order has not been accepted, or was cancelled.
    OrderNotCookable,
    /// The ticket is not in a state that allows this.
    TicketState,
}

impl ConflictKind {
    /// Stable slug used in problem `type` URIs.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::ShopClosed => "shop-closed",
            Self::ItemUnavailable => "item-unavailable",
            Self::TicketTaken => "ticket-taken",
            Self::NotNextInQueue => "not-next-in-queue",
            Self::OrderNotCookable => "order-not-cookable",
            Self::TicketState => "ticket-state",
        }
    }
}

impl StoreError {
    /// A conflict of `kind`.
    pub fn conflict(kind: ConflictKind, detail: impl Into<String>) -> Self {
        Self::Conflict {
            kind,
            detail: detail.into(),
        }
    }
}

/// Sorts a sqlx error into unavailable (retry later) or a real failure.
///
/// A protocol error is a connection that broke mid-conversation: a server that died between
/// two messages, or a relay in front of it (`brigade up`'s database link, a pooler) that took
/// the connection and dropped it because the server behind is gone — while a lost PostgreSQL
/// cluster is restored, every new connection ends that way. The pool opens a fresh one for the
/// next request, so it is a retry, not a failure.
pub(crate) fn classify(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => StoreError::Unavailable(error),
        sqlx::Error::Database(db) if is_retryable(db.as_ref()) => StoreError::Unavailable(error),
        sqlx::Error::RowNotFound => StoreError::NotFound("row"),
        _ => StoreError::Database(error),
    }
}

/// Like [`classify`], but a unique-constraint violation becomes a duplicate conflict.
pub(crate) fn unique_as(detail: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::conflict(ConflictKind::Duplicate, detail)
        }
        _ => classify(error),
    }
}

/// Why the database could not take a write, when the cause is its storage rather than load.
///
/// Readiness uses it: a replica whose writes fail this way is not ready until a write
/// succeeds again, while a busy database (lock waits, a full pool) never flips readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// No space left on the device (SQLITE_FULL, PostgreSQL 53100).
    DiskFull,
    /// The database or its directory cannot be written (SQLITE_READONLY, a read-only file
    /// system, a PostgreSQL standby: 25006).
    ReadOnly,
    /// The operating system failed a read or write (SQLITE_IOERR, SQLITE_CANTOPEN, 58030).
    Io,
}

impl StorageFault {
    /// Stable name, shown in readiness checks and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DiskFull => "disk-full",
            Self::ReadOnly => "read-only",
            Self::Io => "io-error",
        }
    }
}

impl StoreError {
    /// The storage fault behind this error, if it is one (see [`StorageFault`]).
    pub fn storage_fault(&self) -> Option<StorageFault> {
        match self {
            Self::Unavailable(sqlx::Error::Database(db)) => storage_fault(db.as_ref()),
            _ => None,
        }
    }

    /// Whether retrying the same request later may succeed (the answer is a 503).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// The database-specific codes that mean "try again later": lock waits and serialization
/// failures, a server that is starting, stopping or full of connections, a lost connection,
/// and a storage that cannot take writes right now.
fn is_retryable(db: &dyn sqlx::error::DatabaseError) -> bool {
    is_busy(db) || storage_fault(db).is_some() || is_refusing(db)
}

/// SQLite's "database is locked" after the busy timeout, or PostgreSQL's serialization and
/// deadlock failures: the operation may succeed when retried.
fn is_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    match sqlite_primary_code(db) {
        Some(code) => matches!(code, SQLITE_BUSY | SQLITE_LOCKED),
        None => matches!(
            db.code().as_deref(),
            Some("40001" | "40P01" | "55P03" | "57014")
        ),
    }
}

/// A PostgreSQL server that does not take work right now: the database does not accept
/// connections (55000, `ALLOW_CONNECTIONS false`), the server shuts down, crashed or is
/// starting (57P01, 57P02, 57P03), too many connections or too few resources (class 53
/// other than disk full), or any connection exception (class 08).
fn is_refusing(db: &dyn sqlx::error::DatabaseError) -> bool {
    if sqlite_primary_code(db).is_some() {
        return false;
    }
    let Some(code) = db.code() else {
        return false;
    };
    matches!(
        code.as_ref(),
        "55000" | "57P01" | "57P02" | "57P03" | "57P05"
    ) || code.starts_with("08")
        || code.starts_with("53")
}

/// The storage fault a database error reports, if any.
fn storage_fault(db: &dyn sqlx::error::DatabaseError) -> Option<StorageFault> {
    match sqlite_primary_code(db) {
        Some(SQLITE_FULL) => Some(StorageFault::DiskFull),
        Some(SQLITE_READONLY) => Some(StorageFault::ReadOnly),
        Some(SQLITE_IOERR | SQLITE_CANTOPEN) => Some(StorageFault::Io),
        Some(_) => None,
        None => match db.code().as_deref() {
            Some("53100") => Some(StorageFault::DiskFull),
            Some("25006") => Some(StorageFault::ReadOnly),
            Some("58030") => Some(StorageFault::Io),
            _ => None,
        },
    }
}

const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;

/// SQLite reports extended result codes (e.g. 778, SQLITE_IOERR_WRITE); their low byte is the
/// primary code. `None` for any other database.
fn sqlite_primary_code(db: &dyn sqlx::error::DatabaseError) -> Option<i64> {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    let code: i64 = db.code()?.parse().ok()?;
    Some(code & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server error carrying SQLSTATE `code` (as PostgreSQL sends them).
    #[derive(Debug, thiserror::Error)]
    #[error("server error {0}")]
    struct ServerError(&'static str);

    impl sqlx::error::DatabaseError for ServerError {
        fn message(&self) -> &str {
            "server error"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn postgres_error(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(ServerError(code)))
    }

    #[test]
    fn a_server_refusing_work_is_unavailable_not_a_failure() {
        for code in [
            "55000", "57P01", "57P02", "57P03", "53300", "53000", "08006", "08001", "40001",
            "40P01", "55P03",
        ] {
            assert!(
                matches!(classify(postgres_error(code)), StoreError::Unavailable(_)),
                "SQLSTATE {code} is retryable"
            );
        }
        assert!(matches!(
            classify(postgres_error("42P01")),
            StoreError::Database(_)
        ));
        assert_eq!(
            classify(postgres_error("53100")).storage_fault(),
            Some(StorageFault::DiskFull)
        );
        assert_eq!(classify(postgres_error("57P01")).storage_fault(), None);
    }

    #[test]
    fn a_connection_dropped_mid_conversation_is_unavailable() {
        let dropped = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert!(classify(dropped).is_retryable());
    }
}

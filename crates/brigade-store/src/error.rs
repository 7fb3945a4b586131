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
pub(crate) fn classify(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(error)
        }
        sqlx::Error::Database(db) if is_busy(db.as_ref()) => StoreError::Unavailable(error),
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

/// SQLite's "database is locked" after the busy timeout, or PostgreSQL's serialization and
/// deadlock failures: the operation may succeed when retried.
fn is_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    matches!(
        db.code().as_deref(),
        Some("5" | "6" | "261" | "262" | "517" | "40001" | "40P01" | "55P03")
    )
}

//! The scale-out backend: a PostgreSQL server shared by replicas on many machines.

use brigade_core::config::StorageSettings;
use sqlx::migrate::Migrator;
use sqlx::{Pool, Postgres};
use uuid::Uuid;

use crate::error::classify;
use crate::{Backend, StoreResult};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A [`Store`](crate::Store) on PostgreSQL, through a connection pool, with an optional
/// streaming standby for stale-tolerant reads (see [`crate::replica`]).
#[derive(Debug)]
pub struct PostgresStore {
    pub(crate) pool: Pool<Postgres>,
    pub(crate) migrator: &'static Migrator,
    pub(crate) writer: crate::WriteGate,
    pub(crate) replica: Option<crate::replica::Replica>,
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
            replica: None,
        })
    }

    /// Like [`connect`](Self::connect), plus the standby at `settings.read_url` (when set)
    /// for the reads that tolerate staleness, and the primary's WAL archiving sampled into
    /// metrics ([`crate::pg_archiver`]): what a serving replica needs. The standby may be down
    /// at start.
    pub async fn connect_with_standby(url: &str, settings: &StorageSettings) -> StoreResult<Self> {
        let mut store = Self::connect(url, settings).await?;
        crate::pg_archiver::start(store.pool.clone());
        if let Some(read_url) = &settings.read_url {
            store.replica = Some(crate::replica::Replica::start(
                read_url,
                settings,
                store.pool.clone(),
            )?);
        }
        Ok(store)
    }

    /// Runs a stale-tolerant read where [`Replica::route`](crate::replica::Replica) sends it:
    /// the standby, or the primary. A read the standby fails is run again on the primary, so
    /// a standby that goes away costs no failed request.
    pub(crate) async fn stale_read<T, F, Fut>(&self, run: F) -> StoreResult<T>
    where
        F: Fn(Pool<Postgres>) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        use crate::replica::{Reason, Replica, Route};
        let Some(replica) = &self.replica else {
            return run(self.pool.clone()).await.map_err(classify);
        };
        let route = replica.route(crate::replica::current_read_scope());
        if route == Route::Standby {
            match run(replica.standby.clone()).await.map_err(classify) {
                Ok(value) => {
                    Replica::count(route);
                    return Ok(value);
                }
                Err(error) => replica.failed(&error),
            }
        }
        let value = run(self.pool.clone()).await.map_err(classify)?;
        Replica::count(match route {
            Route::Standby => Route::Primary(Reason::StandbyError),
            primary => primary,
        });
        Ok(value)
    }

    /// The primary's WAL insert position now: after a write committed it is at or past the
    /// write's commit record, so a standby that replayed up to it holds the write. `None`
    /// without a standby (nobody needs it).
    pub(crate) async fn read_fence_now(&self) -> StoreResult<Option<crate::replica::Lsn>> {
        if self.replica.is_none() {
            return Ok(None);
        }
        let position: i64 =
            sqlx::query_scalar("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint")
                .fetch_one(&self.pool)
                .await
                .map_err(classify)?;
        Ok(Some(crate::replica::Lsn(
            u64::try_from(position).unwrap_or(0),
        )))
    }

    /// Where write transactions run: the primary's pool (PostgreSQL's connections all see
    /// each other's writes without losing a cache).
    pub(crate) fn write_pool(&self) -> &Pool<Postgres> {
        &self.pool
    }

    /// Nothing to renew: a broken PostgreSQL connection fails its ping and is replaced.
    pub(crate) fn renew_write_connection(&self) {}

    /// Closes the standby (and its sampler), then the primary's pool.
    pub(crate) async fn close_pools(&self) {
        if let Some(replica) = &self.replica {
            replica.close().await;
        }
        self.pool.close().await;
    }
}

/// Writes a whole order — key, order, lines, tickets, first event — in one statement.
///
/// A statement is atomic on its own, so this needs no `BEGIN`/`COMMIT` and costs one round
/// trip instead of seven. Every check of the general path is a condition of the statement: the
/// shop is open, every item is available there at the price, name and station the order was
/// built with, and the idempotency key is new. When any of them fails nothing is written and
/// the general path runs, which tells which check failed (or replays the stored response).
const PLACE_IN_ONE_STATEMENT: &str = "\
WITH wanted AS (
    SELECT * FROM unnest($16::uuid[], $17::text[], $18::bigint[], $19::bigint[], $20::uuid[])
        WITH ORDINALITY AS w(item_id, name, quantity, price_minor, station_id, line_no)
), valid AS (
    SELECT count(*) AS n FROM wanted w
    JOIN items i ON i.id = w.item_id AND i.price_minor = w.price_minor
        AND i.currency = $6 AND i.name = w.name
    JOIN shop_items si ON si.item_id = w.item_id AND si.shop_id = $2 AND si.available
    JOIN station_categories sc ON sc.shop_id = $2 AND sc.category = i.category
        AND sc.station_id = w.station_id
), checked AS (
    SELECT EXISTS (SELECT 1 FROM shops WHERE id = $2 AND open)
        AND (SELECT n FROM valid) = cardinality($16::uuid[]) AS ok
), idempotency AS (
    INSERT INTO idempotency_keys (scope, key, request_hash, status, response_body, created_at, order_id)
    SELECT $21, $22, $23, 0, '', $13, $1 FROM checked WHERE ok AND $21::text IS NOT NULL
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING 1
), placed AS (
    INSERT INTO orders (id, shop_id, status, version, total_minor, currency, delivery_lat,
        delivery_lon, distance_m, eta_seconds, estimated_ready_at, estimated_delivery_at,
        created_at, updated_at, placed_by, customer_id)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $28 FROM checked
    WHERE ok AND ($21::text IS NULL OR EXISTS (SELECT 1 FROM idempotency))
    RETURNING id
), lines AS (
    INSERT INTO order_lines (order_id, line_no, item_id, name, quantity, unit_price_minor, station_id)
    SELECT placed.id, w.line_no - 1, w.item_id, w.name, w.quantity, w.price_minor, w.station_id
    FROM placed, wanted w
), tickets AS (
    INSERT INTO tickets (id, order_id, shop_id, station_id, status, work_seconds, created_at)
    SELECT t.id, placed.id, $2, t.station_id, 'held', t.work_seconds, $13
    FROM placed, unnest($25::uuid[], $26::uuid[], $27::bigint[]) AS t(id, station_id, work_seconds)
), events AS (
    INSERT INTO order_events (order_id, seq, status, actor, at)
    SELECT placed.id, 1, $3, $15, $13 FROM placed
), payment AS (
    INSERT INTO payments (id, order_id, provider, status, amount_minor, currency, created_at, updated_at)
    SELECT $29, placed.id, $30, 'pending', $5, $6, $13, $13 FROM placed
), audit AS (
    INSERT INTO audit_events (id, at, actor, action, entity, entity_id, before, after, request_id)
    SELECT $31, $13, $15, 'order.placed', 'order', placed.id::text, NULL, $32, $24 FROM placed
)
SELECT count(*) FROM placed";

impl PostgresStore {
    /// Tries [`PLACE_IN_ONE_STATEMENT`]; `None` means "take the general path".
    async fn place_in_one_statement(
        &self,
        placement: &crate::Placement,
    ) -> StoreResult<Option<crate::PlaceOutcome>> {
        let crate::Placement {
            order,
            actor,
            idempotency,
            payment,
        } = placement;
        // The statement writes exactly what a fresh placement holds; anything else (and any
        // failed check) goes the general way.
        let fresh = matches!(order.history.as_slice(), [event]
            if event.at == order.created_at && event.actor == *actor && event.status == order.status)
            && order.tickets.iter().all(|t| {
                t.status == brigade_domain::TicketStatus::Held && t.created_at == order.created_at
            });
        if !fresh {
            return Ok(None);
        }
        let request_id = brigade_core::request::current().map(|context| context.request_id);
        let audit = crate::sql_shared::placed_audit(order, payment)
            .after
            .map(|value| value.to_string());
        let lines = &order.lines;
        let placed: i64 =
            crate::sql_shared::bind_order_row!(sqlx::query_scalar(PLACE_IN_ONE_STATEMENT), order)
                .bind(&actor.0)
                .bind(lines.iter().map(|l| l.item_id).collect::<Vec<_>>())
                .bind(lines.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
                .bind(lines.iter().map(|l| l.quantity).collect::<Vec<_>>())
                .bind(lines.iter().map(|l| l.unit_price_minor).collect::<Vec<_>>())
                .bind(lines.iter().map(|l| l.station_id).collect::<Vec<_>>())
                .bind(idempotency.as_ref().map(|k| k.scope.as_str()))
                .bind(idempotency.as_ref().map(|k| k.key.as_str()))
                .bind(idempotency.as_ref().map(|k| k.request_hash.as_str()))
                .bind(request_id)
                .bind(order.tickets.iter().map(|t| t.id).collect::<Vec<_>>())
                .bind(
                    order
                        .tickets
                        .iter()
                        .map(|t| t.station_id)
                        .collect::<Vec<_>>(),
                )
                .bind(
                    order
                        .tickets
                        .iter()
                        .map(|t| t.work_seconds)
                        .collect::<Vec<_>>(),
                )
                .bind(order.customer_id)
                .bind(payment.id)
                .bind(&payment.provider)
                .bind(Uuid::now_v7())
                .bind(audit)
                .fetch_one(&self.pool)
                .await
                .map_err(classify)?;
        Ok((placed == 1).then(|| crate::PlaceOutcome::Created(Box::new(order.clone()))))
    }
}

/// Writes a [`SettlePlan`](crate::settle::SettlePlan) — order, payment, event, tickets, the
/// replay answer and two audit events — in one statement, one round trip instead of the
/// transaction's nine.
///
/// The order is updated first (every other part reads `moved`, so it runs first and takes the
/// order's row lock, the lock order of every transaction), and only while it still has the
/// status and version the caller wrote and its payment is still pending. Whoever settles a
/// payment otherwise (the general path, another replica's reconciler) locks and moves the
/// order in the same transaction, so once this statement holds the order's lock the payment
/// is still pending; should it not be, the last line divides by zero, which undoes the whole
/// statement rather than leave an order settled without its payment.
const SETTLE_IN_ONE_STATEMENT: &str = "\
WITH moved AS (
    UPDATE orders SET status = $1, version = $2, updated_at = $3
    WHERE id = $4 AND status = $5 AND version = $6
        AND EXISTS (SELECT 1 FROM payments WHERE id = $7 AND order_id = $4 AND status = 'pending')
    RETURNING id
), paid AS (
    UPDATE payments SET status = $8, reference = COALESCE($9, reference), reason = $10,
        updated_at = $3
    WHERE id = $7 AND order_id = (SELECT id FROM moved) AND status = 'pending'
    RETURNING id
), event AS (
    INSERT INTO order_events (order_id, seq, status, actor, at)
    SELECT id, $11, $1, $12, $3 FROM moved
), tickets AS (
    UPDATE tickets SET status = $13 WHERE order_id = (SELECT id FROM moved) AND status = 'held'
), answer AS (
    UPDATE idempotency_keys SET status = $14, response_body = $15
    WHERE order_id = (SELECT id FROM moved) AND $16::boolean
), released AS (
    DELETE FROM idempotency_keys WHERE order_id = (SELECT id FROM moved) AND NOT $16::boolean
), audit AS (
    INSERT INTO audit_events (id, at, actor, action, entity, entity_id, before, after, request_id)
    SELECT a.id, $3, $12, a.action, a.entity, a.entity_id, a.before, a.after, $17
    FROM moved, unnest($18::uuid[], $19::text[], $20::text[], $21::text[], $22::text[],
        $23::text[]) AS a(id, action, entity, entity_id, before, after)
)
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM moved) THEN false
    ELSE 1 / (SELECT count(*) FROM paid) = 1 END";

impl PostgresStore {
    /// Writes `plan` with [`SETTLE_IN_ONE_STATEMENT`]: `Some(false)` when the order or its
    /// payment changed since the caller placed it (nothing written).
    pub(crate) async fn settle_in_one_statement(
        &self,
        plan: &crate::settle::SettlePlan,
    ) -> StoreResult<Option<bool>> {
        let (order, payment) = (&plan.order, &plan.payment);
        let audit = &plan.audit;
        let settled: bool = sqlx::query_scalar(SETTLE_IN_ONE_STATEMENT)
            .bind(order.status.as_str())
            .bind(order.version)
            .bind(order.updated_at)
            .bind(order.id)
            .bind(brigade_domain::OrderStatus::AwaitingPayment.as_str())
            .bind(plan.from_version)
            .bind(payment.id)
            .bind(payment.status.as_str())
            .bind(payment.reference.as_deref())
            .bind(payment.reason.as_deref())
            .bind(plan.event_seq)
            .bind(plan.actor())
            .bind(plan.tickets.as_str())
            .bind(i64::from(plan.answer.status))
            .bind(plan.answer.body.as_str())
            .bind(plan.keeps_answer())
            .bind(brigade_core::request::current().map(|context| context.request_id))
            .bind(audit.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
            .bind(audit.iter().map(|e| e.action).collect::<Vec<_>>())
            .bind(audit.iter().map(|e| e.entity).collect::<Vec<_>>())
            .bind(
                audit
                    .iter()
                    .map(|e| e.entity_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                audit
                    .iter()
                    .map(|e| e.before.as_ref().map(ToString::to_string))
                    .collect::<Vec<_>>(),
            )
            .bind(
                audit
                    .iter()
                    .map(|e| e.after.as_ref().map(ToString::to_string))
                    .collect::<Vec<_>>(),
            )
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(Some(settled))
    }
}

crate::sql::impl_store!(
    PostgresStore,
    Postgres,
    backend = Backend::Postgres,
    begin = "BEGIN",
    lock = " FOR UPDATE"
);

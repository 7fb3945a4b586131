//! Statements of one transaction whose results nobody reads — the rows of a placed order, of a
//! settlement — written one after another into one builder and sent in as few messages as the
//! backend allows.
//!
//! An SQLite connection runs on a worker thread of its own: each statement sent alone is a
//! message to that thread and an answer back, two thread switches, which cost a placed order
//! more than SQLite's own work on its rows. SQLite takes several statements in one message
//! (its parameters are numbered across them), so on SQLite a batch is one hand-off however
//! many statements it holds. PostgreSQL's extended protocol takes one statement with
//! parameters per message, so there each statement is sent when it ends, as it was before.
//! The SQL is the same on both; only how it travels differs.

use sqlx::{Database, Executor, IntoArguments, QueryBuilder};

use crate::StoreResult;
use crate::error::classify;

/// Whether a backend's statements of one batch travel together (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Travel {
    /// All statements of the batch in one message (SQLite).
    Together,
    /// Each statement in a message of its own (PostgreSQL).
    OneByOne,
}

/// Statements of one transaction, sent by [`Batch::send`] (and, when they travel one by one,
/// by [`Batch::end_statement`]).
pub(crate) struct Batch<DB: Database> {
    sql: QueryBuilder<DB>,
    travel: Travel,
    /// Statements ended and not sent yet.
    pending: usize,
}

impl<DB: Database> Batch<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    pub(crate) fn new(travel: Travel) -> Self {
        Self {
            sql: QueryBuilder::new(""),
            travel,
            pending: 0,
        }
    }

    /// The builder the current statement is written into.
    pub(crate) fn sql(&mut self) -> &mut QueryBuilder<DB> {
        &mut self.sql
    }

    /// Ends the statement written since the last one ended.
    pub(crate) async fn end_statement(&mut self, conn: &mut DB::Connection) -> StoreResult<()> {
        self.pending += 1;
        match self.travel {
            Travel::Together => {
                self.sql.push(";\n");
                Ok(())
            }
            Travel::OneByOne => self.send_pending(conn).await,
        }
    }

    /// Sends what is not sent yet.
    pub(crate) async fn send(mut self, conn: &mut DB::Connection) -> StoreResult<()> {
        self.send_pending(conn).await
    }

    async fn send_pending(&mut self, conn: &mut DB::Connection) -> StoreResult<()> {
        if self.pending == 0 {
            return Ok(());
        }
        self.sql.build().execute(conn).await.map_err(classify)?;
        self.sql.reset();
        self.pending = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection as _, SqliteConnection};

    async fn two_inserts(conn: &mut SqliteConnection, travel: Travel) -> StoreResult<i64> {
        sqlx::query("CREATE TABLE IF NOT EXISTS t (a INTEGER, b TEXT)")
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
        let mut batch = Batch::<sqlx::Sqlite>::new(travel);
        batch
            .sql()
            .push("INSERT INTO t (a, b) VALUES (")
            .push_bind(1_i64)
            .push(", ")
            .push_bind("one")
            .push(")");
        batch.end_statement(conn).await?;
        batch
            .sql()
            .push("INSERT INTO t (a, b) VALUES (")
            .push_bind(2_i64)
            .push(", ")
            .push_bind("two")
            .push(")");
        batch.end_statement(conn).await?;
        batch.send(conn).await?;
        let sum: (i64, String) = sqlx::query_as("SELECT sum(a), group_concat(b, ',') FROM t")
            .fetch_one(&mut *conn)
            .await
            .map_err(classify)?;
        assert_eq!(sum.1, "one,two", "each statement got its own parameters");
        Ok(sum.0)
    }

    #[tokio::test]
    async fn statements_sent_together_take_their_own_parameters_in_order() {
        for travel in [Travel::Together, Travel::OneByOne] {
            let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
            assert_eq!(
                two_inserts(&mut conn, travel).await.unwrap(),
                3,
                "{travel:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_failing_statement_in_a_batch_fails_the_batch() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let mut batch = Batch::<sqlx::Sqlite>::new(Travel::Together);
        batch.sql().push("SELECT 1");
        batch.end_statement(&mut conn).await.unwrap();
        batch
            .sql()
            .push("INSERT INTO missing VALUES (")
            .push_bind(1_i64)
            .push(")");
        batch.end_statement(&mut conn).await.unwrap();
        assert!(batch.send(&mut conn).await.is_err());
    }
}

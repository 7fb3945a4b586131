//! Which of the load's acknowledged orders the PostgreSQL WAL archive already holds, for the
//! restore drill's recovery-point claim.
//!
//! A client sees an order acknowledged only after its commit record was flushed, so an order
//! acknowledged before instant T has its commit below the server's WAL position read after T.
//! The drill reads that position (as a segment file name) a few times a second while the load
//! runs; once the server's archiver reports a segment at or past one of those marks as
//! archived, every order acknowledged before the mark is in the repository, and a restore to
//! the end of the archive must bring it back.

use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::task::JoinHandle;

use super::DrillError;

/// How often the WAL position is read.
const EVERY: Duration = Duration::from_millis(200);

/// A WAL position read at an instant: the segment holding it.
#[derive(Debug, Clone)]
pub(super) struct Mark {
    /// When the position was asked for (before the query was sent).
    pub at: Instant,
    /// The segment's file name (`pg_walfile_name`).
    pub segment: String,
}

/// The marks taken so far, and the task taking them.
pub(super) struct WalMarks {
    options: PgConnectOptions,
    marks: Arc<Mutex<Vec<Mark>>>,
    task: JoinHandle<()>,
}

impl WalMarks {
    /// Starts reading the position of the server at `database_url`.
    pub fn start(database_url: &str) -> Result<Self, DrillError> {
        let options =
            PgConnectOptions::from_str(database_url).map_err(|e| DrillError::Setting {
                key: "storage.database_url",
                message: e.to_string(),
            })?;
        let marks = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(sample(options.clone(), marks.clone()));
        Ok(Self {
            options,
            marks,
            task,
        })
    }

    /// The newest mark the archive covers, asking the server what it archived last.
    pub async fn archived(&self) -> Result<Option<Mark>, sqlx::Error> {
        let mut connection = self.options.connect().await?;
        let (last,): (String,) =
            sqlx::query_as("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
                .fetch_one(&mut connection)
                .await?;
        let _ = connection.close().await;
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        Ok(marks
            .iter()
            .rev()
            .find(|mark| covers(&last, &mark.segment))
            .cloned())
    }

    /// Waits (up to `limit`) until the archive covers a mark taken after `since`; that mark.
    pub async fn wait_archived(
        &self,
        since: Instant,
        limit: Duration,
    ) -> Result<Mark, NotArchived> {
        let deadline = Instant::now() + limit;
        let mut last = NotArchived::Nothing;
        while Instant::now() < deadline {
            match self.archived().await {
                Ok(Some(mark)) if mark.at >= since => return Ok(mark),
                Ok(_) => {}
                Err(error) => last = NotArchived::Unasked(error),
            }
            tokio::time::sleep(EVERY).await;
        }
        Err(last)
    }

    /// Stops reading.
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// Why no mark taken after the load began is archived: the last thing seen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotArchived {
    /// The archiver answered, but has not reached such a mark.
    #[error("none archived")]
    Nothing,
    /// The archiver's statistics could not be read.
    #[error(transparent)]
    Unasked(#[from] sqlx::Error),
}

impl Drop for WalMarks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the position every [`EVERY`], reconnecting after an error.
async fn sample(options: PgConnectOptions, marks: Arc<Mutex<Vec<Mark>>>) {
    let mut connection: Option<PgConnection> = None;
    loop {
        if connection.is_none() {
            connection = options.connect().await.ok();
        }
        if let Some(open) = connection.as_mut() {
            let at = Instant::now();
            let read: Result<(String,), _> =
                sqlx::query_as("SELECT pg_walfile_name(pg_current_wal_lsn())")
                    .fetch_one(open)
                    .await;
            match read {
                Ok((segment,)) => marks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Mark { at, segment }),
                Err(_) => connection = None,
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Whether the archived file `last` (a segment name, perhaps with a suffix such as `.partial`,
/// or a timeline's `.history` file) is `segment` or a later one.
fn covers(last: &str, segment: &str) -> bool {
    let name = last.get(..24).unwrap_or("");
    name.len() == 24
        && name.bytes().all(|b| b.is_ascii_hexdigit())
        && !last[24..].starts_with(".partial")
        && name >= segment
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn a_segment_is_covered_once_it_or_a_later_one_is_archived() {
        let segment = "000000010000000000000005";
        assert!(covers("000000010000000000000005", segment));
        assert!(covers("000000010000000000000006", segment));
        assert!(covers("000000020000000000000006", segment));
        assert!(!covers("000000010000000000000004", segment));
        assert!(!covers("000000010000000000000005.partial", segment));
        assert!(!covers("00000002.history", segment));
        assert!(!covers("", segment));
    }
}

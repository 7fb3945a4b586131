//! `GET /api/logs/tail?level=&grep=&service=`: the central logs' new lines as they are written,
//! as server-sent events (`event: line`, the line's JSON as data) — the dashboard's live tail,
//! the same lines `brigade logs --follow` prints.
//!
//! Each follower is one task reading the current file every [`POLL`], so a follower costs no
//! work on the path that writes the logs. Followers are bounded ([`MAX_FOLLOWERS`]; more get
//! 503 with `Retry-After`), and so is what one of them can pile up: at most
//! [`MAX_PER_POLL`] lines per look (the rest are counted in an `event: skipped`) into a small
//! channel, and a client that stops reading stops its task.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use brigade_core::Problem;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::Dashboard;
use super::logs_api::{LogsQuery, filter_of};
use crate::logs::{LogFilter, Tail};

/// How often a follower looks for new lines.
const POLL: Duration = Duration::from_millis(250);
/// Most lines one look sends; a burst beyond it is counted, not queued.
const MAX_PER_POLL: usize = 500;
/// Followers at once (browser tabs with the live tail on).
pub(super) const MAX_FOLLOWERS: usize = 8;
/// How often an idle stream sends a comment: keeps proxies from closing it, and finds a client
/// that has gone (its follower then stops and gives its place back).
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Events a follower holds for a slow client before it waits for it.
const CHANNEL: usize = 64;

/// The followers' permits, shared by every clone of the dashboard.
pub(super) fn followers() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_FOLLOWERS))
}

/// The handler.
pub(super) async fn tail(
    State(dashboard): State<Dashboard>,
    Query(query): Query<LogsQuery>,
) -> Response {
    let filter = match filter_of(query) {
        Ok((filter, _)) => filter,
        Err(problem) => return problem.into_response(),
    };
    let Some(dir) = dashboard.logs_dir.clone() else {
        return Problem::not_found(
            "this dashboard reads no central logs (start it with --data-dir)",
        )
        .into_response();
    };
    let Ok(permit) = dashboard.followers.clone().try_acquire_owned() else {
        let mut response = Problem::unavailable(format!(
            "{MAX_FOLLOWERS} live tails are open already; close one or retry"
        ))
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let (sender, receiver) = mpsc::channel(CHANNEL);
    tokio::spawn(follow(dir, filter, sender, permit));
    Sse::new(ReceiverStream::new(receiver))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

type Events = mpsc::Sender<Result<Event, Infallible>>;

/// Sends the lines appended from now on until the client goes away; holds `_permit` as long.
async fn follow(dir: PathBuf, filter: LogFilter, events: Events, _permit: OwnedSemaphorePermit) {
    let mut tail = Some(Tail::from_end(&dir));
    let filter = Arc::new(filter);
    let mut ticks = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = events.closed() => return,
        }
        let (Some(mut reader), filter) = (tail.take(), filter.clone()) else {
            return;
        };
        let read = tokio::task::spawn_blocking(move || {
            let found = reader.read_new(&filter, MAX_PER_POLL);
            (reader, found)
        })
        .await;
        let Ok((reader, found)) = read else { return };
        tail = Some(reader);
        let found = match found {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "the live tail cannot read the central logs");
                continue;
            }
        };
        for line in found.lines {
            if send(&events, Event::default().event("line").data(line)).await {
                return;
            }
        }
        if found.skipped > 0 {
            let skipped = Event::default()
                .event("skipped")
                .data(found.skipped.to_string());
            if send(&events, skipped).await {
                return;
            }
        }
    }
}

/// Sends one event; whether the client has gone.
async fn send(events: &Events, event: Event) -> bool {
    events.send(Ok(event)).await.is_err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LogSink;

    /// Reads the stream until `text` arrives (or panics after 10 s).
    async fn read_until(response: &mut reqwest::Response, text: &str) -> String {
        let mut seen = String::new();
        let reading = async {
            while !seen.contains(text) {
                let chunk = response.chunk().await.unwrap().expect("the stream ended");
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        tokio::time::timeout(Duration::from_secs(10), reading)
            .await
            .unwrap_or_else(|_| panic!("no {text:?} in {seen:?}"));
        seen
    }

    #[tokio::test]
    async fn new_lines_that_pass_the_filter_arrive_as_events_and_followers_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let logs_dir = crate::logs::dir(dir.path());
        let sink = LogSink::open(&logs_dir).unwrap();
        sink.write(
            "serve",
            "serve-orders-1",
            r#"{"level":"INFO","message":"old r-1"}"#,
        );
        let dashboard = Dashboard::standalone("127.0.0.1:1".into(), None, Some(logs_dir));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(axum::serve(listener, dashboard.router::<()>()).into_future());

        let mut response = reqwest::get(format!("{base}/api/logs/tail?grep=r-1&level=info"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        sink.write(
            "serve",
            "serve-orders-1",
            r#"{"level":"INFO","message":"other r-2"}"#,
        );
        sink.write(
            "serve",
            "serve-orders-1",
            r#"{"level":"INFO","message":"new r-1"}"#,
        );
        let seen = read_until(&mut response, "new r-1").await;
        assert!(seen.contains("event: line"), "{seen}");
        assert!(seen.contains(r#""instance":"serve-orders-1""#), "{seen}");
        assert!(
            !seen.contains("old r-1"),
            "only lines written after the start: {seen}"
        );
        assert!(!seen.contains("r-2"), "the filter applies: {seen}");

        let refused = reqwest::get(format!("{base}/api/logs/tail?level=loud"))
            .await
            .unwrap();
        assert_eq!(refused.status(), 422);
        let problem: Problem = refused.json().await.unwrap();
        assert_eq!(problem.errors[0].field, "level");

        let mut open = vec![response];
        for _ in 1..MAX_FOLLOWERS {
            open.push(reqwest::get(format!("{base}/api/logs/tail")).await.unwrap());
        }
        let busy = reqwest::get(format!("{base}/api/logs/tail")).await.unwrap();
        assert_eq!(busy.status(), 503);
        assert_eq!(busy.headers()["retry-after"], "5");
        // A follower that goes away gives its place back.
        drop(open.pop());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let again = reqwest::get(format!("{base}/api/logs/tail")).await.unwrap();
            if again.status() == 200 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the place was not given back"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

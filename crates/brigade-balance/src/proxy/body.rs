//! The client's request body as the attempts of one request send it. A small body of known
//! size is read whole first, so that an attempt that fails can send it again; a larger one, or
//! one of unknown size, streams to the first attempt that gets a connection, with the body-size
//! limit enforced as it flows, and cannot be sent twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

use crate::config::Config;
use crate::upstream::RequestBody;

/// Why a body that was to be kept for replay could not be read; the client gets a 400 or 408.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The client's body broke off or was malformed.
    #[error("the request body could not be read")]
    Unreadable,
    /// The body did not arrive within `timeouts.body_read_ms`.
    #[error("the request body did not arrive within {limit_ms} ms")]
    TimedOut {
        /// The limit, for the answer.
        limit_ms: u64,
    },
}

/// The client's body, for every attempt of one request.
#[derive(Debug)]
pub(super) struct ClientBody {
    /// The whole body (possibly empty), which every attempt sends again.
    replay: Option<Bytes>,
    /// The client's body, streamed, until an attempt takes it (never set with `replay`).
    streamed: Option<RequestBody>,
    /// Set once a streamed body has arrived whole (see [`RequestBody::Stream`]).
    received: Arc<AtomicBool>,
}

impl ClientBody {
    /// Reads a body of at most `limits.retry_buffer_bytes` (by its exact declared size) whole,
    /// within `timeouts.body_read_ms`; anything else is left to stream, at most
    /// `limits.max_body_bytes` of it.
    pub(super) async fn read(body: Incoming, config: &Config) -> Result<Self, ReadError> {
        let received = Arc::new(AtomicBool::new(false));
        let replay = if body.is_end_stream() {
            Bytes::new()
        } else if body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= config.limits.retry_buffer_bytes)
        {
            let limit_ms = config.timeouts.body_read_ms;
            match tokio::time::timeout(Duration::from_millis(limit_ms), body.collect()).await {
                Ok(Ok(collected)) => collected.to_bytes(),
                Ok(Err(_)) => return Err(ReadError::Unreadable),
                Err(_elapsed) => return Err(ReadError::TimedOut { limit_ms }),
            }
        } else {
            let streamed = RequestBody::Stream {
                inner: body,
                remaining: config.limits.max_body_bytes,
                received: Arc::clone(&received),
            };
            return Ok(Self {
                replay: None,
                streamed: Some(streamed),
                received,
            });
        };
        Ok(Self {
            replay: Some(replay),
            streamed: None,
            received,
        })
    }

    /// The body was kept whole, so the request can be sent more than once.
    pub(super) fn replayable(&self) -> bool {
        self.replay.is_some()
    }

    /// The body for the next attempt; `None` once a streamed body went to an earlier attempt.
    pub(super) fn next(&mut self) -> Option<RequestBody> {
        match &self.replay {
            Some(bytes) => Some(RequestBody::Full(Some(bytes.clone()))),
            None => self.streamed.take(),
        }
    }

    /// A streamed body has not arrived whole yet: a timeout now is the client's slowness, not
    /// the backend's.
    pub(super) fn still_arriving(&self) -> bool {
        self.replay.is_none() && !self.received.load(Ordering::Relaxed)
    }
}

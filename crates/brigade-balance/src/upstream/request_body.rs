//! The request body on its way upstream, and the client-side failures of a streamed one.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// A request body on its way upstream: nothing, bytes kept for replay, or the client's stream
/// with the body-size limit enforced as it flows.
#[derive(Debug)]
pub enum RequestBody {
    /// Bytes (possibly empty) that can be sent again on a retry.
    Full(Option<Bytes>),
    /// The client's body, streamed; `remaining` bytes may still pass.
    Stream {
        /// The client's body.
        inner: Incoming,
        /// Bytes still allowed.
        remaining: u64,
        /// Set once the client's body has arrived whole: a timeout before that is the client's
        /// slowness, not the backend's.
        received: Arc<AtomicBool>,
    },
}

/// The client's side of a streamed request body failed: a malformed chunked coding, a client
/// that went away mid-body, or more than `limits.max_body_bytes`. The answer is the client's
/// 4xx and the backend is not blamed for it.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    /// More than `limits.max_body_bytes`.
    #[error("request body exceeds the limit")]
    TooLarge,
    /// The client's body could not be read.
    #[error("the request body could not be read: {0}")]
    Unreadable(#[source] hyper::Error),
}

/// The [`ClientBodyError`] behind `error` (itself or one of its causes), if any.
pub fn client_body_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a ClientBodyError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<ClientBodyError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream {
                inner,
                remaining,
                received,
            } => match std::task::ready!(Pin::new(&mut *inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let len = data.len() as u64;
                        if len > *remaining {
                            return Poll::Ready(Some(Err(Box::new(ClientBodyError::TooLarge))));
                        }
                        *remaining -= len;
                    }
                    if inner.is_end_stream() {
                        received.store(true, Ordering::Relaxed);
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Some(Err(error)) => {
                    Poll::Ready(Some(Err(Box::new(ClientBodyError::Unreadable(error)))))
                }
                None => {
                    received.store(true, Ordering::Relaxed);
                    Poll::Ready(None)
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Self::Stream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Stream { inner, .. } => inner.size_hint(),
        }
    }
}

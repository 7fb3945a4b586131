//! The HTTP/1.1 listener of `brigade serve`, with the limits a public socket needs (the
//! balancer's, for the same reasons):
//!
//! - a client must send a whole request head within `server.header_read_timeout_ms`, so a
//!   half-open or trickling connection cannot hold a socket and its buffers for long;
//! - a keep-alive connection with no request in flight is closed after `server.idle_timeout_ms`;
//! - at most `server.max_connections` connections are served at once; more wait in the kernel's
//!   accept queue, so ten thousand idle sockets cost the kernel, not this process's memory.
//!
//! On shutdown the listener closes, every connection finishes its request in flight and
//! closes, and [`serve`] returns when the last one has.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The connection limits, from `server.*`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest time to receive a request head.
    pub header_read: Duration,
    /// Longest time a connection may sit with no request in flight.
    pub idle: Duration,
    /// Most connections at once.
    pub max_connections: usize,
}

impl Limits {
    /// The limits of `server.*`.
    pub fn from_settings(server: &brigade_core::config::ServerSettings) -> Self {
        Self {
            header_read: server.header_read_timeout(),
            idle: server.idle_timeout(),
            max_connections: server.max_connections,
        }
    }
}

/// Serves `router` on `listener` until `stop_accepting` completes, then lets every connection
/// finish its request in flight and returns when all have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop_accepting: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, close_signal) = watch::channel(false);
    let connections = TaskTracker::new();
    tokio::pin!(stop_accepting);
    loop {
        let permit = tokio::select! {
            () = &mut stop_accepting => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut stop_accepting => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let connection = Connection {
            router: router.clone(),
            limits,
            close_signal: close_signal.clone(),
            _slot: permit,
        };
        connections.spawn(connection.serve(stream, peer));
    }
    drop(listener);
    let _ = closing.send(true);
    connections.close();
    connections.wait().await;
}

/// One client connection and what it holds while open.
struct Connection {
    router: Router,
    limits: Limits,
    close_signal: watch::Receiver<bool>,
    /// Its place under `max_connections`, given back when the connection ends.
    _slot: OwnedSemaphorePermit,
}

/// Requests in flight on a connection and when the last one ended.
struct Activity {
    started: Instant,
    active: AtomicUsize,
    last_ms: AtomicU64,
}

impl Activity {
    fn idle_for(&self) -> Option<Duration> {
        if self.active.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Some(Duration::from_millis(
            now.saturating_sub(self.last_ms.load(Ordering::SeqCst)),
        ))
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::SeqCst);
    }
}

impl Connection {
    async fn serve(mut self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity {
            started: Instant::now(),
            active: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        });
        let service = {
            let router = self.router.clone();
            let activity = Arc::clone(&activity);
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let router = router.clone();
                let activity = Arc::clone(&activity);
                async move {
                    activity.active.fetch_add(1, Ordering::SeqCst);
                    let response = router.oneshot(request).await;
                    activity.touch();
                    activity.active.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let tick = (self.limits.idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut idle_check = tokio::time::interval(tick);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %peer, "client connection ended with an error");
                    }
                    return;
                }
                changed = self.close_signal.changed(), if !closing => {
                    if changed.is_err() || *self.close_signal.borrow() {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
                _ = idle_check.tick(), if !closing => {
                    if activity.idle_for().is_some_and(|idle| idle >= self.limits.idle) {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

//! One request on the fast core: the body kept for replay or streamed, the attempts on the
//! pool's backends with the hyper path's retry rules (connect failures for any method; after
//! sending, idempotent or keyed requests on a broken connection, a timeout or a 502/503/504;
//! short `Retry-After` answers waited out; the budget and the retry deadline), and the chosen
//! response relayed to the client.
//!
//! The decisions are the hyper path's own functions (`proxy::not_sent_allowance`,
//! `retry_after_value`, `Pool::pick`, `Backend::record`, the budget); only the I/O differs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::conn::{Connection, header_value};
use super::relay::{self, Fail};
use crate::answer;
use crate::backend::{Backend, Outcome};
use crate::pool::Pool;
use crate::proxy::{self, MAX_TOTAL_WAIT, TRIED};
use crate::state::Table;
use crate::upstream::Lease;

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// None.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// Chunked.
    Chunked,
}

/// What [`super::conn`] decided about a request.
#[derive(Debug)]
pub struct Plan {
    /// The routed pool.
    pub pool: Arc<Pool>,
    /// The consistent-hash key.
    pub key: Option<Vec<u8>>,
    /// The method (and `Idempotency-Key`) allows sending it twice.
    pub retryable: bool,
    /// A HEAD request: the response has no body.
    pub head_request: bool,
    /// The client asked to close after this request.
    pub close: bool,
    /// `RateLimit-Policy` and `RateLimit` for the response.
    pub rate_limit: Option<(HeaderValue, Option<HeaderValue>)>,
    /// The body's framing.
    pub body: Body,
}

/// A request body still arriving from the client, forwarded as it comes.
#[derive(Debug)]
pub(super) enum Streamed {
    /// Bytes of a `Content-Length` body still to come.
    Length(u64),
    /// A chunked body and the bytes of it passed so far.
    Chunked(super::chunked::Decoder, u64),
}

/// Forwards a prepared request and relays the answer; false when the client connection cannot
/// carry another request.
pub(super) async fn forward(
    conn: &mut Connection,
    table: &Table,
    plan: Plan,
    arrived: Instant,
) -> bool {
    let config = &table.config;
    let pool = Arc::clone(&plan.pool);
    let mut streamed = None;
    match plan.body {
        Body::Empty => {}
        Body::Length(n) if n <= config.limits.retry_buffer_bytes => {
            let limit_ms = config.timeouts.body_read_ms;
            if !relay::read_body(conn, n, Duration::from_millis(limit_ms)).await {
                let id = header_value(&conn.request_id);
                let response = answer::request_timeout(limit_ms, id.as_ref());
                pool.metrics
                    .requests
                    .record(response.status(), arrived.elapsed());
                conn.answer(&response, true).await;
                return false;
            }
        }
        Body::Length(n) => streamed = Some(Streamed::Length(n)),
        Body::Chunked => streamed = Some(Streamed::Chunked(Default::default(), 0)),
    }
    let replay = streamed.is_none();
    pool.budget.deposit();
    let ended = attempts(conn, table, &plan, streamed, replay, arrived).await;
    finish(conn, &plan, ended, arrived).await
}

/// How the attempts ended.
enum Ended {
    /// A response was relayed; whether the client connection can go on.
    Relayed(bool),
    /// A response kept from an earlier attempt (head and body), sent when nothing better came.
    Kept(StatusCode, Vec<u8>),
    /// The balancer answers itself.
    Own(http::Response<crate::upstream::ResponseBody>, bool),
}

async fn finish(conn: &mut Connection, plan: &Plan, ended: Ended, arrived: Instant) -> bool {
    let elapsed = arrived.elapsed();
    match ended {
        // Recorded when the head was ready, as the hyper path does.
        Ended::Relayed(keep) => keep && !plan.close,
        Ended::Kept(status, bytes) => {
            plan.pool.metrics.requests.record(status, elapsed);
            conn.client_stream.write_all(&bytes).await.is_ok() && !plan.close
        }
        Ended::Own(response, close) => {
            plan.pool
                .metrics
                .requests
                .record(response.status(), elapsed);
            let close = close || plan.close || crate::fast::write::closes(&response);
            conn.answer(&response, close).await && !close
        }
    }
}

/// The loop of attempts: the hyper path's `proxy::forward` on the fast core's I/O.
async fn attempts(
    conn: &mut Connection,
    table: &Table,
    plan: &Plan,
    mut streamed: Option<Streamed>,
    replay: bool,
    arrived: Instant,
) -> Ended {
    let config = &table.config;
    let pool = &plan.pool;
    let outlier = &pool.config.outlier;
    let retryable = plan.retryable && replay;
    let max_body = config.limits.max_body_bytes;
    let began = Instant::now();
    let retry_deadline = Duration::from_millis(config.retry.deadline_ms);
    let connect_timeout = Duration::from_millis(config.timeouts.connect_ms);
    let response_timeout = Duration::from_millis(config.timeouts.upstream_response_ms);
    let backend_count = pool.backend_count();
    let mut connect_failures = 0usize;
    let mut tried = [0usize; TRIED];
    let mut last = Outcome::ConnectError;
    let mut kept: Option<(StatusCode, Vec<u8>)> = None;
    let mut limit = config.retry.max_attempts;
    let mut waited = Duration::ZERO;
    let mut attempt = 0u32;
    while attempt < limit {
        if attempt > 0 {
            if last != Outcome::ConnectError && !pool.budget.withdraw() {
                pool.metrics.budget_exhausted.increment(1);
                break;
            }
            pool.metrics.retry(last).increment(1);
        }
        let backend = match pool.pick(plan.key.as_deref(), &tried[..(attempt as usize).min(TRIED)])
        {
            Ok(backend) => backend,
            Err(_) if attempt == 0 => {
                pool.metrics.no_healthy.increment(1);
                return Ended::Own(
                    answer::no_backend(pool.name(), header_value(&conn.request_id).as_ref()),
                    false,
                );
            }
            Err(_) => break,
        };
        if (attempt as usize) < TRIED {
            tried[attempt as usize] = Arc::as_ptr(&backend) as usize;
        }
        attempt += 1;
        let lease = Lease::new(Arc::clone(&backend), 0);
        let (upstream, fresh) =
            match super::idle::checkout(&backend, config.timeouts.upstream_idle_ms) {
                Some(stream) => (stream, false),
                None => match connect(&backend, connect_timeout).await {
                    Some(stream) => (stream, true),
                    None => {
                        backend.record(Outcome::ConnectError, outlier);
                        last = Outcome::ConnectError;
                        connect_failures += 1;
                        limit += proxy::not_sent_allowance(
                            connect_failures,
                            backend_count,
                            began,
                            retry_deadline,
                        );
                        continue;
                    }
                },
            };
        if !replay && streamed.is_none() {
            // The streamed body went to an earlier attempt and cannot be sent again.
            break;
        }
        let started = Instant::now();
        let extras = relay::Extras {
            head_request: plan.head_request,
            close: plan.close,
            rate_limit: plan.rate_limit.as_ref(),
            body_timeout: Duration::from_millis(config.timeouts.body_read_ms),
        };
        let mut upstream = upstream;
        let mut result = tokio::time::timeout(
            response_timeout,
            relay::exchange(conn, &mut upstream, streamed.as_mut(), max_body, &extras),
        )
        .await;
        // A pooled connection the backend closed while idle: once more on a fresh one, when
        // the request can be sent again.
        if !fresh
            && replay
            && matches!(result, Ok(Err(Fail::Closed)))
            && let Some(stream) = connect(&backend, connect_timeout).await
        {
            upstream = stream;
            result = tokio::time::timeout(
                response_timeout,
                relay::exchange(conn, &mut upstream, None, max_body, &extras),
            )
            .await;
        }
        let retry_after_send = retryable && attempt < limit && began.elapsed() < retry_deadline;
        let received = match result {
            Err(_elapsed) => {
                backend.record(Outcome::Timeout, outlier);
                last = Outcome::Timeout;
                if retry_after_send {
                    continue;
                }
                break;
            }
            Ok(Err(Fail::Client(fault))) => {
                drop(lease);
                return Ended::Own(
                    fault.answer(max_body, header_value(&conn.request_id).as_ref()),
                    true,
                );
            }
            Ok(Err(Fail::Closed | Fail::Upstream)) => {
                backend.record(Outcome::Error, outlier);
                last = Outcome::Error;
                if retry_after_send {
                    continue;
                }
                break;
            }
            Ok(Ok(received)) => received,
        };
        backend.observe_latency(started);
        let status = received.status;
        let outcome = if status.is_server_error() {
            Outcome::ServerError
        } else {
            Outcome::Success
        };
        backend.record(outcome, outlier);
        let again = matches!(
            status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        );
        let asked_to_wait = received.retry_after.filter(|wait| {
            retryable
                && waited + *wait <= MAX_TOTAL_WAIT
                && began.elapsed() + *wait < retry_deadline
        });
        if (again && retry_after_send) || asked_to_wait.is_some() {
            // Kept only when it is whole in the buffer (error answers are small); a larger one
            // goes to the client as it is.
            if let Some(reusable) = relay::take_whole(conn, received.framing) {
                if reusable && received.reusable {
                    super::idle::checkin(&backend, upstream, config.limits.max_idle_per_backend);
                }
                kept = Some((status, std::mem::take(&mut conn.out)));
                last = outcome;
                if let Some(wait) = asked_to_wait {
                    waited += wait;
                    if attempt >= limit {
                        limit += 1;
                    }
                    tokio::time::sleep(wait).await;
                }
                continue;
            }
        }
        pool.metrics.requests.record(status, arrived.elapsed());
        let keep = relay::relay(conn, upstream, &backend, &received, config).await;
        drop(lease);
        return Ended::Relayed(keep);
    }
    if let Some((status, bytes)) = kept {
        return Ended::Kept(status, bytes);
    }
    let response = match last {
        Outcome::Timeout => answer::gateway_timeout(header_value(&conn.request_id).as_ref()),
        Outcome::ConnectError => answer::bad_gateway(
            "no backend accepted a connection",
            header_value(&conn.request_id).as_ref(),
        ),
        _ => answer::bad_gateway(
            "the backend closed the connection without an answer",
            header_value(&conn.request_id).as_ref(),
        ),
    };
    Ended::Own(response, false)
}

/// A new connection to `backend`, or `None` when it cannot be had within `timeout`.
async fn connect(backend: &Backend, timeout: Duration) -> Option<TcpStream> {
    match tokio::time::timeout(timeout, TcpStream::connect(backend.address)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        Ok(Err(error)) => {
            tracing::debug!(backend = %backend.label, %error, "connect failed");
            None
        }
        Err(_) => {
            tracing::debug!(backend = %backend.label, "connect timed out");
            None
        }
    }
}

/// Reads from a socket into a buffer, up to `READ` bytes more.
pub(super) async fn read_some(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<usize> {
    buffer.reserve(8192);
    stream.read_buf(buffer).await
}

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
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::connection::{Connection, header_value};
use super::relay::{self, ClientFault, Fail, Received, Streamed};
use super::timer::Timer;
use super::traced::{self, Traced};
use crate::answer;
use crate::backend::{Backend, Outcome};
use crate::config::Config;
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
    /// `limits.max_body_bytes`.
    pub max_body: u64,
    /// Where the balancer's own `traceparent` value sits in the upstream head.
    pub traceparent_at: Option<usize>,
    /// The spans of a request sampled for tracing.
    pub traced: Option<Box<Traced>>,
}

/// Forwards a prepared request and relays the answer; false when the client connection cannot
/// carry another request.
pub(super) async fn forward(
    conn: &mut Connection,
    timer: &mut Timer,
    table: &Table,
    mut plan: Plan,
    arrived: Instant,
) -> bool {
    let config = &table.config;
    let pool = Arc::clone(&plan.pool);
    let mut traced = plan.traced.take();
    let mut streamed = None;
    // The clock is read when something arrives, not at every step in between.
    let mut now = arrived;
    match plan.body {
        Body::Empty => {}
        Body::Length(n) if n <= config.limits.retry_buffer_bytes => {
            let limit_ms = config.timeouts.body_read_ms;
            let read = relay::read_body(conn, timer, n, Duration::from_millis(limit_ms)).await;
            now = Instant::now();
            if !read {
                let id = header_value(&conn.request_id);
                let response = answer::request_timeout(limit_ms, id.as_ref());
                traced::finish(&mut traced, response.status());
                pool.metrics
                    .requests
                    .record(response.status(), now - arrived);
                conn.answer(&response, true).await;
                return false;
            }
        }
        Body::Length(n) => streamed = Some(Streamed::Length(n)),
        Body::Chunked => streamed = Some(Streamed::Chunked(Default::default(), 0)),
    }
    let replay = streamed.is_none();
    pool.budget.deposit();
    let body = (streamed, replay);
    let times = (arrived, now);
    let ended = attempts(conn, timer, table, &plan, body, &mut traced, times).await;
    finish(conn, &plan, ended, traced, arrived).await
}

/// How the attempts ended.
enum Ended {
    /// A response was relayed; whether the client connection can go on.
    Relayed(bool),
    /// A response kept from an earlier attempt (head and body), sent when nothing better came.
    Kept(StatusCode, Vec<u8>),
    /// No usable backend (503).
    NoBackend,
    /// The client's body failed (its 4xx; the connection closes).
    Client(ClientFault),
    /// Every attempt failed this way (502 or 504).
    Failed(Outcome),
}

async fn finish(
    conn: &mut Connection,
    plan: &Plan,
    ended: Ended,
    mut traced: Option<Box<Traced>>,
    arrived: Instant,
) -> bool {
    let elapsed = arrived.elapsed();
    match ended {
        // Recorded when the head was ready, as the hyper path does.
        Ended::Relayed(keep) => keep && !plan.close,
        Ended::Kept(status, bytes) => {
            traced::finish(&mut traced, status);
            plan.pool.metrics.requests.record(status, elapsed);
            conn.client_stream.write_all(&bytes).await.is_ok() && !plan.close
        }
        ended => {
            // A client's failed body leaves the connection's framing unknown.
            let client_fault = matches!(ended, Ended::Client(_));
            let id = header_value(&conn.request_id);
            let id = id.as_ref();
            let response = match ended {
                Ended::NoBackend => answer::no_backend(plan.pool.name(), id),
                Ended::Client(fault) => fault.answer(plan.max_body, id),
                Ended::Failed(Outcome::Timeout) => answer::gateway_timeout(id),
                Ended::Failed(Outcome::ConnectError) => {
                    answer::bad_gateway("no backend accepted a connection", id)
                }
                _ => answer::bad_gateway("the backend closed the connection without an answer", id),
            };
            traced::finish(&mut traced, response.status());
            plan.pool
                .metrics
                .requests
                .record(response.status(), elapsed);
            let close = client_fault || plan.close || crate::fast::write::closes(&response);
            conn.answer(&response, close).await && !close
        }
    }
}

/// The retry state of one request: the fast core's counterpart of the hyper path's
/// `proxy::attempts::Attempts`.
struct Attempts<'a> {
    plan: &'a Plan,
    /// The request can be sent again (method and a kept body).
    retryable: bool,
    began: Instant,
    deadline: Duration,
    connect_failures: usize,
    tried: [usize; TRIED],
    last: Outcome,
    limit: u32,
    waited: Duration,
    /// The last 5xx or `Retry-After` answer, whole, in case nothing better comes.
    kept: Option<(StatusCode, Vec<u8>)>,
}

/// What to do with an attempt's answer.
enum Verdict {
    /// Relay it to the client.
    Relay,
    /// Try again (after the wait, if any).
    Again(Option<Duration>),
}

impl<'a> Attempts<'a> {
    fn new(config: &'a Config, plan: &'a Plan, replay: bool, began: Instant) -> Self {
        Self {
            plan,
            retryable: plan.retryable && replay,
            began,
            deadline: Duration::from_millis(config.retry.deadline_ms),
            connect_failures: 0,
            tried: [0; TRIED],
            last: Outcome::ConnectError,
            limit: config.retry.max_attempts,
            waited: Duration::ZERO,
            kept: None,
        }
    }

    /// The backend of attempt `attempt` (from 0) at `now`, spending retry budget as the hyper
    /// path does; `Err(None)`: stop trying, `Err(Some(..))`: answer this.
    fn pick(&mut self, attempt: u32, now: Instant) -> Result<Arc<Backend>, Option<Ended>> {
        let pool = &self.plan.pool;
        if attempt > 0 {
            // A refused connection sent nothing and loaded no backend: no budget spent.
            if self.last != Outcome::ConnectError && !pool.budget.withdraw() {
                pool.metrics.budget_exhausted.increment(1);
                return Err(None);
            }
            pool.metrics.retry(self.last).increment(1);
        }
        let tried = &self.tried[..(attempt as usize).min(TRIED)];
        match pool.pick_at(self.plan.key.as_deref(), tried, now) {
            Ok(backend) => {
                if let Some(slot) = self.tried.get_mut(attempt as usize) {
                    *slot = Arc::as_ptr(&backend) as usize;
                }
                Ok(backend)
            }
            Err(_) if attempt == 0 => {
                pool.metrics.no_healthy.increment(1);
                Err(Some(Ended::NoBackend))
            }
            Err(_) => Err(None),
        }
    }

    fn connect_failed(&mut self, backend: &Backend) {
        backend.record(Outcome::ConnectError, &self.plan.pool.config.outlier);
        self.last = Outcome::ConnectError;
        self.connect_failures += 1;
        self.limit += proxy::not_sent_allowance(
            self.connect_failures,
            self.plan.pool.backend_count(),
            self.began,
            self.deadline,
        );
    }

    /// Another attempt after sending, if the request allows it and time is left.
    fn may_resend(&self, attempts: u32) -> bool {
        self.retryable && attempts < self.limit && self.began.elapsed() < self.deadline
    }

    /// Records a failed exchange; whether to try again.
    fn failed(&mut self, backend: &Backend, outcome: Outcome, attempts: u32) -> bool {
        backend.record(outcome, &self.plan.pool.config.outlier);
        self.last = outcome;
        self.may_resend(attempts)
    }

    /// Records an answer and decides whether it goes to the client.
    fn answered(&mut self, backend: &Backend, received: &Received, attempts: u32) -> Verdict {
        let status = received.status;
        let outcome = if status.is_server_error() {
            Outcome::ServerError
        } else {
            Outcome::Success
        };
        backend.record(outcome, &self.plan.pool.config.outlier);
        let again = matches!(
            status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ) && self.may_resend(attempts);
        let wait = received.retry_after.filter(|wait| {
            self.retryable
                && self.waited + *wait <= MAX_TOTAL_WAIT
                && self.began.elapsed() + *wait < self.deadline
        });
        if !again && wait.is_none() {
            return Verdict::Relay;
        }
        self.last = outcome;
        if let Some(wait) = wait {
            // Waits do not use up `max_attempts` (within MAX_TOTAL_WAIT).
            self.waited += wait;
            if attempts >= self.limit {
                self.limit += 1;
            }
        }
        Verdict::Again(wait)
    }

    /// The answer when no attempt gave one to relay.
    fn give_up(self) -> Ended {
        match (self.kept, self.last) {
            (Some((status, bytes)), _) => Ended::Kept(status, bytes),
            (None, Outcome::Timeout) => Ended::Failed(Outcome::Timeout),
            (None, Outcome::ConnectError) => Ended::Failed(Outcome::ConnectError),
            (None, _) => Ended::Failed(Outcome::Error),
        }
    }
}

/// The loop of attempts: the hyper path's `proxy::attempts::Attempts::run` on the fast
/// core's I/O. `body`: what is still to come of a streamed body, and whether the body is kept
/// for replay. A traced request's span ends here when its answer is relayed. `arrived`: when
/// the head arrived; `now`: the latest clock reading (the same, unless a body was read).
async fn attempts(
    conn: &mut Connection,
    timer: &mut Timer,
    table: &Table,
    plan: &Plan,
    (mut streamed, replay): (Option<Streamed>, bool),
    traced: &mut Option<Box<Traced>>,
    (arrived, mut now): (Instant, Instant),
) -> Ended {
    let config = &table.config;
    let mut state = Attempts::new(config, plan, replay, now);
    let mut attempt = 0u32;
    while attempt < state.limit {
        if attempt > 0 {
            // A retry comes after waiting (for a connect, an answer or a `Retry-After`).
            now = Instant::now();
        }
        let backend = match state.pick(attempt, now) {
            Ok(backend) => backend,
            Err(None) => break,
            Err(Some(ended)) => return ended,
        };
        attempt += 1;
        if !replay && streamed.is_none() {
            // The streamed body went to an earlier attempt and cannot be sent again.
            break;
        }
        let span = traced
            .as_mut()
            .map(|t| t.attempt(attempt - 1, &backend, state.last, &mut conn.upstream_out));
        let lease = Lease::new(Arc::clone(&backend), 0);
        let Some((upstream, fresh)) = open(&backend, config, now).await else {
            // Nothing was sent: a streamed body is still whole for the next attempt.
            traced::ended(span.as_ref(), Err(Outcome::ConnectError));
            state.connect_failed(&backend);
            continue;
        };
        // A pooled connection is had at once; a new one took a connect.
        let started = if fresh { Instant::now() } else { now };
        let body = streamed.take();
        let upstream = (upstream, fresh, started);
        let (result, upstream) = send(conn, timer, config, plan, &backend, upstream, body).await;
        let answered = Instant::now();
        traced::ended(span.as_ref(), attempt_ended(&result));
        drop(span);
        let received = match result {
            Err(Fail::Timeout) if state.failed(&backend, Outcome::Timeout, attempt) => continue,
            Err(Fail::Timeout) => break,
            Err(Fail::Client(fault)) => return Ended::Client(fault),
            Err(Fail::Closed | Fail::Upstream)
                if state.failed(&backend, Outcome::Error, attempt) =>
            {
                continue;
            }
            Err(Fail::Closed | Fail::Upstream) => break,
            Ok(received) => received,
        };
        backend.observe_latency_at(started, answered);
        if let Verdict::Again(wait) = state.answered(&backend, &received, attempt)
            // Kept only when whole in the buffer (error answers are small); a larger one goes
            // to the client as it is.
            && let Some(clean) = relay::take_whole(conn, received.framing)
        {
            if clean && received.reusable {
                let idle_since = crate::clock::ms_at(answered);
                let max_idle = config.limits.max_idle_per_backend;
                super::idle::checkin(&backend, upstream, max_idle, idle_since);
            }
            state.kept = Some((received.status, std::mem::take(&mut conn.out)));
            if let Some(wait) = wait {
                let _waiting = traced.as_mut().map(|t| t.waiting(wait.as_millis() as u64));
                tokio::time::sleep(wait).await;
            }
            continue;
        }
        traced::finish(traced, received.status);
        plan.pool
            .metrics
            .requests
            .record(received.status, answered - arrived);
        let upstream = (upstream, &backend);
        let keep = relay::relay(conn, timer, upstream, &received, config, answered).await;
        drop(lease);
        return Ended::Relayed(keep);
    }
    state.give_up()
}

/// How an exchange ended, for its attempt's span.
fn attempt_ended(result: &Result<Received, Fail>) -> Result<StatusCode, Outcome> {
    match result {
        Ok(received) => Ok(received.status),
        Err(Fail::Timeout) => Err(Outcome::Timeout),
        Err(_) => Err(Outcome::Error),
    }
}

/// A pooled connection to `backend` (idle limits checked at `now`), else a new one; whether
/// it is new.
async fn open(backend: &Backend, config: &Config, now: Instant) -> Option<(TcpStream, bool)> {
    let now_ms = crate::clock::ms_at(now);
    let reused = super::idle::checkout_ptr(backend, config.timeouts.upstream_idle_ms, now_ms);
    match reused {
        Some(stream) => Some((stream, false)),
        None => connect(backend, Duration::from_millis(config.timeouts.connect_ms))
            .await
            .map(|stream| (stream, true)),
    }
}

/// Sends the request on `upstream` (new or pooled, from `started` on) and reads the response
/// head within `upstream_response_ms`; a pooled connection the backend closed while idle is
/// replaced by a fresh one once, when the request can be sent again.
async fn send(
    conn: &mut Connection,
    timer: &mut Timer,
    config: &Config,
    plan: &Plan,
    backend: &Backend,
    (mut upstream, fresh, started): (TcpStream, bool, Instant),
    mut streamed: Option<Streamed>,
) -> (Result<Received, Fail>, TcpStream) {
    let timeout = Duration::from_millis(config.timeouts.upstream_response_ms);
    let max_body = config.limits.max_body_bytes;
    let replay = streamed.is_none();
    let extras = relay::Extras {
        head_request: plan.head_request,
        close: plan.close,
        rate_limit: plan.rate_limit.as_ref(),
        body_timeout: Duration::from_millis(config.timeouts.body_read_ms),
    };
    let exchange = relay::exchange(conn, &mut upstream, streamed.as_mut(), max_body, &extras);
    let started = tokio::time::Instant::from_std(started);
    timer.expire_at(started + timeout, started);
    let mut result = timer.run(exchange).await.unwrap_or(Err(Fail::Timeout));
    if !fresh
        && replay
        && matches!(result, Err(Fail::Closed))
        && let Some(stream) =
            connect(backend, Duration::from_millis(config.timeouts.connect_ms)).await
    {
        upstream = stream;
        let exchange = relay::exchange(conn, &mut upstream, None, max_body, &extras);
        result = timer
            .within(timeout, exchange)
            .await
            .unwrap_or(Err(Fail::Timeout));
    }
    (result, upstream)
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

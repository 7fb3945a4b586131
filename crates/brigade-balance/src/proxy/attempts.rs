//! The attempts of one request on the hyper path: pick a backend, get a connection, send, and
//! decide from how the exchange ended whether the client gets this answer, another attempt is
//! made, or the request gives up. The rules are in [`super`]'s documentation; the fast core's
//! `fast::exchange` makes the same decisions on its own I/O.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper::client::conn::http1::SendRequest;
use tokio::time::error::Elapsed;
use tracing::Span;

use super::body::ClientBody;
use super::{MAX_TOTAL_WAIT, TRIED};
use crate::answer;
use crate::backend::{Backend, Outcome};
use crate::config::Config;
use crate::pool::Pool;
use crate::trace::{self, Reason, RequestTrace};
use crate::upstream::{self, ClientBodyError, Lease, RequestBody, ResponseBody};

/// A connection to a backend that requests are sent on.
type Sender = SendRequest<RequestBody>;

/// How one exchange ended: within `upstream_response_ms` or not, and hyper's result.
type Sent = Result<Result<Response<Incoming>, TrySendError<Request<RequestBody>>>, Elapsed>;

/// What the loop does after an attempt.
enum Step {
    /// Make the next attempt, if the limit allows.
    Next,
    /// Make no more attempts: the answer is what [`Attempts::give_up`] makes of them.
    Stop,
    /// Hand this answer to the client.
    Answer(Response<ResponseBody>),
}

/// Why no backend was picked for an attempt.
enum NoPick {
    /// No more attempts: the retry budget is spent, or every backend left was tried.
    Stop,
    /// The pool has no backend to take the request at all (its answer is a 503).
    NoBackend,
}

/// The retry state of one request and what each of its attempts sends.
pub(super) struct Attempts<'a> {
    config: &'a Config,
    pool: &'a Pool,
    /// The request's head as every attempt sends it (each attempt's `traceparent` aside).
    parts: Parts,
    body: ClientBody,
    request_id: HeaderValue,
    trace: &'a mut Option<RequestTrace>,
    /// The request may be sent again: its method allows it and its body was kept.
    retryable: bool,
    /// The consistent-hash key, when the pool uses one and the request carries it.
    key: Option<Vec<u8>>,
    /// When the first attempt could start; `retry.deadline_ms` counts from here.
    began: Instant,
    deadline: Duration,
    connect_failures: usize,
    /// The backends already tried (as pointers), which a retry avoids.
    tried: [usize; TRIED],
    /// How the latest attempt ended.
    last: Outcome,
    /// The latest 5xx or `Retry-After` answer, handed over if no later attempt does better.
    kept: Option<Response<ResponseBody>>,
    /// Attempts allowed: `retry.max_attempts`, plus connects that sent nothing and attempts
    /// spent waiting out a `Retry-After` (within [`MAX_TOTAL_WAIT`]).
    limit: u32,
    /// Time spent waiting out `Retry-After` answers.
    waited: Duration,
    /// The latest answer asked to come back after `Retry-After` (the next attempt's reason).
    asked_to_come_back: bool,
}

impl<'a> Attempts<'a> {
    /// The attempts of a request whose head has been checked and rewritten and whose body (if
    /// kept for replay) has arrived; the retry deadline counts from now.
    pub(super) fn new(
        config: &'a Config,
        pool: &'a Pool,
        (parts, body): (Parts, ClientBody),
        request_id: HeaderValue,
        trace: &'a mut Option<RequestTrace>,
    ) -> Self {
        Self {
            config,
            pool,
            retryable: super::is_retryable(&parts.method, &parts.headers) && body.replayable(),
            key: super::hash_key(pool, &parts),
            parts,
            body,
            request_id,
            trace,
            began: Instant::now(),
            deadline: Duration::from_millis(config.retry.deadline_ms),
            connect_failures: 0,
            tried: [0; TRIED],
            last: Outcome::ConnectError,
            kept: None,
            limit: config.retry.max_attempts,
            waited: Duration::ZERO,
            asked_to_come_back: false,
        }
    }

    /// Makes attempts until one gives the client's answer or none may follow.
    pub(super) async fn run(mut self) -> Response<ResponseBody> {
        let mut attempt = 0u32;
        while attempt < self.limit {
            match self.attempt(attempt).await {
                Step::Next => attempt += 1,
                Step::Stop => break,
                Step::Answer(response) => return response,
            }
        }
        self.give_up()
    }

    /// Attempt `attempt` (from 0): one backend, one connection, one exchange.
    async fn attempt(&mut self, attempt: u32) -> Step {
        let backend = match self.pick(attempt) {
            Ok(backend) => backend,
            Err(NoPick::Stop) => return Step::Stop,
            Err(NoPick::NoBackend) => {
                let rid = Some(&self.request_id);
                return Step::Answer(answer::no_backend(self.pool.name(), rid));
            }
        };
        let span = self.open_span(attempt, &backend);
        let max_idle = self.config.limits.max_idle_per_backend;
        let mut lease = Lease::new(Arc::clone(&backend), max_idle);
        let Some(connection) = self.connection(&backend, span.as_ref()).await else {
            return Step::Next;
        };
        let Some(body) = self.body.next() else {
            return Step::Stop;
        };
        let request = self.request(body);
        let started = Instant::now();
        let (sent, sender) = match self
            .send(&backend, connection, request, span.as_ref())
            .await
        {
            Ok(sent) => sent,
            Err(step) => return step,
        };
        // Another attempt after sending: only for a request that may be sent twice, within its
        // attempts, and while it is younger than the retry deadline.
        let may_resend =
            self.retryable && attempt + 1 < self.limit && self.began.elapsed() < self.deadline;
        if let Some(span) = &span {
            trace::attempt_ended(span, ended(&sent));
        }
        drop(span);
        match sent {
            Err(_elapsed) if self.body.still_arriving() => {
                let limit_ms = self.config.timeouts.upstream_response_ms;
                Step::Answer(answer::request_timeout(limit_ms, Some(&self.request_id)))
            }
            Err(_elapsed) => self.failed(&backend, Outcome::Timeout, may_resend),
            Ok(Err(error)) => self.send_failed(&backend, &error.into_error(), may_resend),
            Ok(Ok(response)) => {
                backend.observe_latency(started);
                lease.keep(sender);
                self.answered(&backend, attempt, (response, lease), may_resend)
                    .await
            }
        }
    }

    /// The backend of attempt `attempt`, spending a token of retry budget on a retry.
    fn pick(&mut self, attempt: u32) -> Result<Arc<Backend>, NoPick> {
        let pool = self.pool;
        if attempt > 0 {
            // A refused connection sent nothing and loaded no backend, so trying the next one
            // spends no retry budget (the budget guards backends against amplified load).
            if self.last != Outcome::ConnectError && !pool.budget.withdraw() {
                pool.metrics.budget_exhausted.increment(1);
                return Err(NoPick::Stop);
            }
            pool.metrics.retry(self.last).increment(1);
        }
        let tried = &self.tried[..(attempt as usize).min(TRIED)];
        let backend = match pool.pick(self.key.as_deref(), tried) {
            Ok(backend) => backend,
            Err(_) if attempt == 0 => {
                pool.metrics.no_healthy.increment(1);
                return Err(NoPick::NoBackend);
            }
            Err(_) => return Err(NoPick::Stop),
        };
        if let Some(slot) = self.tried.get_mut(attempt as usize) {
            *slot = Arc::as_ptr(&backend) as usize;
        }
        Ok(backend)
    }

    /// The attempt's span, when traces are exported, saying why the attempt is made; the
    /// upstream `traceparent` names it.
    fn open_span(&mut self, attempt: u32, backend: &Backend) -> Option<Span> {
        let reason = Reason::of(attempt, self.asked_to_come_back, self.last);
        self.asked_to_come_back = false;
        let headers = &mut self.parts.headers;
        self.trace
            .as_mut()
            .map(|trace| trace.attempt(attempt, backend, reason, headers))
    }

    /// A pooled connection to `backend`, else a new one, and whether it is new; `None`: no
    /// connection could be opened, which is recorded.
    async fn connection(
        &mut self,
        backend: &Backend,
        span: Option<&Span>,
    ) -> Option<(Sender, bool)> {
        let upstream_idle = self.config.timeouts.upstream_idle_ms;
        if let Some(sender) = backend.idle.checkout(upstream_idle) {
            return Some((sender, false));
        }
        match upstream::connect(backend, self.connect_timeout()).await {
            Ok(sender) => Some((sender, true)),
            Err(error) => {
                tracing::debug!(backend = %backend.label, %error, "connect failed");
                self.connect_failed(backend, span);
                None
            }
        }
    }

    /// The request as the attempt sends it, with `body`.
    fn request(&self, body: RequestBody) -> Request<RequestBody> {
        let mut request = Request::new(body);
        *request.method_mut() = self.parts.method.clone();
        *request.uri_mut() = self.parts.uri.clone();
        *request.headers_mut() = self.parts.headers.clone();
        request
    }

    /// Sends `request` and waits up to `upstream_response_ms` for the response head. A pooled
    /// connection the backend closed while idle hands the request back unsent: it is sent once
    /// more on a fresh connection to the same backend. `Err`: that connection could not be
    /// opened (recorded), and what the loop does next.
    async fn send(
        &mut self,
        backend: &Backend,
        (mut sender, fresh): (Sender, bool),
        request: Request<RequestBody>,
        span: Option<&Span>,
    ) -> Result<(Sent, Sender), Step> {
        let timeout = Duration::from_millis(self.config.timeouts.upstream_response_ms);
        let mut sent = tokio::time::timeout(timeout, sender.try_send_request(request)).await;
        if let Ok(Err(error)) = &mut sent
            && !fresh
            && let Some(unsent) = error.take_message()
        {
            match upstream::connect(backend, self.connect_timeout()).await {
                Ok(new_sender) => {
                    sender = new_sender;
                    sent = tokio::time::timeout(timeout, sender.try_send_request(unsent)).await;
                }
                Err(_) => {
                    self.connect_failed(backend, span);
                    // A streamed body went with the unsent request and cannot be sent again.
                    let step = if self.body.replayable() {
                        Step::Next
                    } else {
                        Step::Stop
                    };
                    return Err(step);
                }
            }
        }
        Ok((sent, sender))
    }

    /// Records a connect that failed; unless the pool's backends have all refused or the
    /// retry deadline has passed, it does not use up an attempt (nothing was sent).
    fn connect_failed(&mut self, backend: &Backend, span: Option<&Span>) {
        if let Some(span) = span {
            trace::attempt_ended(span, Err(Outcome::ConnectError.label()));
        }
        backend.record(Outcome::ConnectError, &self.pool.config.outlier);
        self.last = Outcome::ConnectError;
        self.connect_failures += 1;
        self.limit += super::not_sent_allowance(
            self.connect_failures,
            self.pool.backend_count(),
            self.began,
            self.deadline,
        );
    }

    /// The exchange failed with `error`: the client's answer when its body was at fault (too
    /// large, malformed, cut off), which is never counted against the backend; otherwise a
    /// failure of the backend's.
    fn send_failed(&mut self, backend: &Backend, error: &hyper::Error, may_resend: bool) -> Step {
        let rid = Some(&self.request_id);
        match upstream::client_body_error(error) {
            Some(ClientBodyError::TooLarge) => {
                let max_body = self.config.limits.max_body_bytes;
                return Step::Answer(answer::body_too_large(max_body, rid));
            }
            Some(ClientBodyError::Unreadable(cause)) => {
                tracing::debug!(error = %cause, "client request body failed");
                return Step::Answer(answer::bad_body(rid));
            }
            None => {}
        }
        tracing::debug!(backend = %backend.label, %error, "upstream request failed");
        self.failed(backend, Outcome::Error, may_resend)
    }

    /// Records an exchange that ended in `outcome` without an answer; the next attempt if one
    /// may follow.
    fn failed(&mut self, backend: &Backend, outcome: Outcome, may_resend: bool) -> Step {
        backend.record(outcome, &self.pool.config.outlier);
        self.last = outcome;
        if may_resend { Step::Next } else { Step::Stop }
    }

    /// Records an answer and decides whether the client gets it. A 502/503/504 is kept and
    /// the request tried again when it may be; a short `Retry-After` is waited out first.
    async fn answered(
        &mut self,
        backend: &Backend,
        attempt: u32,
        (response, lease): (Response<Incoming>, Lease),
        may_resend: bool,
    ) -> Step {
        let status = response.status();
        let outcome = if status.is_server_error() {
            Outcome::ServerError
        } else {
            Outcome::Success
        };
        backend.record(outcome, &self.pool.config.outlier);
        let response = super::into_client_response(response, lease, &self.request_id);
        let again = matches!(
            status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        );
        let wait = self.retry_after_wait(attempt, &response);
        if !(again && may_resend) && wait.is_none() {
            return Step::Answer(response);
        }
        self.last = outcome;
        self.kept = Some(response);
        if let Some(wait) = wait {
            self.asked_to_come_back = true;
            let _waiting = self
                .trace
                .as_ref()
                .map(|t| t.waiting(wait.as_millis() as u64));
            tokio::time::sleep(wait).await;
        }
        Step::Next
    }

    /// The wait a short `Retry-After` on `response` asks for, when the request may be sent
    /// again and the wait fits in [`MAX_TOTAL_WAIT`] and the retry deadline. The wait is
    /// counted, and an attempt spent waiting does not use up `retry.max_attempts`.
    fn retry_after_wait(
        &mut self,
        attempt: u32,
        response: &Response<ResponseBody>,
    ) -> Option<Duration> {
        let wait = super::retry_after(response).filter(|wait| {
            self.retryable
                && self.waited + *wait <= MAX_TOTAL_WAIT
                && self.began.elapsed() + *wait < self.deadline
        })?;
        self.waited += wait;
        if attempt + 1 >= self.limit {
            self.limit += 1;
        }
        Some(wait)
    }

    /// The answer when no attempt gave one to hand over: the last answer kept, else a 504 or
    /// 502 saying how the last attempt failed.
    fn give_up(self) -> Response<ResponseBody> {
        if let Some(response) = self.kept {
            return response;
        }
        let rid = Some(&self.request_id);
        match self.last {
            Outcome::Timeout => answer::gateway_timeout(rid),
            Outcome::ConnectError => answer::bad_gateway("no backend accepted a connection", rid),
            _ => answer::bad_gateway("the backend closed the connection without an answer", rid),
        }
    }

    /// How long a new connection to a backend may take (`timeouts.connect_ms`).
    fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeouts.connect_ms)
    }
}

/// How an exchange ended, as the attempt's span records it.
fn ended(sent: &Sent) -> Result<StatusCode, &'static str> {
    match sent {
        Err(_elapsed) => Err(Outcome::Timeout.label()),
        Ok(Err(_)) => Err(Outcome::Error.label()),
        Ok(Ok(response)) => Ok(response.status()),
    }
}

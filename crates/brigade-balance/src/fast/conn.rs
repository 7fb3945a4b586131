//! One client connection on the fast core: read a head into the connection's buffer, check it,
//! route and rate-limit it, write the upstream head, forward ([`super::exchange`]), repeat —
//! all in the connection's own task, with buffers reused from request to request.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brigade_core::shutdown::Shutdown;
use http::{Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::codec::{self, MAX_HEADERS, Parsed, RequestFraming, RequestHead};
pub use super::connection::Connection;
use super::connection::{KEEP_BYTES, READ_CHUNK, header_value};
use super::exchange::{Body, Plan};
use super::timer::Timer;
use super::traced;
use super::write::{self, Added};
use crate::answer;
use crate::pool::Pool;
use crate::proxy::{self, Client};
use crate::rate_limit::Decision;
use crate::server::Opened;
use crate::state::{State, Table};
use crate::trace::{self, FastEdge};
use crate::upstream::ResponseBody;
use crate::view::RequestView;

/// How a connection left the fast core.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// It is finished (closed by either side, timed out, or refused).
    Closed,
    /// Its next request is for the hyper path; the buffered bytes go with it.
    HandOver,
}

/// A request view over the fast core's parsed head.
struct View<'h, 'b> {
    head: &'h RequestHead<'h, 'b>,
}

impl RequestView for View<'_, '_> {
    fn method(&self) -> &str {
        self.head.method
    }

    fn path(&self) -> &str {
        let target = self.head.target;
        target.split_once('?').map_or(target, |(path, _)| path)
    }

    fn target_host(&self) -> Option<&str> {
        None
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.head
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

impl Connection {
    /// Serves requests until the connection ends or must continue on the hyper path.
    pub async fn run(&mut self, state: &State, shutdown: &Shutdown) -> End {
        // One subscription for the connection's life, not one per request.
        let stop = shutdown.wait();
        tokio::pin!(stop);
        // One timer for every wait of the connection's life, not one per wait.
        let mut timer = Timer::new(&state.table().config.timeouts);
        loop {
            if shutdown.is_triggered() {
                return End::Closed;
            }
            let table = state.table_full();
            timer.set_timeouts(&table.config.timeouts);
            match self.read_head(&table, &mut timer, stop.as_mut()).await {
                Ok(()) => {}
                Err(end) => return end,
            }
            let arrived = Instant::now();
            let plan = match self.prepare(&table) {
                Prepared::Forward(plan) => plan,
                Prepared::HandOver => return End::HandOver,
                Prepared::Refused(response) => {
                    self.answer(&response, true).await;
                    return End::Closed;
                }
                Prepared::Answered(pool, response, close) => {
                    pool.metrics
                        .requests
                        .record(response.status(), arrived.elapsed());
                    if !self.answer(&response, close).await || close {
                        return End::Closed;
                    }
                    continue;
                }
            };
            let keep = self.forward(&table, &mut timer, plan, arrived).await;
            self.requests += 1;
            if !keep {
                return End::Closed;
            }
            for buffer in [&mut self.upstream_out, &mut self.upstream_in, &mut self.out] {
                buffer.clear();
                buffer.shrink_to(KEEP_BYTES);
            }
        }
    }

    /// Waits until the buffer holds a whole head (or something to refuse). The first head and
    /// a head that has started arriving have `header_read_ms`; between requests the connection
    /// may stay idle for `idle_ms`.
    async fn read_head(
        &mut self,
        table: &Table,
        timer: &mut Timer,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), End> {
        let timeouts = &table.config.timeouts;
        let max_head = table.config.limits.max_header_bytes;
        let limit = if self.requests > 0 {
            timeouts.idle_ms
        } else {
            timeouts.header_read_ms
        };
        timer.expire_in(Duration::from_millis(limit));
        let mut started = false;
        loop {
            // The parser runs once, in `prepare`; here it is enough to see the head's end (or
            // more bytes than a head may have).
            if head_ends(&self.read) || self.read.len() > max_head {
                return Ok(());
            }
            if !self.read.is_empty() && !started {
                // A head has begun: from now on it has `header_read_ms` to arrive.
                started = true;
                timer.expire_in(Duration::from_millis(timeouts.header_read_ms));
            }
            self.read.reserve(READ_CHUNK);
            let idle = self.read.is_empty();
            let read = tokio::select! {
                read = timer.run(self.client_stream.read_buf(&mut self.read)) => read,
                () = stop.as_mut(), if idle => return Err(End::Closed),
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Err(End::Closed),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Checks, routes and rate-limits the head in the buffer and writes the upstream head;
    /// the head's bytes are consumed.
    fn prepare(&mut self, table: &Table) -> Prepared {
        let limits = &table.config.limits;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let max_headers = limits.max_headers.min(MAX_HEADERS);
        let head = match codec::parse_request(
            &self.read,
            &mut headers[..max_headers],
            limits.max_header_bytes,
        ) {
            Ok(Parsed::Complete(head)) => head,
            // `read_head` returned, so the head is complete; were it not, the hyper path would
            // go on reading it.
            Ok(Parsed::Partial) => return Prepared::HandOver,
            Err(error) => {
                // Refused by the parser: like hyper's refusals, not counted in any pool.
                new_request_id(&mut self.request_id);
                return Prepared::Refused(refusal(
                    error,
                    limits.max_header_bytes,
                    &self.request_id,
                ));
            }
        };
        if head.hand_over {
            return Prepared::HandOver;
        }
        let view = View { head: &head };
        let pool = Arc::clone(table.route(&view));
        let client_id = view
            .header("x-request-id")
            .filter(|v| proxy::is_sane_request_id(v));
        self.request_id.clear();
        match client_id {
            Some(id) => self.request_id.extend_from_slice(id),
            None => new_request_id(&mut self.request_id),
        }
        let traced::Edge {
            traceparent,
            mut traced,
        } = self.edge(&view, &pool);
        if let Some(problem) = head.problem {
            let response = refusal(problem, limits.max_header_bytes, &self.request_id);
            traced::finish(&mut traced, response.status());
            return Prepared::Answered(pool, response, true);
        }
        let decision = table.limiter.check(&view, self.client.address);
        if let Decision::Limited(rule, limited) = &decision {
            crate::metrics::rate_limited(&rule.config.name, pool.name()).increment(1);
            let id = header_value(&self.request_id);
            let response = answer::too_many_requests(rule, limited, id.as_ref());
            traced::finish(&mut traced, response.status());
            let close = head.framing != RequestFraming::Empty;
            let len = head.len;
            self.read.drain(..len);
            return Prepared::Answered(pool, response, close);
        }
        if let RequestFraming::Length(n) = head.framing
            && n > limits.max_body_bytes
        {
            let id = header_value(&self.request_id);
            let response = answer::body_too_large(n, id.as_ref());
            traced::finish(&mut traced, response.status());
            return Prepared::Answered(pool, response, true);
        }
        let added = Added {
            request_id: client_id.is_none().then_some(self.request_id.as_slice()),
            traceparent: traceparent.as_ref().map(|t| t.as_slice()),
            peer: &self.peer,
            scheme: self.client.scheme.as_bytes(),
            trusted: self.client.trusted,
        };
        let mut plan = plan(
            &mut self.upstream_out,
            &head,
            &added,
            pool,
            &decision,
            limits.max_body_bytes,
        );
        if let Some(traced) = &mut traced {
            traced.written_at(plan.traceparent_at);
        }
        plan.traced = traced;
        let len = head.len;
        self.read.drain(..len);
        Prepared::Forward(plan)
    }

    /// The edge's trace decision for the request in `view`, routed to `pool`: without trace
    /// export, a new sampled `traceparent` when the client sent none, as always; with it,
    /// unsampled requests get no span and sampled ones the hyper path's spans
    /// ([`traced`]).
    fn edge(&self, view: &View<'_, '_>, pool: &Pool) -> traced::Edge {
        let header = view.header("traceparent");
        if !brigade_core::traces::exporting() {
            let traceparent = header.is_none().then(proxy::traceparent_bytes);
            return traced::Edge {
                traceparent,
                traced: None,
            };
        }
        match trace::fast_edge(header) {
            FastEdge::Unsampled(traceparent) => traced::Edge {
                traceparent,
                traced: None,
            },
            FastEdge::Sampled(decided) => {
                // The count of requests before this one on the connection, for its span.
                let served = &self.client.trace.served;
                served.store(self.requests, std::sync::atomic::Ordering::Relaxed);
                let request = traced::Request {
                    method: view.head.method,
                    path: view.path(),
                    traceparent: header,
                    tracestate: view.header("tracestate"),
                    request_id: &self.request_id,
                };
                traced::sampled(&request, pool, &self.client.trace, decided)
            }
        }
    }

    /// Writes one of the balancer's own answers; false when the client is gone.
    pub(super) async fn answer(&mut self, response: &Response<ResponseBody>, close: bool) -> bool {
        self.out.clear();
        write::own_answer(&mut self.out, response, close);
        self.client_stream.write_all(&self.out).await.is_ok()
    }

    /// Forwards the prepared request; false when the connection cannot carry another one.
    async fn forward(
        &mut self,
        table: &Table,
        timer: &mut Timer,
        plan: Plan,
        arrived: Instant,
    ) -> bool {
        super::exchange::forward(self, timer, table, plan, arrived).await
    }
}

/// Writes the upstream head into `out` and sums up what forwarding needs to know.
fn plan(
    out: &mut Vec<u8>,
    head: &RequestHead<'_, '_>,
    added: &Added<'_>,
    pool: Arc<Pool>,
    decision: &Decision<'_>,
    max_body: u64,
) -> Plan {
    out.clear();
    let traceparent_at = write::request_head(out, head, added);
    let view = View { head };
    Plan {
        key: proxy::hash_key(&pool, &view),
        retryable: proxy::method_is_retryable(
            head.method,
            view.header("idempotency-key").is_some(),
        ),
        head_request: head.method == "HEAD",
        close: head.close,
        rate_limit: match decision {
            Decision::Allowed(rule, allowed) => Some((
                rule.policy.clone(),
                answer::rate_limit_value(rule, allowed.remaining, allowed.reset_secs).ok(),
            )),
            _ => None,
        },
        body: match head.framing {
            RequestFraming::Empty | RequestFraming::Length(0) => Body::Empty,
            RequestFraming::Length(n) => Body::Length(n),
            RequestFraming::Chunked => Body::Chunked,
        },
        max_body,
        pool,
        traceparent_at,
        traced: None,
    }
}

/// What [`Connection::prepare`] decided.
enum Prepared {
    /// Forward it.
    Forward(Plan),
    /// Continue the connection on the hyper path.
    HandOver,
    /// Answered by the balancer (pool for the metrics; close the connection afterwards).
    Answered(Arc<Pool>, Response<ResponseBody>, bool),
    /// Refused before routing; the connection closes.
    Refused(Response<ResponseBody>),
}

/// The answer to a refused head: 431 for size and count limits, 501 for an unimplemented
/// transfer coding, 400 otherwise; problem+json naming the problem.
fn refusal(
    error: codec::RequestError,
    max_header_bytes: usize,
    id: &[u8],
) -> Response<ResponseBody> {
    let id = header_value(id);
    match error.status() {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            answer::headers_too_large(max_header_bytes, id.as_ref())
        }
        StatusCode::NOT_IMPLEMENTED => answer::problem(
            StatusCode::NOT_IMPLEMENTED,
            "not-implemented",
            "Transfer coding not implemented",
            &error.to_string(),
            id.as_ref(),
        ),
        _ => answer::bad_request(&error.to_string(), id.as_ref()),
    }
}

/// Whether `buffer` holds the end of a head: an empty line, after CRLF or a bare LF (which
/// the parser then refuses).
fn head_ends(buffer: &[u8]) -> bool {
    let mut at = 0;
    while let Some(found) = buffer[at..].iter().position(|&b| b == b'\n') {
        let next = at + found + 1;
        match buffer.get(next) {
            Some(b'\n') => return true,
            Some(b'\r') if buffer.get(next + 1) == Some(&b'\n') => return true,
            Some(_) => at = next,
            None => return false,
        }
    }
    false
}

/// Writes a new UUIDv7 request id into `out`.
fn new_request_id(out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&crate::ids::request_id());
}

/// Serves a plain-TCP client connection on the fast core, continuing on the hyper path when a
/// request needs it.
pub async fn serve(stream: TcpStream, peer: SocketAddr, state: Arc<State>, shutdown: Shutdown) {
    let client = {
        let table = state.table();
        Client::new(peer, &table.config.trusted_proxies)
    };
    let mut connection = Connection::new(stream, client);
    if connection.run(&state, &shutdown).await == End::HandOver {
        let opened = Opened {
            secure: false,
            accepted: connection.client.trace.accepted,
            served: connection.requests,
        };
        let (stream, buffered) = connection.into_parts();
        let stream = super::rewind::Rewind::new(buffered, stream);
        crate::server::serve_connection_with(stream, peer, state, shutdown, opened).await;
    }
}

#[cfg(test)]
mod tests {
    use super::head_ends;

    #[test]
    fn a_head_ends_at_its_empty_line() {
        assert!(head_ends(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(head_ends(b"GET / HTTP/1.1\nHost: a\n\n"));
        assert!(head_ends(b"GET / HTTP/1.1\r\n\r\nbody"));
        assert!(!head_ends(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!head_ends(b"GET / HTTP/1.1\r\nHost: a\r\n\r"));
        assert!(!head_ends(b""));
    }
}

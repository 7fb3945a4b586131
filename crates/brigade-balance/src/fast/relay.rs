//! The I/O of one attempt on the fast core: the request (head and kept body in one write, or a
//! streamed body after it), the response head, and the response body relayed to the client —
//! a `Content-Length` body byte for byte, a chunked or close-delimited one re-framed chunked.
//! An upstream connection goes back to the thread's idle stack only after its whole response
//! was read and nothing followed it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::chunked::{self, Decoder};
use super::codec::{self, MAX_HEADERS, Parsed, ResponseFraming};
use super::connection::Connection;
use super::timer::Timer;
use super::write::{self, ResponseExtras};
use crate::answer;
use crate::backend::Backend;
use crate::clock::{ms_at, uptime_ms};
use crate::config::Config;
use crate::upstream::ResponseBody;

/// Largest response head read from a backend.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// What the response head needs from the request.
#[derive(Debug)]
pub(super) struct Extras<'a> {
    /// The request was HEAD.
    pub head_request: bool,
    /// The client connection closes after this answer.
    pub close: bool,
    /// Rate-limit fields for the response.
    pub rate_limit: Option<&'a (HeaderValue, Option<HeaderValue>)>,
    /// Longest wait for a piece of a streamed request body.
    pub body_timeout: Duration,
}

/// A response head received (and written for the client into `conn.out`).
#[derive(Debug)]
pub(super) struct Received {
    /// Its status.
    pub status: StatusCode,
    /// How its body is framed.
    pub framing: ResponseFraming,
    /// The connection may carry another request after the body.
    pub reusable: bool,
    /// A short `Retry-After` on a 409, 429 or 503.
    pub retry_after: Option<Duration>,
}

/// Why an attempt failed.
#[derive(Debug)]
pub(super) enum Fail {
    /// The client's body failed: its fault, not the backend's.
    Client(ClientFault),
    /// The backend closed (or reset) the connection before any byte of an answer.
    Closed,
    /// The backend broke the exchange otherwise (I/O error, malformed head).
    Upstream,
    /// No response head within `timeouts.upstream_response_ms`.
    Timeout,
}

/// A request body that failed on the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum ClientFault {
    /// More than `limits.max_body_bytes`.
    #[error("request body exceeds the limit")]
    TooLarge,
    /// A malformed chunked coding, or the client went away mid-body.
    #[error("the request body is malformed or ended early")]
    Malformed,
    /// The body did not arrive within `timeouts.body_read_ms`.
    #[error("the request body is too slow")]
    Timeout(u64),
}

impl ClientFault {
    /// The client's answer (the connection closes after it).
    pub(super) fn answer(self, max_body: u64, id: Option<&HeaderValue>) -> Response<ResponseBody> {
        match self {
            Self::TooLarge => answer::body_too_large(max_body, id),
            Self::Malformed => answer::bad_body(id),
            Self::Timeout(ms) => answer::request_timeout(ms, id),
        }
    }
}

/// Reads a `Content-Length` body of `n` bytes into `conn.upstream_out` (after the head), kept
/// for replay; false when it does not arrive within `timeout`.
pub(super) async fn read_body(
    conn: &mut Connection,
    timer: &mut Timer,
    n: u64,
    timeout: Duration,
) -> bool {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    timer.expire_in(timeout);
    while conn.read.len() < n {
        match timer
            .run(read_some(&mut conn.client_stream, &mut conn.read))
            .await
        {
            Ok(Ok(read)) if read > 0 => {}
            _ => return false,
        }
    }
    conn.upstream_out.extend_from_slice(&conn.read[..n]);
    conn.read.drain(..n);
    true
}

/// Sends the request and reads the response head.
pub(super) async fn exchange(
    conn: &mut Connection,
    upstream: &mut TcpStream,
    streamed: Option<&mut Streamed>,
    max_body: u64,
    extras: &Extras<'_>,
) -> Result<Received, Fail> {
    if upstream.write_all(&conn.upstream_out).await.is_err() {
        return Err(Fail::Closed);
    }
    if let Some(streamed) = streamed {
        send_body(conn, upstream, streamed, max_body, extras.body_timeout).await?;
    }
    receive_head(conn, upstream, extras).await
}

/// Streams the rest of the client's body upstream as it arrives.
async fn send_body(
    conn: &mut Connection,
    upstream: &mut TcpStream,
    streamed: &mut Streamed,
    max_body: u64,
    timeout: Duration,
) -> Result<(), Fail> {
    loop {
        conn.out.clear();
        let done = match streamed {
            Streamed::Length(remaining) => {
                let take = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(conn.read.len());
                conn.out.extend_from_slice(&conn.read[..take]);
                conn.read.drain(..take);
                *remaining -= take as u64;
                *remaining == 0
            }
            Streamed::Chunked(decoder, total) => {
                let out = &mut conn.out;
                let progress = decoder
                    .decode(&conn.read, |data| {
                        *total += data.len() as u64;
                        chunked::encode_chunk(out, data);
                    })
                    .map_err(|_| Fail::Client(ClientFault::Malformed))?;
                if *total > max_body {
                    return Err(Fail::Client(ClientFault::TooLarge));
                }
                conn.read.drain(..progress.consumed);
                if progress.done {
                    conn.out.extend_from_slice(chunked::END);
                }
                progress.done
            }
        };
        if !conn.out.is_empty() && upstream.write_all(&conn.out).await.is_err() {
            return Err(Fail::Upstream);
        }
        if done {
            return Ok(());
        }
        let limit_ms = timeout.as_millis() as u64;
        match tokio::time::timeout(timeout, read_some(&mut conn.client_stream, &mut conn.read))
            .await
        {
            Ok(Ok(read)) if read > 0 => {}
            Ok(_) => return Err(Fail::Client(ClientFault::Malformed)),
            Err(_) => return Err(Fail::Client(ClientFault::Timeout(limit_ms))),
        }
    }
}

/// Reads the response head (skipping interim 1xx heads) and writes the client's head into
/// `conn.out`; the body's first bytes stay in `conn.upstream_in`.
async fn receive_head(
    conn: &mut Connection,
    upstream: &mut TcpStream,
    extras: &Extras<'_>,
) -> Result<Received, Fail> {
    conn.upstream_in.clear();
    let mut any = false;
    loop {
        if !conn.upstream_in.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let parsed = codec::parse_response(
                &conn.upstream_in,
                &mut headers,
                extras.head_request,
                MAX_RESPONSE_HEAD,
            );
            match parsed {
                Err(error) => {
                    tracing::debug!(%error, "unusable response head");
                    return Err(Fail::Upstream);
                }
                Ok(Parsed::Complete(head)) if (100..200).contains(&head.status) => {
                    let len = head.len;
                    conn.upstream_in.drain(..len);
                    continue;
                }
                Ok(Parsed::Complete(head)) => {
                    let status = StatusCode::from_u16(head.status).map_err(|_| Fail::Upstream)?;
                    let retry_after = matches!(head.status, 409 | 429 | 503)
                        .then(|| {
                            head.headers
                                .iter()
                                .find(|h| h.name.eq_ignore_ascii_case("retry-after"))
                                .and_then(|h| crate::proxy::retry_after_value(h.value))
                        })
                        .flatten();
                    conn.out.clear();
                    let response_extras = ResponseExtras {
                        request_id: &conn.request_id,
                        rate_limit: extras.rate_limit.map(|(p, l)| (p, l.as_ref())),
                        close: extras.close,
                    };
                    write::response_head(&mut conn.out, &head, &response_extras);
                    let received = Received {
                        status,
                        framing: head.framing,
                        reusable: head.reusable,
                        retry_after,
                    };
                    let len = head.len;
                    conn.upstream_in.drain(..len);
                    return Ok(received);
                }
                Ok(Parsed::Partial) => {}
            }
        }
        match read_some(upstream, &mut conn.upstream_in).await {
            Ok(0) | Err(_) if !any => return Err(Fail::Closed),
            Ok(0) | Err(_) => return Err(Fail::Upstream),
            Ok(_) => any = true,
        }
    }
}

/// When the whole body is already in `conn.upstream_in`: appends it (framed for the client) to
/// `conn.out` and says whether nothing followed it.
pub(super) fn take_whole(conn: &mut Connection, framing: ResponseFraming) -> Option<bool> {
    match framing {
        ResponseFraming::Empty => Some(conn.upstream_in.is_empty()),
        ResponseFraming::Length(n) => {
            let n = usize::try_from(n).ok()?;
            if conn.upstream_in.len() < n {
                return None;
            }
            conn.out.extend_from_slice(&conn.upstream_in[..n]);
            Some(conn.upstream_in.len() == n)
        }
        ResponseFraming::Chunked => {
            let before = conn.out.len();
            let out = &mut conn.out;
            let mut decoder = Decoder::new();
            match decoder.decode(&conn.upstream_in, |data| chunked::encode_chunk(out, data)) {
                Ok(progress) if progress.done => {
                    conn.out.extend_from_slice(chunked::END);
                    Some(progress.consumed == conn.upstream_in.len())
                }
                _ => {
                    conn.out.truncate(before);
                    None
                }
            }
        }
        ResponseFraming::UntilClose => None,
    }
}

/// Relays the response whose head is in `conn.out` (and arrived at `answered`); returns
/// whether the client connection can carry another request. The upstream connection is kept
/// when its response ended cleanly.
pub(super) async fn relay(
    conn: &mut Connection,
    timer: &mut Timer,
    (mut upstream, backend): (TcpStream, &Arc<Backend>),
    received: &Received,
    config: &Config,
    answered: Instant,
) -> bool {
    let max_idle = config.limits.max_idle_per_backend;
    if let Some(clean) = take_whole(conn, received.framing) {
        if clean && received.reusable {
            // Idle from the moment its answer was whole, which is when the head arrived.
            super::idle::checkin(backend, upstream, max_idle, ms_at(answered));
        }
        return conn.client_stream.write_all(&conn.out).await.is_ok();
    }
    let timeout = Duration::from_millis(config.timeouts.upstream_response_ms);
    match stream_body(conn, timer, &mut upstream, received.framing, timeout).await {
        BodyEnd::Clean => {
            if received.reusable {
                super::idle::checkin(backend, upstream, max_idle, uptime_ms());
            }
            true
        }
        BodyEnd::Unclean => true,
        BodyEnd::Broken => false,
    }
}

/// How a streamed response body ended.
enum BodyEnd {
    /// Whole, and nothing followed it.
    Clean,
    /// Whole for the client, but the upstream connection cannot be reused.
    Unclean,
    /// Cut off: the client's connection must close (its response is incomplete).
    Broken,
}

/// Relays a body that is not whole in the buffer yet, piece by piece.
async fn stream_body(
    conn: &mut Connection,
    timer: &mut Timer,
    upstream: &mut TcpStream,
    framing: ResponseFraming,
    timeout: Duration,
) -> BodyEnd {
    let mut remaining = match framing {
        ResponseFraming::Length(n) => n,
        _ => 0,
    };
    let mut decoder = Decoder::new();
    loop {
        let finished = match framing {
            ResponseFraming::Length(_) => {
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(conn.upstream_in.len());
                conn.out.extend_from_slice(&conn.upstream_in[..take]);
                remaining -= take as u64;
                let extra = conn.upstream_in.len() > take;
                conn.upstream_in.clear();
                (remaining == 0).then_some(if extra {
                    BodyEnd::Unclean
                } else {
                    BodyEnd::Clean
                })
            }
            ResponseFraming::Chunked => {
                let out = &mut conn.out;
                let Ok(progress) =
                    decoder.decode(&conn.upstream_in, |data| chunked::encode_chunk(out, data))
                else {
                    return BodyEnd::Broken;
                };
                let extra = progress.consumed < conn.upstream_in.len();
                conn.upstream_in.clear();
                progress.done.then(|| {
                    conn.out.extend_from_slice(chunked::END);
                    if extra {
                        BodyEnd::Unclean
                    } else {
                        BodyEnd::Clean
                    }
                })
            }
            _ => {
                chunked::encode_chunk(&mut conn.out, &conn.upstream_in);
                conn.upstream_in.clear();
                None
            }
        };
        if !conn.out.is_empty() && conn.client_stream.write_all(&conn.out).await.is_err() {
            return BodyEnd::Broken;
        }
        conn.out.clear();
        if let Some(ended) = finished {
            return ended;
        }
        match timer
            .within(timeout, read_some(upstream, &mut conn.upstream_in))
            .await
        {
            Ok(Ok(0)) if framing == ResponseFraming::UntilClose => {
                let ended = conn.client_stream.write_all(chunked::END).await.is_ok();
                return if ended {
                    BodyEnd::Unclean
                } else {
                    BodyEnd::Broken
                };
            }
            Ok(Ok(read)) if read > 0 => {}
            _ => return BodyEnd::Broken,
        }
    }
}

/// A request body still arriving from the client, forwarded as it comes.
#[derive(Debug)]
pub(super) enum Streamed {
    /// Bytes of a `Content-Length` body still to come.
    Length(u64),
    /// A chunked body and the bytes of it passed so far.
    Chunked(super::chunked::Decoder, u64),
}

/// Reads from a socket into a buffer, up to `READ` bytes more.
pub(super) async fn read_some(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<usize> {
    buffer.reserve(8192);
    stream.read_buf(buffer).await
}

//! Forwarding one client request: checks, routing, header rewriting, backend selection,
//! retries within the budget, and streaming the chosen backend's response back.
//!
//! Retry rules: a connect failure is retried on another backend for every method (nothing was
//! sent). After the request was sent, only idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS,
//! TRACE) and POST/PATCH carrying `Idempotency-Key` are retried, on a connection error, a
//! timeout or a 502/503/504 answer, and only when the body was small enough to be kept for
//! replay; a 409/429/503 answer with `Retry-After` of at most 2 s is waited out and retried the
//! same way. No attempt starts later than `retry.deadline_ms` after the first one could (the
//! request and its kept body had arrived). Nothing is retried once the response is handed to
//! the client, so no client ever sees bytes of two attempts. Every retry spends a token of the
//! pool's budget.

mod attempts;
mod body;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::{Body, Incoming};
use ipnet::IpNet;

use brigade_core::request::{TRACEPARENT, X_REQUEST_ID};

use crate::answer;
use crate::config::HashKey;
use crate::head::{self, HeadError};
use crate::pool::Pool;
use crate::rate_limit::Decision;
use crate::state::{State, Table};
use crate::trace::RequestTrace;
use crate::upstream::{Lease, ResponseBody, UpstreamBody};
use crate::view::RequestView;

use attempts::Attempts;
use body::{ClientBody, ReadError};

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1).
static HOP_BY_HOP: [&HeaderName; 8] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &header::PROXY_AUTHORIZATION,
];

/// The bit of `Connection` (position 0 of [`HOP_BY_HOP`]) in `strip_hop_by_hop`'s set.
const CONNECTION_BIT: u8 = 1;

/// The position of `name` in [`HOP_BY_HOP`], compared as lowercase strings (which is what
/// `HeaderName::as_str` gives and what a `Connection` token is once lowercased).
fn hop_by_hop_index(name: &str) -> Option<usize> {
    HOP_BY_HOP.iter().position(|hop| hop.as_str() == name)
}

/// Headers the balancer adds to a request: request id, traceparent and three X-Forwarded-*.
const ADDED_HEADERS: usize = 5;

/// The client end of a connection, as the balancer forwards it.
#[derive(Debug)]
pub struct Client {
    /// The peer's IP (the client itself, or a proxy in front of the balancer).
    pub(crate) address: IpAddr,
    /// The peer's IP as an `X-Forwarded-For` value, formatted once per connection rather than
    /// once per request.
    pub(crate) forwarded_for: HeaderValue,
    /// The peer is one of `trusted_proxies`: its `X-Forwarded-Proto`/`-Host` are passed on.
    pub(crate) trusted: bool,
    /// The scheme the client used, for `X-Forwarded-Proto`.
    pub(crate) scheme: HeaderValue,
    /// `Strict-Transport-Security` added to answers on a TLS connection.
    pub(crate) hsts: Option<HeaderValue>,
    /// How the connection began and how many requests it served, for the request spans.
    pub(crate) trace: crate::trace::Connection,
}

impl Client {
    /// Describes the peer of a new plain-HTTP connection.
    pub fn new(address: SocketAddr, trusted_proxies: &[IpNet]) -> Self {
        let forwarded_for = HeaderValue::from_str(&address.ip().to_string())
            .expect("an IP address is a valid header value");
        Self {
            address: address.ip(),
            forwarded_for,
            trusted: trusted_proxies
                .iter()
                .any(|net| net.contains(&address.ip())),
            scheme: HeaderValue::from_static("http"),
            hsts: None,
            trace: crate::trace::Connection::new(crate::trace::Accepted::now(), 0),
        }
    }

    /// The connection began as `accepted` and has served `served` requests already (on the
    /// fast core, before it was handed to the hyper path).
    pub(crate) fn began(mut self, accepted: crate::trace::Accepted, served: u64) -> Self {
        self.trace = crate::trace::Connection::new(accepted, served);
        self
    }

    /// The connection speaks TLS: `X-Forwarded-Proto: https`, and answers carry
    /// `Strict-Transport-Security` with this max-age (0: none).
    pub fn over_tls(mut self, hsts_max_age_secs: u64) -> Self {
        self.scheme = HeaderValue::from_static("https");
        self.hsts = (hsts_max_age_secs > 0)
            .then(|| HeaderValue::from_str(&format!("max-age={hsts_max_age_secs}")).ok())
            .flatten();
        self
    }
}

/// Most attempts remembered for "try another backend" (more attempts may still be made).
pub(crate) const TRIED: usize = 8;

/// Forwards one request and counts its answer in the pool's client-facing metrics.
pub async fn handle(
    state: &State,
    request: Request<Incoming>,
    client: &Client,
) -> Response<ResponseBody> {
    let arrived = Instant::now();
    let table = state.table_full();
    let (mut parts, body) = request.into_parts();
    let head = head::normalize(&mut parts);
    // Every request has a pool, even one answered 400 below: rules look only at the host,
    // path and headers, which any parsed request has.
    let pool = Arc::clone(table.route(&parts));
    let mut trace = if head.is_ok() {
        RequestTrace::start(
            (&parts.method, parts.uri.path()),
            &mut parts.headers,
            &pool,
            &client.trace,
            None,
        )
    } else {
        None
    };
    let decision = match head {
        Ok(()) => table.limiter.check(&parts, client.address),
        Err(_) => Decision::Unlimited,
    };
    let mut response = match &decision {
        Decision::Limited(rule, limited) => {
            let request_id = ensure_request_context(&mut parts.headers);
            crate::metrics::rate_limited(&rule.config.name, pool.name()).increment(1);
            answer::too_many_requests(rule, limited, Some(&request_id))
        }
        _ => forward(&table, &pool, (parts, head), body, client, &mut trace).await,
    };
    if let Some(trace) = trace {
        trace.finish(response.status());
    }
    if let Decision::Allowed(rule, allowed) = &decision {
        let headers = response.headers_mut();
        headers.insert(answer::RATELIMIT_POLICY.clone(), rule.policy.clone());
        if let Ok(value) = answer::rate_limit_value(rule, allowed.remaining, allowed.reset_secs) {
            headers.insert(answer::RATELIMIT.clone(), value);
        }
    }
    if let Some(hsts) = &client.hsts {
        response
            .headers_mut()
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| hsts.clone());
    }
    pool.metrics
        .requests
        .record(response.status(), arrived.elapsed());
    response
}

/// The checks and header rewriting of one request, then its attempts.
async fn forward(
    table: &Table,
    pool: &Pool,
    (mut parts, head): (http::request::Parts, Result<(), HeadError>),
    body: Incoming,
    client: &Client,
    trace: &mut Option<RequestTrace>,
) -> Response<ResponseBody> {
    let config = &table.config;
    // One growth of the map for every header added below, instead of one per insert.
    parts.headers.reserve(ADDED_HEADERS);
    let request_id = ensure_request_context(&mut parts.headers);
    let rid = Some(&request_id);

    if let Err(error) = head {
        return answer::bad_request(&error.to_string(), rid);
    }
    if head_size(&parts.uri, &parts.headers) > config.limits.max_header_bytes {
        return answer::headers_too_large(config.limits.max_header_bytes, rid);
    }
    let max_body = config.limits.max_body_bytes;
    if body.size_hint().lower() > max_body {
        return answer::body_too_large(max_body, rid);
    }
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::EXPECT);
    add_forwarded(&mut parts.headers, client);

    let body = match ClientBody::read(body, config).await {
        Ok(body) => body,
        Err(ReadError::Unreadable) => return answer::bad_body(rid),
        Err(ReadError::TimedOut { limit_ms }) => return answer::request_timeout(limit_ms, rid),
    };
    pool.budget.deposit();
    Attempts::new(config, pool, (parts, body), request_id, trace)
        .run()
        .await
}

/// 1 when a failed connect should not use up one of `retry.max_attempts`: nothing was sent, so
/// every method may go on to the next backend (nginx's `proxy_next_upstream error`), and a
/// request whose primaries all refuse reaches a backup in the same request. Bounded: once as
/// many connects failed as the pool has backends, or past the retry deadline, failed connects
/// count as attempts again.
pub(crate) fn not_sent_allowance(
    connect_failures: usize,
    backend_count: usize,
    began: Instant,
    deadline: Duration,
) -> u32 {
    u32::from(connect_failures < backend_count && began.elapsed() < deadline)
}

/// Longest `Retry-After` the balancer waits out itself before retrying.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);
/// Longest total wait for `Retry-After` answers of one request; such waits do not use up
/// `retry.max_attempts` (the in-progress window of a dead replica's request can outlast one).
pub(crate) const MAX_TOTAL_WAIT: Duration = Duration::from_secs(5);

/// A 409, 429 or 503 answer with a short `Retry-After` (whole seconds) asks for the same
/// request again shortly: brigade answers a keyed retry this way while the first request with
/// that key is still in progress on a replica that may have died. The balancer waits and
/// retries (within attempts and budget) instead of handing the conflict to the client.
fn retry_after<B>(response: &Response<B>) -> Option<Duration> {
    if !matches!(
        response.status(),
        StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        return None;
    }
    retry_after_value(response.headers().get(header::RETRY_AFTER)?.as_bytes())
}

/// A `Retry-After` value in whole seconds, when it asks for at most [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after_value(value: &[u8]) -> Option<Duration> {
    let seconds: u64 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds)).filter(|wait| *wait <= MAX_RETRY_AFTER)
}

/// Sets `X-Request-Id` and `traceparent` when the client sent none; returns the request id.
fn ensure_request_context(headers: &mut HeaderMap) -> HeaderValue {
    let sane = headers
        .get(&X_REQUEST_ID)
        .filter(|v| is_sane_request_id(v.as_bytes()));
    let request_id = match sane {
        Some(id) => id.clone(),
        None => {
            let value = HeaderValue::from_bytes(&crate::ids::request_id())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
            headers.insert(X_REQUEST_ID.clone(), value.clone());
            value
        }
    };
    if !headers.contains_key(&TRACEPARENT) {
        headers.insert(TRACEPARENT.clone(), new_traceparent());
    }
    request_id
}

/// A W3C `traceparent` (version 00, sampled) with a random trace id and span id, written into
/// one stack buffer: this runs for nearly every request.
fn new_traceparent() -> HeaderValue {
    HeaderValue::from_bytes(&traceparent_bytes())
        .expect("hex digits and dashes are valid header bytes")
}

/// The text of a new `traceparent` (see [`new_traceparent`]).
pub(crate) fn traceparent_bytes() -> [u8; 55] {
    crate::ids::traceparent()
}

/// Bytes of the request head as the client sent it (approximately: request line + headers).
fn head_size(uri: &Uri, headers: &HeaderMap) -> usize {
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len());
    let line = target + 16;
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
///
/// This runs twice per request (request and response), so it finds what to remove in one pass
/// over the names present, compared as strings, and removes only those: most messages carry
/// at most `Connection: keep-alive`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(index) = hop_by_hop_index(name.as_str()) {
            present |= 1 << index;
        }
    }
    if present == 0 {
        return;
    }
    // Connection may name further headers of this hop. Its usual tokens (keep-alive, close,
    // upgrade) go with it anyway, so the common `Connection: keep-alive` needs no parsing.
    let simple = |value: &HeaderValue| {
        let value = value.as_bytes();
        value.eq_ignore_ascii_case(b"keep-alive") || value.eq_ignore_ascii_case(b"close")
    };
    if present & CONNECTION_BIT != 0 && !headers.get_all(header::CONNECTION).iter().all(simple) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .filter(|name| {
                name.as_str() != "close"
                    && hop_by_hop_index(name.as_str()).is_none()
                    && crate::fast::codec::connection_may_name(name.as_str())
            })
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (index, hop) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << index) != 0 {
            headers.remove(*hop);
        }
    }
}

fn add_forwarded(headers: &mut HeaderMap, client: &Client) {
    let forwarded_for = match headers.get(&X_FORWARDED_FOR) {
        // Usually the balancer is the first proxy: the connection's value as it is.
        None => Some(client.forwarded_for.clone()),
        Some(_) => {
            // Every line the client sent, in order, then the peer.
            let mut list = Vec::with_capacity(64);
            for previous in headers.get_all(&X_FORWARDED_FOR) {
                list.extend_from_slice(previous.as_bytes());
                list.extend_from_slice(b", ");
            }
            list.extend_from_slice(client.forwarded_for.as_bytes());
            // Hands the buffer over instead of copying it.
            HeaderValue::from_maybe_shared(Bytes::from(list)).ok()
        }
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    // What a client says about the scheme and host it used is believed only from a trusted
    // proxy; anyone else could claim `https` over plain HTTP.
    if !(client.trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), client.scheme.clone());
    }
    if !(client.trusted && headers.contains_key(&X_FORWARDED_HOST))
        && let Some(host) = headers.get(header::HOST).cloned()
    {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
}

/// Whether a request may be sent twice: idempotent methods, and POST/PATCH with a key.
fn is_retryable(method: &Method, headers: &HeaderMap) -> bool {
    method_is_retryable(method.as_str(), headers.contains_key(&IDEMPOTENCY_KEY))
}

/// [`is_retryable`] on the method's text and whether `Idempotency-Key` is present.
pub(crate) fn method_is_retryable(method: &str, idempotency_key: bool) -> bool {
    match method {
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE" => true,
        "POST" | "PATCH" => idempotency_key,
        _ => false,
    }
}

/// A client's `X-Request-Id` that is passed on as it is: 1–128 visible ASCII characters.
pub(crate) fn is_sane_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 128 && value.iter().all(u8::is_ascii_graphic)
}

/// The consistent-hash key of a request, when the pool uses one and the request carries it.
pub(crate) fn hash_key(pool: &Pool, request: &impl RequestView) -> Option<Vec<u8>> {
    match pool.config.hash_key.as_ref()? {
        HashKey::Header(name) => request.header(name.as_str()).map(<[u8]>::to_vec),
        HashKey::Cookie(name) => request
            .header_values("cookie")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_bytes().to_vec()),
        HashKey::PathSegment(index) => request
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .nth(*index)
            .map(|s| s.as_bytes().to_vec()),
    }
}

fn into_client_response(
    response: Response<Incoming>,
    lease: Lease,
    request_id: &HeaderValue,
) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(&X_REQUEST_ID) {
        parts
            .headers
            .insert(X_REQUEST_ID.clone(), request_id.clone());
    }
    Response::from_parts(
        parts,
        ResponseBody::Upstream(UpstreamBody::new(body, lease)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_connection_tokens_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        assert_eq!(hop_by_hop_index("connection"), Some(0), "CONNECTION_BIT");
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x-kept"));

        // The common single token, in any case, and tokens spread over several lines.
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.keys().collect::<Vec<_>>(), ["x-kept"]);
        let mut headers = HeaderMap::new();
        headers.append(header::CONNECTION, HeaderValue::from_static("close"));
        headers.append(header::CONNECTION, HeaderValue::from_static("X-Secret"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.keys().collect::<Vec<_>>(), ["x-kept"]);
        // A token cannot drop the message's Host or framing.
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("host, Content-Length"),
        );
        headers.insert(header::HOST, HeaderValue::from_static("shop.example"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 2, "{headers:?}");
        assert!(headers.contains_key(header::HOST) && headers.contains_key(header::CONTENT_LENGTH));
    }

    #[test]
    fn only_safe_requests_are_retryable() {
        let mut headers = HeaderMap::new();
        assert!(is_retryable(&Method::GET, &headers));
        assert!(is_retryable(&Method::PUT, &headers));
        assert!(!is_retryable(&Method::POST, &headers));
        assert!(!is_retryable(&Method::PATCH, &headers));
        headers.insert("idempotency-key", HeaderValue::from_static("k"));
        assert!(is_retryable(&Method::POST, &headers));
    }

    #[test]
    fn request_context_is_created_when_absent_and_kept_when_present() {
        let mut headers = HeaderMap::new();
        let id = ensure_request_context(&mut headers);
        assert_eq!(id.len(), 36);
        let traceparent = headers
            .get(&TRACEPARENT)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(traceparent.len(), 55, "{traceparent}");
        let fields: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(
            fields.iter().map(|f| f.len()).collect::<Vec<_>>(),
            [2, 32, 16, 2]
        );
        assert_eq!((fields[0], fields[3]), ("00", "01"), "{traceparent}");
        for id in &fields[1..3] {
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            assert!(
                id.bytes().any(|b| b != b'0'),
                "all-zero id in {traceparent}"
            );
        }
        assert_ne!(new_traceparent(), new_traceparent(), "random ids");
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc"));
        headers.insert(
            &TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(ensure_request_context(&mut headers), "abc");
        assert_eq!(
            headers.get(&TRACEPARENT).unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }
}

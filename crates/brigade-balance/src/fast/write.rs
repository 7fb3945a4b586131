//! Heads written by the fast core: the request as a backend receives it and the response as the
//! client receives it, each copied field by field from the parsed head into one reused buffer,
//! and the balancer's own answers.
//!
//! The upstream request is what the hyper path sends, field for field: hop-by-hop fields (and
//! those `Connection` names) dropped, one `Content-Length` kept where
//! it was, `X-Request-Id` added when absent, `traceparent` added or replaced when the balancer
//! decided one (a new trace, a sampling decision, a span of its own), `X-Forwarded-For`
//! appended to,
//! `X-Forwarded-Proto` and `-Host` set unless a trusted proxy sent them, and
//! `transfer-encoding: chunked` last for a chunked body. The differences carry no meaning:
//! field lines the balancer keeps are copied as they arrived, runs of them at a time (name
//! case and spaces around the value as the sender wrote them; hyper lowercases and trims), and
//! repeated fields stay where they arrived instead of being grouped under the first (RFC 9110
//! §5.1, §5.3, §5.5).

use http::{HeaderValue, Response, StatusCode};

use super::codec::{self, is_hop_by_hop, named_by_connection};
use super::codec::{RequestFraming, RequestHead, ResponseFraming, ResponseHead};
use crate::upstream::ResponseBody;

/// What the balancer adds to one request.
#[derive(Debug)]
pub struct Added<'a> {
    /// A new `X-Request-Id`, when the client's is absent or unusable (it replaces the latter).
    pub request_id: Option<&'a [u8]>,
    /// The balancer's own `traceparent`, sent in place of the client's (or added when the
    /// client sent none); `None`: the client's, if any, goes on unchanged.
    pub traceparent: Option<&'a [u8]>,
    /// The peer's address, as text.
    pub peer: &'a [u8],
    /// `http` or `https`.
    pub scheme: &'a [u8],
    /// The peer is a trusted proxy: its `X-Forwarded-Proto`/`-Host` are kept.
    pub trusted: bool,
}

/// Appends a field the balancer writes itself (`name` in lowercase).
fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the request head a backend receives; where in `out` the value of the balancer's
/// own `traceparent` begins, when it wrote one (a traced request's attempts rewrite it there).
pub fn request_head(
    out: &mut Vec<u8>,
    head: &RequestHead<'_, '_>,
    added: &Added<'_>,
) -> Option<usize> {
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut seen = Seen::default();
    let host = head
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| h.value);
    let mut runs = Runs::new(head.bytes);
    for header in head.headers {
        let name = header.name;
        let plain = if is_hop_by_hop(name)
            || (head.connection_names && named_by_connection(head.headers, name))
        {
            false
        } else if name.eq_ignore_ascii_case("content-length") {
            !std::mem::replace(&mut seen.length, true)
        } else if name.eq_ignore_ascii_case("x-request-id") {
            added.request_id.is_none()
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            false
        } else if name.eq_ignore_ascii_case("x-forwarded-proto")
            || name.eq_ignore_ascii_case("x-forwarded-host")
        {
            added.trusted
        } else {
            added.traceparent.is_none() || !name.eq_ignore_ascii_case("traceparent")
        };
        if plain {
            runs.keep(name);
            seen.request_id |= name.eq_ignore_ascii_case("x-request-id");
            seen.proto |= name.eq_ignore_ascii_case("x-forwarded-proto");
            seen.host |= name.eq_ignore_ascii_case("x-forwarded-host");
            continue;
        }
        runs.flush(out, name);
        replace(out, head, header.name, added, host, &mut seen);
    }
    runs.finish(out);
    if let (false, Some(id)) = (seen.request_id, added.request_id) {
        field(out, "x-request-id", id);
    }
    let traceparent_at = added.traceparent.map(|traceparent| {
        field(out, "traceparent", traceparent);
        out.len() - traceparent.len() - 2
    });
    if !seen.forwarded_for {
        field(out, "x-forwarded-for", added.peer);
    }
    if !seen.proto {
        field(out, "x-forwarded-proto", added.scheme);
    }
    if let (false, Some(host)) = (seen.host, host) {
        field(out, "x-forwarded-host", host);
    }
    if head.framing == RequestFraming::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    traceparent_at
}

/// Writes what the balancer puts in place of a field it does not copy (nothing for
/// hop-by-hop fields and repeats): its own request id, the whole `X-Forwarded-For` list, its
/// own `X-Forwarded-Proto`/`-Host` when the peer is not trusted.
fn replace(
    out: &mut Vec<u8>,
    head: &RequestHead<'_, '_>,
    name: &str,
    added: &Added<'_>,
    host: Option<&[u8]>,
    seen: &mut Seen,
) {
    if name.eq_ignore_ascii_case("x-request-id") {
        if let Some(new) = added.request_id
            && !std::mem::replace(&mut seen.request_id, true)
        {
            field(out, "x-request-id", new);
        }
    } else if name.eq_ignore_ascii_case("x-forwarded-for") {
        if !std::mem::replace(&mut seen.forwarded_for, true) {
            forwarded_for(out, head, added.peer);
        }
    } else if name.eq_ignore_ascii_case("x-forwarded-proto") {
        if !std::mem::replace(&mut seen.proto, true) {
            field(out, "x-forwarded-proto", added.scheme);
        }
    } else if name.eq_ignore_ascii_case("x-forwarded-host")
        && !std::mem::replace(&mut seen.host, true)
        && let Some(host) = host
    {
        field(out, "x-forwarded-host", host);
    }
}

/// Copies runs of consecutive field lines from a head's bytes as they arrived: one copy per
/// run instead of one per field.
struct Runs<'b> {
    bytes: &'b [u8],
    start: Option<usize>,
}

impl<'b> Runs<'b> {
    fn new(bytes: &'b [u8]) -> Self {
        Self { bytes, start: None }
    }

    /// The line of field `name` is copied.
    fn keep(&mut self, name: &str) {
        if self.start.is_none() {
            self.start = Some(codec::offset(self.bytes, name.as_bytes()));
        }
    }

    /// Copies the run that ends where the line of `name` begins.
    fn flush(&mut self, out: &mut Vec<u8>, name: &str) {
        if let Some(start) = self.start.take() {
            let end = codec::offset(self.bytes, name.as_bytes());
            out.extend_from_slice(self.bytes.get(start..end).unwrap_or_default());
        }
    }

    /// Copies the run that ends with the last field line (before the empty line).
    fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(start) = self.start.take() {
            let end = self.bytes.len().saturating_sub(2);
            out.extend_from_slice(self.bytes.get(start..end).unwrap_or_default());
        }
    }
}

/// Fields already written once.
#[derive(Debug, Default)]
struct Seen {
    length: bool,
    request_id: bool,
    forwarded_for: bool,
    proto: bool,
    host: bool,
}

/// `X-Forwarded-For`: every value the client sent, in order, then the peer.
fn forwarded_for(out: &mut Vec<u8>, head: &RequestHead<'_, '_>, peer: &[u8]) {
    out.extend_from_slice(b"x-forwarded-for: ");
    for header in head.headers {
        if header.name.eq_ignore_ascii_case("x-forwarded-for") {
            out.extend_from_slice(header.value);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(peer);
    out.extend_from_slice(b"\r\n");
}

/// What the balancer adds to a response.
#[derive(Debug)]
pub struct ResponseExtras<'a> {
    /// The request's id, added when the backend sent no `X-Request-Id`.
    pub request_id: &'a [u8],
    /// Rate-limit fields (`RateLimit-Policy`, `RateLimit`), replacing the backend's.
    pub rate_limit: Option<(&'a HeaderValue, Option<&'a HeaderValue>)>,
    /// `connection: close` is added: the client connection ends after this answer.
    pub close: bool,
}

/// Appends the response head the client receives. A chunked or close-delimited body is sent
/// chunked (hyper's server does the same).
pub fn response_head(out: &mut Vec<u8>, head: &ResponseHead<'_, '_>, extras: &ResponseExtras<'_>) {
    status_line(out, head.status);
    let mut has_id = false;
    let mut has_date = false;
    let mut runs = Runs::new(head.bytes);
    for header in head.headers {
        let name = header.name;
        if is_hop_by_hop(name)
            || (head.connection_names && named_by_connection(head.headers, name))
            || (head.framing != ResponseFraming::Empty
                && !matches!(head.framing, ResponseFraming::Length(_))
                && name.eq_ignore_ascii_case("content-length"))
            || (extras.rate_limit.is_some()
                && (name.eq_ignore_ascii_case("ratelimit-policy")
                    || name.eq_ignore_ascii_case("ratelimit")))
        {
            runs.flush(out, name);
            continue;
        }
        has_id |= name.eq_ignore_ascii_case("x-request-id");
        has_date |= name.eq_ignore_ascii_case("date");
        runs.keep(name);
    }
    runs.finish(out);
    if !has_id {
        field(out, "x-request-id", extras.request_id);
    }
    if let Some((policy, limit)) = &extras.rate_limit {
        field(out, "ratelimit-policy", policy.as_bytes());
        if let Some(limit) = limit {
            field(out, "ratelimit", limit.as_bytes());
        }
    }
    if matches!(
        head.framing,
        ResponseFraming::Chunked | ResponseFraming::UntilClose
    ) {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if extras.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !has_date {
        date(out);
    }
    out.extend_from_slice(b"\r\n");
}

fn status_line(out: &mut Vec<u8>, status: u16) {
    if status == 200 {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(status).as_slice());
    out.push(b' ');
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A status code (100–999, as httparse guarantees) as three digits.
fn itoa3(n: u16) -> [u8; 3] {
    let n = n.min(999);
    [
        b'0' + (n / 100) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

/// Appends `date: …`, formatted at most once a second per thread.
fn date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with_borrow_mut(|(at, text)| {
        if *at != secs || text.is_empty() {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        field(out, "date", text.as_bytes());
    });
}

/// Appends one of the balancer's own answers (a small problem+json with its headers), with
/// `connection: close` when `close`.
pub fn own_answer(out: &mut Vec<u8>, response: &Response<ResponseBody>, close: bool) {
    status_line(out, response.status().as_u16());
    let body: &[u8] = match response.body() {
        ResponseBody::Full(Some(bytes)) => bytes,
        _ => &[],
    };
    let mut closing = close;
    for (name, value) in response.headers() {
        if name == http::header::CONNECTION {
            closing = true;
            continue;
        }
        field(out, name.as_str(), value.as_bytes());
    }
    out.extend_from_slice(b"content-length: ");
    let _ = std::io::Write::write_fmt(out, format_args!("{}\r\n", body.len()));
    if closing {
        out.extend_from_slice(b"connection: close\r\n");
    }
    date(out);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Whether an own answer asks to close the connection.
pub fn closes(response: &Response<ResponseBody>) -> bool {
    response.headers().contains_key(http::header::CONNECTION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::codec::{MAX_HEADERS, Parsed, parse_request};

    /// The upstream head of `request` with `traceparent` as the balancer's own, and where the
    /// head says that value begins.
    fn upstream(request: &str, traceparent: Option<&[u8]>) -> (String, Option<usize>) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Ok(Parsed::Complete(head)) = parse_request(request.as_bytes(), &mut headers, 16384)
        else {
            panic!("not a complete head: {request}");
        };
        let added = Added {
            request_id: None,
            traceparent,
            peer: b"10.0.0.1",
            scheme: b"http",
            trusted: false,
        };
        let mut out = Vec::new();
        let at = request_head(&mut out, &head, &added);
        (String::from_utf8(out).unwrap(), at)
    }

    const CLIENTS: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const OURS: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01";

    #[test]
    fn the_balancers_traceparent_replaces_the_clients_and_says_where_it_is() {
        let request = format!("GET / HTTP/1.1\r\nHost: shop\r\nTraceparent: {CLIENTS}\r\n\r\n");
        let (head, at) = upstream(&request, Some(OURS.as_bytes()));
        assert!(!head.contains(CLIENTS), "{head}");
        assert_eq!(head.matches("traceparent").count(), 1, "{head}");
        let at = at.expect("the offset of the balancer's own value");
        assert_eq!(&head[at..at + OURS.len()], OURS);
    }

    #[test]
    fn without_its_own_the_clients_traceparent_goes_on_as_it_arrived() {
        let request = format!("GET / HTTP/1.1\r\nHost: shop\r\nTraceparent: {CLIENTS}\r\n\r\n");
        let (head, at) = upstream(&request, None);
        assert!(
            head.contains(&format!("Traceparent: {CLIENTS}\r\n")),
            "{head}"
        );
        assert_eq!(at, None);
    }

    #[test]
    fn a_new_traceparent_is_added_when_the_client_sent_none() {
        let (head, at) = upstream(
            "GET / HTTP/1.1\r\nHost: shop\r\n\r\n",
            Some(OURS.as_bytes()),
        );
        let at = at.unwrap();
        assert_eq!(&head[at - "traceparent: ".len()..at], "traceparent: ");
        assert_eq!(&head[at..at + OURS.len()], OURS);
    }
}

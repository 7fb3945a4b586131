//! Request and response heads of the fast core: parsed by `httparse` into a header array on the
//! stack, borrowed from the connection's read buffer, and checked for every framing ambiguity a
//! request could smuggle through (RFC 9112 §6; at least as strict as hyper and nginx).
//!
//! What the fast core does not forward itself (upgrades, `Expect`, CONNECT, absolute-form and
//! `*` targets, HTTP/1.0) is marked [`RequestHead::hand_over`]: the connection continues on the
//! hyper path, which has the code for it.

use http::StatusCode;

/// Header fields one head may carry; the array lives on the stack (`limits.max_headers` is at
/// most this for the fast core; larger settings keep the hyper path).
pub const MAX_HEADERS: usize = 100;

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// `Content-Length: n` (possibly 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: no body.
    Empty,
}

/// Why a request head is refused. Each is the client's fault: 400, or 431 for size and count
/// limits and 501 for a transfer coding the balancer does not implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not HTTP/1.x as `httparse` reads it (bad token, control byte, obs-fold, space before
    /// the colon, NUL, …).
    #[error("the request head is malformed ({0})")]
    Malformed(&'static str),
    /// A line ended in LF without CR: parsers disagree on such lines.
    #[error("a line of the request head ends in a bare LF")]
    BareLf,
    /// The head is larger than `limits.max_header_bytes`.
    #[error("the request head is too large")]
    TooLarge,
    /// More header fields than `limits.max_headers`.
    #[error("the request has too many header fields")]
    TooManyHeaders,
    /// `Content-Length` that is not a plain decimal number.
    #[error("Content-Length is not a decimal number")]
    BadLength,
    /// Two `Content-Length` values that differ.
    #[error("the request has differing Content-Length values")]
    DifferingLength,
    /// `Content-Length` and `Transfer-Encoding` together (CL.TE / TE.CL smuggling).
    #[error("the request has both Content-Length and Transfer-Encoding")]
    LengthAndEncoding,
    /// `Transfer-Encoding` on HTTP/1.0, which has no chunked coding.
    #[error("Transfer-Encoding is not allowed on an HTTP/1.0 request")]
    EncodingOnHttp10,
    /// The last transfer coding is not `chunked`: the body's end cannot be known.
    #[error("the last transfer coding of the request is not chunked")]
    NotChunked,
    /// `chunked` more than once (RFC 9112 §7: a sender must not apply it twice).
    #[error("the request applies chunked more than once")]
    ChunkedTwice,
    /// A coding before `chunked` (e.g. `gzip, chunked`) that the balancer does not implement.
    #[error("a transfer coding of the request is not implemented")]
    UnknownCoding,
    /// Two `Host` fields (RFC 9112 §3.2).
    #[error("the request has more than one Host header")]
    DuplicateHost,
    /// HTTP/1.1 without `Host` (RFC 9112 §3.2).
    #[error("an HTTP/1.1 request needs a Host header")]
    MissingHost,
    /// `GET host:80` outside CONNECT (RFC 9112 §3.2.3).
    #[error("an authority-form request target (host:port) is only valid with CONNECT")]
    AuthorityForm,
}

impl RequestError {
    /// The status the client is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::TooLarge | Self::TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnknownCoding => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A checked request head, borrowed from the read buffer.
#[derive(Debug)]
pub struct RequestHead<'h, 'b> {
    /// The method.
    pub method: &'b str,
    /// The request target, as sent.
    pub target: &'b str,
    /// HTTP/1.0 rather than 1.1.
    pub http10: bool,
    /// The header fields, in the order they arrived.
    pub headers: &'h [httparse::Header<'b>],
    /// Bytes of the head, up to and including its empty line.
    pub len: usize,
    /// The head's bytes (`len` of them), which field lines are copied from.
    pub bytes: &'b [u8],
    /// How the body is framed.
    pub framing: RequestFraming,
    /// The client sent `Connection: close`.
    pub close: bool,
    /// `Connection` names further fields of this hop, which are not forwarded.
    pub connection_names: bool,
    /// Something only the hyper path serves (see the module documentation).
    pub hand_over: bool,
    /// A parsed head that cannot be forwarded (`Host`, target or size): refused after
    /// routing, so the answer is counted in its pool (framing errors are refused by the
    /// parser itself, as hyper's are).
    pub problem: Option<RequestError>,
}

/// Whether a head is complete.
#[derive(Debug)]
pub enum Parsed<T> {
    /// A whole, checked head.
    Complete(T),
    /// More bytes are needed.
    Partial,
}

/// Parses and checks the request head at the start of `buffer`.
pub fn parse_request<'h, 'b>(
    buffer: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
    max_head: usize,
) -> Result<Parsed<RequestHead<'h, 'b>>, RequestError> {
    let mut request = httparse::Request::new(headers);
    let len = match request.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buffer.len() > max_head => {
            return Err(RequestError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyHeaders),
        Err(error) => return Err(RequestError::Malformed(describe(error))),
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(RequestError::Malformed("incomplete request line"));
    };
    let bytes = &buffer[..len];
    // Empty lines the parser skipped before the request line, then every line's end.
    let start = offset(bytes, method.as_bytes());
    if !bytes[..start].chunks(2).all(|pair| pair == b"\r\n")
        || !lines_end_in_crlf(bytes, request.headers)
    {
        return Err(RequestError::BareLf);
    }
    let http10 = version == 0;
    let headers: &'h [httparse::Header<'b>] = request.headers;
    let fields = Fields::scan(headers)?;
    let framing = fields.framing(http10)?;
    let mut hand_over = fields.upgrade || http10 || method == "CONNECT";
    let mut problem = None;
    if !target.starts_with('/') {
        if target == "*" || target.contains("://") {
            hand_over = true;
        } else if !hand_over {
            problem = Some(RequestError::AuthorityForm);
        }
    }
    if fields.hosts > 1 {
        problem = Some(RequestError::DuplicateHost);
    } else if fields.hosts == 0 && !hand_over {
        problem = Some(RequestError::MissingHost);
    }
    if len > max_head {
        problem = Some(RequestError::TooLarge);
    }
    Ok(Parsed::Complete(RequestHead {
        bytes,
        problem,
        method,
        target,
        http10,
        headers,
        len,
        framing,
        close: fields.close,
        connection_names: fields.connection_names,
        hand_over,
    }))
}

/// What `httparse` found wrong.
fn describe(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many header fields",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// Where `part` (a slice the parser returned) starts in `bytes`.
pub fn offset(bytes: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize)
        .saturating_sub(bytes.as_ptr() as usize)
        .min(bytes.len())
}

/// Every line of a parsed head ends in CRLF: the parser accepts a bare LF as a line end, and
/// it can occur nowhere else (field values refuse control bytes), so checking the two bytes
/// before each field line and the head's last four is enough.
fn lines_end_in_crlf(bytes: &[u8], headers: &[httparse::Header<'_>]) -> bool {
    bytes.ends_with(b"\r\n\r\n")
        && headers.iter().all(|header| {
            let at = offset(bytes, header.name.as_bytes());
            at >= 2 && &bytes[at - 2..at] == b"\r\n"
        })
}

/// What the header fields of a request say about framing and the connection.
#[derive(Debug, Default)]
struct Fields {
    length: Option<u64>,
    encoded: bool,
    chunked_last: bool,
    other_coding: bool,
    hosts: usize,
    close: bool,
    connection_names: bool,
    upgrade: bool,
}

impl Fields {
    fn scan(headers: &[httparse::Header<'_>]) -> Result<Self, RequestError> {
        let mut fields = Self::default();
        for header in headers {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                let length = parse_length(header.value).ok_or(RequestError::BadLength)?;
                if fields.length.is_some_and(|previous| previous != length) {
                    return Err(RequestError::DifferingLength);
                }
                fields.length = Some(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                fields.encoded = true;
                for coding in list(header.value) {
                    if fields.chunked_last {
                        return Err(if coding.eq_ignore_ascii_case(b"chunked") {
                            RequestError::ChunkedTwice
                        } else {
                            RequestError::NotChunked
                        });
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        fields.chunked_last = true;
                    } else {
                        fields.other_coding = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("host") {
                fields.hosts += 1;
            } else if name.eq_ignore_ascii_case("connection") {
                for token in list(header.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        fields.close = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        fields.upgrade = true;
                    } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                        fields.connection_names = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("upgrade") || name.eq_ignore_ascii_case("expect") {
                fields.upgrade = true;
            }
        }
        Ok(fields)
    }

    fn framing(&self, http10: bool) -> Result<RequestFraming, RequestError> {
        if !self.encoded {
            return Ok(self
                .length
                .map_or(RequestFraming::Empty, RequestFraming::Length));
        }
        if http10 {
            return Err(RequestError::EncodingOnHttp10);
        }
        if !self.chunked_last {
            return Err(RequestError::NotChunked);
        }
        if self.length.is_some() {
            return Err(RequestError::LengthAndEncoding);
        }
        if self.other_coding {
            return Err(RequestError::UnknownCoding);
        }
        Ok(RequestFraming::Chunked)
    }
}

/// The elements of a comma-separated field value, trimmed of spaces and tabs; empty elements
/// (`a, , b`) are skipped as RFC 9110 §5.6.1 asks of recipients.
pub fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

/// A `Content-Length` value: decimal digits only (no sign, no list, no spaces inside), at most
/// 19 of them so it cannot overflow.
pub fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        value
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

/// How a response body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: a HEAD request, 204, 304.
    Empty,
    /// `Content-Length: n`.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Read until the backend closes.
    UntilClose,
}

/// Why a backend's response head cannot be used (the attempt fails as a broken connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Not an HTTP/1.x response head.
    #[error("the response head is malformed ({0})")]
    Malformed(&'static str),
    /// Larger than the read buffer allows.
    #[error("the response head is too large")]
    TooLarge,
    /// Unusable `Content-Length`.
    #[error("the response has an invalid Content-Length")]
    BadLength,
    /// 101 without an upgrade having been asked for.
    #[error("the backend switched protocols unasked")]
    UnaskedUpgrade,
}

/// A backend's response head, borrowed from the upstream read buffer.
#[derive(Debug)]
pub struct ResponseHead<'h, 'b> {
    /// The status code.
    pub status: u16,
    /// The header fields, in the order they arrived.
    pub headers: &'h [httparse::Header<'b>],
    /// Bytes of the head.
    pub len: usize,
    /// The head's bytes, which field lines are copied from.
    pub bytes: &'b [u8],
    /// How the body is framed.
    pub framing: ResponseFraming,
    /// The connection may carry another request once the body has been read.
    pub reusable: bool,
    /// `Connection` names further fields of this hop, which are not forwarded.
    pub connection_names: bool,
}

/// Parses a response head (1xx interim heads other than 101 come back as such; the caller
/// skips them). `head_request`: the request was HEAD, so there is no body whatever the fields.
pub fn parse_response<'h, 'b>(
    buffer: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
    head_request: bool,
    max_head: usize,
) -> Result<Parsed<ResponseHead<'h, 'b>>, ResponseError> {
    let mut response = httparse::Response::new(headers);
    let len = match response.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buffer.len() > max_head => {
            return Err(ResponseError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(error) => return Err(ResponseError::Malformed(describe(error))),
    };
    let (Some(status), Some(version)) = (response.code, response.version) else {
        return Err(ResponseError::Malformed("incomplete status line"));
    };
    let bytes = &buffer[..len];
    if !lines_end_in_crlf(bytes, response.headers) {
        return Err(ResponseError::Malformed("a line ends in a bare LF"));
    }
    if status == 101 {
        return Err(ResponseError::UnaskedUpgrade);
    }
    let headers: &'h [httparse::Header<'b>] = response.headers;
    let fields = framing_fields(headers)?;
    let mut reusable = version == 1 && !fields.close;
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        ResponseFraming::Empty
    } else if fields.encoded {
        // Both length and coding: the coding frames it and the connection is not trusted
        // with another request (RFC 9112 §6.3).
        reusable &= fields.length.is_none();
        if fields.chunked {
            ResponseFraming::Chunked
        } else {
            ResponseFraming::UntilClose
        }
    } else {
        fields
            .length
            .map_or(ResponseFraming::UntilClose, ResponseFraming::Length)
    };
    if framing == ResponseFraming::UntilClose {
        reusable = false;
    }
    Ok(Parsed::Complete(ResponseHead {
        bytes,
        status,
        headers,
        len,
        framing,
        reusable,
        connection_names: fields.connection_names,
    }))
}

/// What a response's fields say about how its body is framed and whether its connection
/// stays open, before the status and the request's method have their say.
#[derive(Debug, Default)]
struct FramingFields {
    /// `Content-Length`, every copy of it agreeing.
    length: Option<u64>,
    /// `Transfer-Encoding` is present.
    encoded: bool,
    /// The last `Transfer-Encoding` field's last coding is chunked.
    chunked: bool,
    /// `Connection: close`.
    close: bool,
    /// `Connection` names further fields of this hop.
    connection_names: bool,
}

/// Reads the framing fields of a response head; a `Content-Length` that is not a plain
/// number, or copies that disagree, make the response unusable.
fn framing_fields(headers: &[httparse::Header<'_>]) -> Result<FramingFields, ResponseError> {
    let mut fields = FramingFields::default();
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = parse_length(header.value).ok_or(ResponseError::BadLength)?;
            if fields.length.is_some_and(|previous| previous != value) {
                return Err(ResponseError::BadLength);
            }
            fields.length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            fields.encoded = true;
            fields.chunked = list(header.value)
                .last()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in list(header.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    fields.close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                    fields.connection_names = true;
                }
            }
        }
    }
    Ok(fields)
}

/// Hop-by-hop fields (RFC 9110 §7.6.1), never forwarded by the fast core. Sorted out by
/// length first: this runs for every field of every message.
pub fn is_hop_by_hop(name: &str) -> bool {
    let candidates: &[&str] = match name.len() {
        2 => &["te"],
        7 => &["trailer", "upgrade"],
        10 => &["connection", "keep-alive"],
        16 => &["proxy-connection"],
        17 => &["transfer-encoding"],
        19 => &["proxy-authorization"],
        _ => return false,
    };
    candidates.iter().any(|hop| hop.eq_ignore_ascii_case(name))
}

/// Whether a `Connection` token may make `name` a field of this hop only. `Host` and
/// `Content-Length` may not: dropping them would change where the next hop routes the message
/// or where its body ends, so a client could smuggle one request's end into another's start
/// (or strip `Host`) with a single token. They are forwarded whatever `Connection` says, on
/// both the fast and the hyper path.
pub fn connection_may_name(name: &str) -> bool {
    !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length")
}

/// Whether a `Connection` field among `headers` names `name`, and may (see
/// [`connection_may_name`]).
pub fn named_by_connection(headers: &[httparse::Header<'_>], name: &str) -> bool {
    connection_may_name(name)
        && headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| list(h.value))
            .any(|token| token.eq_ignore_ascii_case(name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Result<Parsed<(RequestFraming, bool, bool)>, RequestError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_request(text.as_bytes(), &mut headers, 16384)? {
            Parsed::Complete(head) => match head.problem {
                Some(problem) => Err(problem),
                None => Ok(Parsed::Complete((head.framing, head.hand_over, head.close))),
            },
            Parsed::Partial => Ok(Parsed::Partial),
        }
    }

    fn refused(text: &str) -> RequestError {
        request(text).expect_err(text)
    }

    fn framing(text: &str) -> RequestFraming {
        match request(text) {
            Ok(Parsed::Complete((framing, false, _))) => framing,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn plain_requests_are_framed_by_length_chunked_or_nothing() {
        assert_eq!(
            framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            RequestFraming::Empty
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n"),
            RequestFraming::Length(12)
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n"),
            RequestFraming::Length(3)
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  CHUNKED \r\n\r\n"),
            RequestFraming::Chunked
        );
        assert!(matches!(
            request("GET / HTTP/1.1\r\nHost: a\r\n"),
            Ok(Parsed::Partial)
        ));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        use RequestError::*;
        let h = "POST / HTTP/1.1\r\nHost: a\r\n";
        let cases: &[(&str, RequestError)] = &[
            (
                "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
                LengthAndEncoding,
            ),
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n",
                LengthAndEncoding,
            ),
            (
                "Content-Length: 1\r\nContent-Length: 2\r\n",
                DifferingLength,
            ),
            ("Content-Length: 1, 1\r\n", BadLength),
            ("Content-Length: +1\r\n", BadLength),
            ("Content-Length: \r\n", BadLength),
            ("Content-Length: 99999999999999999999\r\n", BadLength),
            ("Transfer-Encoding: xchunked\r\n", NotChunked),
            ("Transfer-Encoding: chunked, identity\r\n", NotChunked),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                ChunkedTwice,
            ),
            ("Transfer-Encoding: gzip, chunked\r\n", UnknownCoding),
            ("Host: b\r\n", DuplicateHost),
        ];
        for (fields, error) in cases {
            assert_eq!(refused(&format!("{h}{fields}\r\n")), *error, "{fields}");
        }
        assert_eq!(
            refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            EncodingOnHttp10
        );
        assert_eq!(refused("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), BareLf);
        assert_eq!(refused("GET / HTTP/1.1\nHost: a\n\n"), BareLf);
        assert_eq!(refused("GET / HTTP/1.1\r\n\r\n"), MissingHost);
        assert_eq!(
            refused("GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n"),
            AuthorityForm
        );
        for malformed in [
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n",
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert!(matches!(refused(malformed), Malformed(_)), "{malformed:?}");
        }
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(refused(&format!("{h}{many}\r\n")), TooManyHeaders);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let big = format!("{h}X: {}\r\n", "v".repeat(100));
        assert_eq!(
            parse_request(big.as_bytes(), &mut headers, 64).unwrap_err(),
            TooLarge
        );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let whole = format!("{big}\r\n");
        match parse_request(whole.as_bytes(), &mut headers, 64) {
            Ok(Parsed::Complete(head)) => assert_eq!(head.problem, Some(TooLarge)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_only_the_hyper_path_serves_is_handed_over() {
        for text in [
            "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert!(
                matches!(request(text), Ok(Parsed::Complete((_, true, _)))),
                "{text}"
            );
        }
    }

    fn response(text: &str, head: bool) -> (ResponseFraming, bool) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_response(text.as_bytes(), &mut headers, head, 65536) {
            Ok(Parsed::Complete(r)) => (r.framing, r.reusable),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn responses_are_framed_as_rfc_9112_says() {
        use ResponseFraming::*;
        assert_eq!(
            response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", false),
            (Length(2), true)
        );
        assert_eq!(
            response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", true),
            (Empty, true)
        );
        assert_eq!(
            response("HTTP/1.1 204 No Content\r\n\r\n", false),
            (Empty, true)
        );
        assert_eq!(
            response(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            (Chunked, true)
        );
        assert_eq!(
            response(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                false
            ),
            (Chunked, false)
        );
        assert_eq!(
            response("HTTP/1.1 200 OK\r\n\r\n", false),
            (UntilClose, false)
        );
        assert_eq!(
            response(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false
            ),
            (Length(0), false)
        );
        assert_eq!(
            response("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            (Length(0), false)
        );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert_eq!(
            parse_response(b"HTTP/1.1 101 Switching\r\n\r\n", &mut headers, false, 100)
                .unwrap_err(),
            ResponseError::UnaskedUpgrade
        );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert_eq!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                &mut headers,
                false,
                100
            )
            .unwrap_err(),
            ResponseError::BadLength
        );
    }
}

//! The balancer's own answers: RFC 9457 problem documents carrying the request id.
//!
//! These are the only bodies the balancer writes itself; everything else is a backend's. Each
//! kind has one constructor so the status, `type` and headers stay consistent.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};

use brigade_core::problem::{PROBLEM_JSON, Problem};
use brigade_core::request::X_REQUEST_ID;

use crate::rate_limit::{Limited, Rule};
use crate::upstream::ResponseBody;

/// Seconds a client is told to wait after a 503 (`Retry-After`).
pub const RETRY_AFTER_SECS: &str = "1";

/// A problem+json response with `instance` set to the request id.
pub fn problem(
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: &str,
    request_id: Option<&HeaderValue>,
) -> Response<ResponseBody> {
    let mut problem = Problem::new(status, slug, title).with_detail(detail);
    problem.instance = request_id
        .and_then(|v| v.to_str().ok())
        .map(|id| format!("urn:brigade:request:{id}"));
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = Response::new(ResponseBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(id) = request_id {
        headers.insert(X_REQUEST_ID.clone(), id.clone());
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    response
}

/// 503: no usable backend in the pool.
pub fn no_backend(pool: &str, request_id: Option<&HeaderValue>) -> Response<ResponseBody> {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "no-healthy-backend",
        "No healthy backend",
        &format!("pool {pool} has no backend that can take the request; retry shortly"),
        request_id,
    )
}

/// 408: the client did not send the whole body in time.
pub fn request_timeout(limit_ms: u64, request_id: Option<&HeaderValue>) -> Response<ResponseBody> {
    let mut response = problem(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        "Request body too slow",
        &format!("the request body did not arrive within {limit_ms} ms"),
        request_id,
    );
    // The rest of the body may still be on its way: this connection cannot carry another request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// 502: every attempt failed to reach a backend or lost the connection.
pub fn bad_gateway(detail: &str, request_id: Option<&HeaderValue>) -> Response<ResponseBody> {
    problem(
        StatusCode::BAD_GATEWAY,
        "bad-gateway",
        "The upstream service could not be reached",
        detail,
        request_id,
    )
}

/// 504: the backend did not answer within `timeouts.upstream_response_ms`.
pub fn gateway_timeout(request_id: Option<&HeaderValue>) -> Response<ResponseBody> {
    problem(
        StatusCode::GATEWAY_TIMEOUT,
        "gateway-timeout",
        "The upstream service did not answer in time",
        "no response head arrived within the upstream timeout",
        request_id,
    )
}

/// 400: the request cannot be forwarded as it is.
pub fn bad_request(detail: &str, request_id: Option<&HeaderValue>) -> Response<ResponseBody> {
    problem(
        StatusCode::BAD_REQUEST,
        "bad-request",
        "The request is malformed",
        detail,
        request_id,
    )
}

/// 400: the client's request body was malformed (e.g. a chunk size that is not hex) or cut off.
/// The connection's framing is lost, so it closes after this answer.
pub fn bad_body(request_id: Option<&HeaderValue>) -> Response<ResponseBody> {
    let mut response = bad_request(
        "the request body is malformed or ended early (e.g. an invalid chunk size)",
        request_id,
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// 431: the request head is larger than `limits.max_header_bytes`.
pub fn headers_too_large(limit: usize, request_id: Option<&HeaderValue>) -> Response<ResponseBody> {
    problem(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers-too-large",
        "Request header fields too large",
        &format!("the request head may have at most {limit} bytes"),
        request_id,
    )
}

/// 413: the body is larger than `limits.max_body_bytes`.
pub fn body_too_large(limit: u64, request_id: Option<&HeaderValue>) -> Response<ResponseBody> {
    problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Request body too large",
        &format!("the request body may have at most {limit} bytes"),
        request_id,
    )
}

/// 429: the client is over rule `rule`'s limit. `Retry-After` says when the next request would
/// pass; `RateLimit-Policy` and `RateLimit` follow draft-ietf-httpapi-ratelimit-headers-11
/// (§3 and §4: `"name";q=…;w=…` and `"name";r=0;t=…`).
pub fn too_many_requests(
    rule: &Rule,
    limited: &Limited,
    request_id: Option<&HeaderValue>,
) -> Response<ResponseBody> {
    let seconds = limited.retry_after_secs;
    let mut response = problem(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
        &format!(
            "rate limit {} allows {} requests per {} s from one client; retry in {seconds} s",
            rule.config.name, rule.config.requests, rule.config.per_seconds
        ),
        request_id,
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    headers.insert(RATELIMIT_POLICY.clone(), rule.policy.clone());
    if let Ok(value) = rate_limit_value(rule, 0, seconds) {
        headers.insert(RATELIMIT.clone(), value);
    }
    response
}

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-11 §3).
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11 §4).
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A `RateLimit` value: `"name";r=REMAINING;t=SECONDS`.
pub fn rate_limit_value(
    rule: &Rule,
    remaining: u64,
    reset_secs: u64,
) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    HeaderValue::from_str(&format!(
        "\"{}\";r={remaining};t={reset_secs}",
        rule.config.name
    ))
}

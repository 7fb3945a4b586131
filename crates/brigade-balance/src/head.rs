//! The client's request head, checked and normalised before routing: what a backend receives
//! must mean one thing only.
//!
//! The HTTP parser already refuses most ambiguous framing (differing `Content-Length` values, a
//! `Transfer-Encoding` whose last coding is not `chunked`, obs-fold, NUL and other control
//! bytes in fields) and, when both `Content-Length` and `Transfer-Encoding: chunked` arrive,
//! frames the body by the chunked coding alone, drops the length and closes the connection
//! after the answer (RFC 9112 §6.1). The balancer re-frames every body it forwards (the
//! hop-by-hop `Transfer-Encoding` is removed and set again by the upstream connection). What
//! remains for this module is the request target and `Host`.

use http::header;
use http::request::Parts;
use http::{Method, Uri, Version};

/// Why a request head cannot be forwarded; each is the client's fault (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The balancer does not tunnel.
    #[error("CONNECT is not supported by this proxy")]
    Connect,
    /// HTTP/1.1 requires `Host` (RFC 9112 §3.2).
    #[error("an HTTP/1.1 request needs a Host header")]
    MissingHost,
    /// Two `Host` fields: a backend and the balancer could each pick a different one
    /// (RFC 9112 §3.2: a server MUST answer 400).
    #[error("the request has more than one Host header")]
    DuplicateHost,
    /// `GET example.com:80 HTTP/1.1`: the authority form belongs to CONNECT only (RFC 9112
    /// §3.2.3).
    #[error("an authority-form request target (host:port) is only valid with CONNECT")]
    AuthorityForm,
    /// An absolute-form target whose path cannot be forwarded.
    #[error("the request target is not valid")]
    BadTarget,
}

/// Checks the head and rewrites an absolute-form target (`GET http://host/path`) to origin form,
/// with `Host` replaced by the target's authority as RFC 9112 §3.2.2 requires of a proxy.
pub fn normalize(parts: &mut Parts) -> Result<(), HeadError> {
    if parts.method == Method::CONNECT {
        return Err(HeadError::Connect);
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let has_host = hosts.next().is_some();
    if hosts.next().is_some() {
        return Err(HeadError::DuplicateHost);
    }
    if parts.uri.scheme().is_none() && parts.uri.authority().is_some() {
        return Err(HeadError::AuthorityForm);
    }
    if let Some(authority) = parts.uri.authority() {
        let host =
            http::HeaderValue::from_str(authority.as_str()).map_err(|_| HeadError::BadTarget)?;
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = Uri::try_from(path).map_err(|_| HeadError::BadTarget)?;
        parts.headers.insert(header::HOST, host);
        return Ok(());
    }
    if parts.version == Version::HTTP_11 && !has_host {
        return Err(HeadError::MissingHost);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, target: &str, hosts: &[&str]) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(target);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn absolute_form_is_forwarded_in_origin_form_with_its_host() {
        let mut head = parts("GET", "http://shop.example:8080/a/b?c=1", &["other"]);
        assert_eq!(normalize(&mut head), Ok(()));
        assert_eq!(head.uri, "/a/b?c=1");
        assert_eq!(head.headers[header::HOST], "shop.example:8080");
        let mut head = parts("GET", "http://shop.example", &[]);
        assert_eq!(normalize(&mut head), Ok(()));
        assert_eq!(head.uri, "/");
    }

    #[test]
    fn ambiguous_heads_are_refused() {
        assert_eq!(
            normalize(&mut parts("GET", "/", &["a", "b"])),
            Err(HeadError::DuplicateHost)
        );
        assert_eq!(
            normalize(&mut parts("GET", "shop.example:80", &["a"])),
            Err(HeadError::AuthorityForm)
        );
        assert_eq!(
            normalize(&mut parts("CONNECT", "shop.example:443", &["a"])),
            Err(HeadError::Connect)
        );
        assert_eq!(
            normalize(&mut parts("GET", "/", &[])),
            Err(HeadError::MissingHost)
        );
        assert_eq!(normalize(&mut parts("GET", "/", &["a"])), Ok(()));
    }
}

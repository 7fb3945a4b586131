//! What routing, rate limiting and consistent hashing read of a request, whichever HTTP core
//! parsed it: hyper's `request::Parts`, or the fast core's `httparse` head borrowed straight
//! from the connection's read buffer (no `HeaderMap` is built for it).

use http::request::Parts;

/// A parsed request head, read-only.
pub trait RequestView {
    /// The method, as sent (e.g. `GET`).
    fn method(&self) -> &str;
    /// The path of the target, without the query.
    fn path(&self) -> &str;
    /// The host of an absolute-form target, if any.
    fn target_host(&self) -> Option<&str>;
    /// Every value of header `name` (lowercase), in the order they arrived.
    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;

    /// The first value of header `name` (lowercase).
    fn header<'a>(&'a self, name: &'a str) -> Option<&'a [u8]> {
        self.header_values(name).next()
    }

    /// The host the client asked for: `Host`, else the target's, without a port.
    fn host(&self) -> Option<&str> {
        self.header("host")
            .filter(|v| v.iter().all(|b| b.is_ascii_graphic()))
            .and_then(|v| std::str::from_utf8(v).ok())
            .or_else(|| self.target_host())
            .map(strip_port)
    }
}

/// `host` without its port (`[::1]:80` → `::1`).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().map_or(host, |h| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

impl RequestView for Parts {
    fn method(&self) -> &str {
        self.method.as_str()
    }

    fn path(&self) -> &str {
        self.uri.path()
    }

    fn target_host(&self) -> Option<&str> {
        self.uri.host()
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .get_all(name)
            .into_iter()
            .map(http::HeaderValue::as_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_comes_from_the_header_then_the_target_without_port() {
        let parts = |target: &str, host: Option<&str>| {
            let mut builder = http::Request::builder().uri(target);
            if let Some(host) = host {
                builder = builder.header("host", host);
            }
            builder.body(()).unwrap().into_parts().0
        };
        assert_eq!(parts("/", Some("shop:8080")).host(), Some("shop"));
        assert_eq!(parts("/", Some("[::1]:80")).host(), Some("::1"));
        assert_eq!(parts("http://menu/x", None).host(), Some("menu"));
        assert_eq!(parts("/", None).host(), None);
    }
}

//! The optional plain-HTTP listener of a TLS balancer (`tls.redirect_listen`): every request is
//! answered `308 Permanent Redirect` to the same host and path on https, so old links and typed
//! addresses land on the encrypted listener. Nothing is forwarded from here.

use std::convert::Infallible;

use brigade_core::shutdown::Shutdown;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::upstream::ResponseBody;

/// Answers redirects to `https://HOST[:https_port]/…` until shutdown.
pub async fn serve(listener: TcpListener, https_port: u16, shutdown: Shutdown) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "redirect listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = shutdown.wait() => return,
        };
        tokio::spawn(async move {
            let service = service_fn(move |request| async move {
                Ok::<_, Infallible>(redirect(&request, https_port))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The redirect for one request; 400 without a usable `Host`.
fn redirect(request: &Request<Incoming>, https_port: u16) -> Response<ResponseBody> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_without_port)
        .filter(|h| !h.is_empty());
    let Some(host) = host else {
        return crate::answer::bad_request("a Host header is needed to redirect to https", None);
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut response = Response::new(ResponseBody::full(Bytes::new()));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    match HeaderValue::from_str(&format!("https://{host}{port}{path}")) {
        Ok(location) => {
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => crate::answer::bad_request("the Host header cannot be redirected", None),
    }
}

/// `shop.example:80` → `shop.example`; `[::1]:80` → `[::1]`.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::host_without_port;

    #[test]
    fn ports_are_dropped_from_hosts() {
        assert_eq!(host_without_port("shop.example:80"), "shop.example");
        assert_eq!(host_without_port("shop.example"), "shop.example");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
    }
}

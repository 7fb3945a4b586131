//! The client's address, as the rate limits see it.
//!
//! `X-Forwarded-For` is believed only from a peer inside `server.trusted_proxies`, and then
//! walked from the right: each trusted hop is skipped and the first untrusted address is the
//! client (the balancer applies the same rule). Anything a client wrote further left is never
//! read, so a client cannot choose its own address; and with no trusted proxies configured
//! (the default) the peer is the client, however the request arrived.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The client's address (an extractor: see `crate::extract`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The client behind `peer` by the trusted-proxy rule.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>();
    for hop in hops.iter().rev().flat_map(|value| value.rsplit(',')) {
        let Ok(address) = hop.trim().parse::<IpAddr>() else {
            // Garbage where an address should be: stop at the last address known good.
            return client;
        };
        client = address;
        if !is_trusted(&address) {
            return client;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let forged = headers(&["203.0.113.5"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &forged, &[]),
            ip("127.0.0.1")
        );
        assert_eq!(client_address(ip("10.0.0.2"), &forged, &[]), ip("10.0.0.2"));
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let chain = headers(&["198.51.100.1, 203.0.113.5", "10.1.1.1"]);
        // 10.1.1.1 is a trusted hop; 203.0.113.5 is the first untrusted one; the client's own
        // claim (198.51.100.1) is never read.
        assert_eq!(
            client_address(ip("10.0.0.2"), &chain, &trusted),
            ip("203.0.113.5")
        );
        // From an untrusted peer the header means nothing.
        assert_eq!(
            client_address(ip("192.0.2.9"), &chain, &trusted),
            ip("192.0.2.9")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        // Garbage stops the walk at the last good address.
        let garbage = headers(&["nonsense, 10.2.2.2"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &garbage, &trusted),
            ip("10.2.2.2")
        );
    }
}

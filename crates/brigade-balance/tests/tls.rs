//! TLS on the public listener over loopback with a real TLS client: answers with HSTS and
//! `X-Forwarded-Proto: https`, a certificate reload that new handshakes see while an open
//! keep-alive connection keeps working, TLS 1.1 refused, and the plain-HTTP redirect listener.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use support::{Balancer, Upstream, backends_toml};

/// A client that trusts only the certificate in `dir/cert.pem` and reaches `localhost` at the
/// balancer.
fn client_trusting(dir: &Path, public: SocketAddr) -> reqwest::Client {
    let pem = std::fs::read(dir.join("cert.pem")).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .resolve("localhost", public)
        .pool_max_idle_per_host(1)
        .build()
        .unwrap()
}

fn url(public: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", public.port())
}

async fn tls_balancer(dir: &Path, upstream: &Upstream, extra: &str) -> Balancer {
    Balancer::from_toml(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n{extra}\n[[pools]]\nname = \"tls\"\n{}",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display(),
        backends_toml(&[upstream])
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_gets_answers_with_hsts_and_forwarded_proto_https() {
    let dir = tempfile::tempdir().unwrap();
    brigade_balance::tls::self_signed(dir.path(), &["localhost".into()]).unwrap();
    let up = Upstream::start("secure").await;
    let balancer = tls_balancer(dir.path(), &up, "").await;
    let client = client_trusting(dir.path(), balancer.public);
    let response = client.get(url(balancer.public, "/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert_eq!(response.text().await.unwrap(), "secure");
    let seen = up.last_headers.lock().unwrap().clone();
    assert_eq!(seen["x-forwarded-proto"], "https");

    // Plain HTTP on the TLS port gets no answer from a backend.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/", balancer.public))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    assert_eq!(up.hits(), 1);
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_certificate_is_served_while_an_open_connection_keeps_working() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let live = tempfile::tempdir().unwrap();
    brigade_balance::tls::self_signed(first.path(), &["localhost".into()]).unwrap();
    brigade_balance::tls::self_signed(second.path(), &["localhost".into()]).unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(first.path().join(file), live.path().join(file)).unwrap();
    }
    let up = Upstream::start("reload").await;
    let balancer = tls_balancer(live.path(), &up, "").await;
    let old_client = client_trusting(first.path(), balancer.public);
    let new_client = client_trusting(second.path(), balancer.public);
    assert_eq!(
        old_client
            .get(url(balancer.public, "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        new_client
            .get(url(balancer.public, "/"))
            .send()
            .await
            .is_err()
    );

    // A bad pair is refused and the running certificate stays.
    std::fs::copy(second.path().join("cert.pem"), live.path().join("cert.pem")).unwrap();
    let refused = balancer.admin_post("/admin/tls/reload").await;
    assert_eq!(refused.status(), 422);
    std::fs::copy(second.path().join("key.pem"), live.path().join("key.pem")).unwrap();
    let reloaded = balancer.admin_post("/admin/tls/reload").await;
    assert_eq!(reloaded.status(), 200);

    // New handshakes get the new certificate ...
    assert_eq!(
        new_client
            .get(url(balancer.public, "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // ... while the connection opened before the reload still carries requests: the old
    // client trusts only the old certificate, so any new connection of its would fail.
    for _ in 0..3 {
        let response = old_client
            .get(url(balancer.public, "/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let fresh_old = client_trusting(first.path(), balancer.public);
    assert!(
        fresh_old
            .get(url(balancer.public, "/"))
            .send()
            .await
            .is_err()
    );
    balancer.stop().await;
}

/// A TLS 1.1 ClientHello (legacy version 3.2, no supported_versions extension).
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x13]); // ECDHE-ECDSA-AES128-GCM, ECDHE-RSA-AES128-CBC
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    // Extensions: signature_algorithms (ecdsa_secp256r1_sha256) and supported_groups (x25519,
    // secp256r1), so nothing but the version stands in the way.
    body.extend_from_slice(&[0x00, 0x12]);
    body.extend_from_slice(&[0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]);
    body.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(body.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_1_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    brigade_balance::tls::self_signed(dir.path(), &["localhost".into()]).unwrap();
    let up = Upstream::start("old").await;
    let balancer = tls_balancer(dir.path(), &up, "").await;
    let address = balancer.public;
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(&tls11_client_hello()).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        answer
    })
    .await
    .unwrap();
    // A fatal alert record (21), `protocol_version` (70), and nothing else: no ServerHello.
    assert_eq!(answer.first(), Some(&21), "{answer:?}");
    assert_eq!(answer.get(5..7), Some(&[2u8, 70][..]), "{answer:?}");
    assert_eq!(answer.len(), 7, "{answer:?}");
    assert_eq!(up.hits(), 0);
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redirect_listener_sends_plain_http_to_https() {
    let dir = tempfile::tempdir().unwrap();
    brigade_balance::tls::self_signed(dir.path(), &["localhost".into()]).unwrap();
    let up = Upstream::start("redirected").await;
    let balancer = tls_balancer(dir.path(), &up, "redirect_listen = \"127.0.0.1:0\"").await;
    let redirect = balancer.running.as_ref().unwrap().redirect.unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{redirect}/api/v1/shops?city=berlin"))
        .header("host", "shop.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!(
            "https://shop.example:{}/api/v1/shops?city=berlin",
            balancer.public.port()
        )
        .as_str()
    );
    assert_eq!(up.hits(), 0);
    balancer.stop().await;
}

//! `brigade balance` as a child process in front of real `brigade serve` replicas: a keyed POST
//! whose first backend dies is retried and creates exactly one order; SIGTERM finishes the
//! request in flight and exits 0; SIGHUP reloads the file; bad configuration exits non-zero
//! naming the key.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{BRIGADE, DEMO_PASSWORD, Logged, Served, Stdout};

/// How long a process has to say what a test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// A child `brigade` with `args`, whose JSON log lines arrive on a channel.
fn start(args: &[&str]) -> Logged {
    let mut command = common::brigade_json(args);
    command.env("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD);
    Logged::spawn(command, Stdout::SkipOther)
}

/// `brigade serve` on a free port; returns the process and its address.
fn replica(data_dir: &Path, extra: &[&str]) -> (Logged, String) {
    let served = Served::replica(data_dir, extra, &[]);
    (served.process, served.address)
}

/// `brigade balance` with these arguments; returns the process, public and admin addresses.
fn balance(args: &[&str]) -> (Logged, String, String) {
    let mut all = vec!["balance"];
    all.extend_from_slice(args);
    let process = start(&all);
    let line = process.wait_for("listening", WAIT);
    let public = line["address"].as_str().unwrap().to_owned();
    let admin = line["admin_address"].as_str().unwrap().to_owned();
    wait_ready(&admin);
    (process, public, admin)
}

fn wait_ready(admin: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(response) = reqwest::blocking::get(format!("http://{admin}/health/ready"))
            && response.status() == 200
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("balancer never ready");
}

/// Reads one HTTP/1.1 request (head and Content-Length body) from a stream.
fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).unwrap();
        if n == 0 {
            return data;
        }
        data.extend_from_slice(&buffer[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while data.len() < end + 4 + length {
                let n = stream.read(&mut buffer).unwrap();
                data.extend_from_slice(&buffer[..n]);
            }
            return data;
        }
    }
}

/// A backend that passes each request on to `target` and then dies before answering: the
/// work is done, the answer is lost — what a replica killed mid-request looks like.
fn forward_then_die(target: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let request = read_request(&mut stream);
            let mut upstream = TcpStream::connect(&target).unwrap();
            upstream.write_all(&request).unwrap();
            // Wait for the replica's answer (the order is committed), then drop both.
            let mut first = [0u8; 64];
            let _ = upstream.read(&mut first);
            drop(stream);
        }
    });
    (address, hits)
}

#[test]
fn keyed_post_whose_backend_dies_is_retried_and_creates_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_first, first_address) = replica(dir.path(), &["--demo"]);
    let (_second, second_address) = replica(dir.path(), &[]);
    let (dying, dying_hits) = forward_then_die(first_address.clone());
    let config = dir.path().join("balance.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nworkers = 1\n\
             [[pools]]\nname = \"orders\"\nalgorithm = \"round_robin\"\noutlier = {{ consecutive_failures = 0 }}\n\
             [[pools.backends]]\naddress = \"{dying}\"\n[[pools.backends]]\naddress = \"{second_address}\"\n"
        ),
    )
    .unwrap();
    let (_balance, public, _admin) = balance(&["--config", config.to_str().unwrap()]);
    let base = format!("http://{public}");
    let client = reqwest::blocking::Client::new();
    let direct = format!("http://{first_address}");
    let token = common::log_in_at(&direct, "customer@brigade.demo");
    let shops: Value = reqwest::blocking::get(format!("{direct}/api/v1/shops"))
        .unwrap()
        .json()
        .unwrap();
    let shop = shops[0]["id"].as_str().unwrap().to_owned();
    let menu: Value = reqwest::blocking::get(format!("{direct}/api/v1/shops/{shop}/menu"))
        .unwrap()
        .json()
        .unwrap();
    let item = menu[0]["item_id"].as_str().unwrap().to_owned();
    let order = json!({"shop_id": shop, "items": [{"item_id": item, "quantity": 1}],
                       "delivery": {"lat": 52.51, "lon": 13.40}});
    let count = || {
        let page: Value = client
            .get(format!("{direct}/api/v1/orders?limit=100"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        page["items"].as_array().unwrap().len()
    };
    assert_eq!(count(), 0);

    // Round robin: the first request goes to the backend that dies after doing the work.
    let response = client
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(&token)
        .header("idempotency-key", "balance-test-order-1")
        .json(&order)
        .send()
        .unwrap();
    let status = response.status();
    assert_eq!(status, 201, "{}", response.text().unwrap());
    assert_eq!(
        dying_hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the dying backend was tried first"
    );
    assert_eq!(count(), 1, "exactly one order exists");

    // Without a key the same failure is not retried: 502, and the order made by the dying
    // backend is the only one.
    // (The round-robin turn is back at the dying backend: the retry above went to the other.)
    let response = client
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(&token)
        .json(&order)
        .send()
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(dying_hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(count(), 2, "the unkeyed POST was not sent twice");
}

/// A backend answering every request after `delay`.
fn slow_backend(delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                loop {
                    let request = read_request(&mut stream);
                    if request.is_empty() {
                        return;
                    }
                    if !request.starts_with(b"GET /health") {
                        std::thread::sleep(delay);
                    }
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    address
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_zero() {
    let backend = slow_backend(Duration::from_millis(800));
    let (mut balance, public, admin) = balance(&[
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--backend",
        &backend,
        "--workers",
        "1",
    ]);
    let pools: Value = reqwest::blocking::get(format!("http://{admin}/admin/pools"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(pools["pools"][0]["backends"][0]["address"], backend);
    // The process's own exposition describes its metrics (promtool requires HELP lines).
    let metrics = reqwest::blocking::get(format!("http://{admin}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    for name in [
        "brigade_balance_upstream_requests_total",
        "brigade_balance_backend_healthy",
    ] {
        assert!(
            metrics.contains(&format!("# HELP {name} ")),
            "no HELP for {name}: {metrics}"
        );
    }
    let request =
        std::thread::spawn(move || reqwest::blocking::get(format!("http://{public}/")).unwrap());
    let started = Instant::now();
    loop {
        let pools: Value = reqwest::blocking::get(format!("http://{admin}/admin/pools"))
            .unwrap()
            .json()
            .unwrap();
        if pools["pools"][0]["backends"][0]["in_flight"] == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    balance.signal("TERM");
    let response = request.join().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "slow");
    balance.wait_for("balancer stopped", WAIT);
    let status = balance.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sighup_reloads_and_bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let a = slow_backend(Duration::ZERO);
    let b = slow_backend(Duration::ZERO);
    let path = dir.path().join("balance.toml");
    let file = |backend: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nworkers = 1\n[[pools]]\nname = \"p\"\n\
             [[pools.backends]]\naddress = \"{backend}\"\n"
        )
    };
    std::fs::write(&path, file(&a)).unwrap();
    let (balance, public, admin) = balance(&["--config", path.to_str().unwrap()]);
    assert_eq!(
        reqwest::blocking::get(format!("http://{public}/"))
            .unwrap()
            .status(),
        200
    );
    std::fs::write(&path, file(&b)).unwrap();
    balance.signal("HUP");
    balance.wait_for("configuration reloaded", WAIT);
    let pools: Value = reqwest::blocking::get(format!("http://{admin}/admin/pools"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(pools["pools"][0]["backends"][0]["address"], b);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, format!("{}\nretries = 3\n", file(&a))).unwrap();
    let output = Command::new(BRIGADE)
        .args(["balance", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("retries") && stderr.contains("line"),
        "{stderr}"
    );

    let output = Command::new(BRIGADE).args(["balance"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--backend"));
}

/// Every bad setting of `brigade balance` exits 2 naming the flag or key (the README's promise):
/// a malformed file, a short admin token, no backend, an admin or public address that cannot
/// be bound.
#[test]
fn bad_settings_exit_two_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(BRIGADE)
            .arg("balance")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let pool = "[[pools]]\nname = \"p\"\n[[pools.backends]]\naddress = \"127.0.0.1:9\"\n";

    let short = file(
        "short.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\nadmin = {{ listen = \"127.0.0.1:0\", token = \"t\" }}\n{pool}"
        ),
    );
    let (code, stderr) = run(&["--config", &short]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("admin.token") && stderr.contains("16"),
        "{stderr}"
    );

    let unknown = file("unknown.toml", &format!("retries = 3\n{pool}"));
    let (code, stderr) = run(&["--config", &unknown]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("retries"), "{stderr}");

    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--backend"), "{stderr}");

    // An admin address in use.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let (code, stderr) = run(&[
        "--listen",
        "127.0.0.1:0",
        "--admin",
        &taken,
        "--backend",
        "127.0.0.1:9",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("brigade: admin.listen: cannot listen"),
        "{stderr}"
    );
    // A public address in use.
    let (code, stderr) = run(&[
        "--listen",
        &taken,
        "--admin",
        "127.0.0.1:0",
        "--backend",
        "127.0.0.1:9",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("brigade: listen: cannot listen"),
        "{stderr}"
    );
    drop(holder);
}

/// `brigade balance --tls-cert --tls-key`: answers over TLS, and SIGHUP swaps the certificate
/// for new handshakes without a restart.
#[test]
fn tls_flags_serve_https_and_sighup_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    let live = dir.path().join("live");
    for folder in [&first, &second] {
        brigade_balance::tls::self_signed(folder, &["localhost".into()]).unwrap();
    }
    std::fs::create_dir_all(&live).unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(first.join(file), live.join(file)).unwrap();
    }
    let backend = slow_backend(Duration::ZERO);
    let (balance, public, _admin) = balance(&[
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--backend",
        &backend,
        "--tls-cert",
        live.join("cert.pem").to_str().unwrap(),
        "--tls-key",
        live.join("key.pem").to_str().unwrap(),
    ]);
    let public: std::net::SocketAddr = public.parse().unwrap();
    let trusting = |folder: &Path| {
        let pem = std::fs::read(folder.join("cert.pem")).unwrap();
        reqwest::blocking::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .resolve("localhost", public)
            .build()
            .unwrap()
    };
    let url = format!("https://localhost:{}/", public.port());
    let response = trusting(&first).get(&url).send().unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("strict-transport-security"));
    assert!(trusting(&second).get(&url).send().is_err());

    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(second.join(file), live.join(file)).unwrap();
    }
    balance.signal("HUP");
    balance.wait_for("TLS certificate reloaded", WAIT);
    assert_eq!(trusting(&second).get(&url).send().unwrap().status(), 200);
    assert!(trusting(&first).get(&url).send().is_err());
}

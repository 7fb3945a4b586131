//! Test upstreams (small hyper servers on loopback whose behaviour a test can change while they
//! run) and a balancer started in-process on port 0.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brigade_balance::{Config, Running};
use brigade_core::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

/// What an upstream does with a request.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Milliseconds to wait before answering.
    pub delay_ms: AtomicU64,
    /// Status to answer with (0 = 200).
    pub status: AtomicU16,
    /// Close the connection after reading the request, without answering.
    pub die_mid_request: AtomicBool,
    /// Answer this many requests 409 with `Retry-After: 1` (like brigade while a key's first
    /// request is in progress), then behave normally.
    pub conflicts: AtomicU64,
    /// Status of the health path (0 = 200).
    pub health_status: AtomicU16,
}

/// A running test upstream.
pub struct Upstream {
    pub address: SocketAddr,
    pub name: String,
    pub behaviour: Arc<Behaviour>,
    pub hits: Arc<AtomicU64>,
    /// Headers of the most recent request.
    pub last_headers: Arc<Mutex<HashMap<String, String>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn bind(address: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(address).unwrap();
    socket.listen(1024).unwrap()
}

impl Upstream {
    /// Starts an upstream on a free port.
    pub async fn start(name: &str) -> Arc<Self> {
        let listener = bind("127.0.0.1:0".parse().unwrap());
        let upstream = Arc::new(Self {
            address: listener.local_addr().unwrap(),
            name: name.to_owned(),
            behaviour: Arc::new(Behaviour::default()),
            hits: Arc::new(AtomicU64::new(0)),
            last_headers: Arc::new(Mutex::new(HashMap::new())),
            task: Mutex::new(None),
        });
        upstream.run(listener);
        upstream
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    fn run(&self, listener: TcpListener) {
        let name = self.name.clone();
        let behaviour = Arc::clone(&self.behaviour);
        let hits = Arc::clone(&self.hits);
        let last_headers = Arc::clone(&self.last_headers);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let name = name.clone();
                let behaviour = Arc::clone(&behaviour);
                let hits = Arc::clone(&hits);
                let last_headers = Arc::clone(&last_headers);
                connections.spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let name = name.clone();
                        let behaviour = Arc::clone(&behaviour);
                        let hits = Arc::clone(&hits);
                        let last_headers = Arc::clone(&last_headers);
                        async move {
                            answer(request, &name, &behaviour, &hits, &last_headers).await
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow.
                while connections.try_join_next().is_some() {}
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Kills the upstream: the listener and every open connection close at once. Returns
    /// once they are closed: an aborted task drops its listener only when the runtime gets
    /// to it, and a connect in between is accepted into the backlog and then reset — a
    /// different fault (a request lost after it was sent) from the refused connect meant.
    pub async fn kill(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&self) {
        self.kill().await;
        let listener = bind(self.address);
        self.run(listener);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

async fn answer(
    request: Request<Incoming>,
    name: &str,
    behaviour: &Behaviour,
    hits: &AtomicU64,
    last_headers: &Mutex<HashMap<String, String>>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    if request.uri().path() == "/health" {
        let status = behaviour.health_status.load(Ordering::SeqCst);
        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
        *response.status_mut() =
            hyper::StatusCode::from_u16(if status == 0 { 200 } else { status }).unwrap();
        return Ok(response);
    }
    hits.fetch_add(1, Ordering::SeqCst);
    {
        let mut headers = last_headers.lock().unwrap();
        headers.clear();
        for (k, v) in request.headers() {
            headers.insert(k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned());
        }
    }
    let echo = request.uri().path() == "/echo";
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if behaviour.die_mid_request.load(Ordering::SeqCst) {
        return Err(std::io::Error::other("dies mid-request"));
    }
    if behaviour
        .conflicts
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let mut response = Response::new(Full::new(Bytes::from_static(b"in progress")));
        *response.status_mut() = hyper::StatusCode::CONFLICT;
        response
            .headers_mut()
            .insert("retry-after", "1".parse().unwrap());
        return Ok(response);
    }
    let delay = behaviour.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = behaviour.status.load(Ordering::SeqCst);
    let payload = if echo {
        body
    } else {
        Bytes::from(name.to_owned())
    };
    let mut response = Response::new(Full::new(payload));
    *response.status_mut() =
        hyper::StatusCode::from_u16(if status == 0 { 200 } else { status }).unwrap();
    response
        .headers_mut()
        .insert("x-backend", name.parse().unwrap());
    Ok(response)
}

/// A balancer running in this process.
pub struct Balancer {
    pub running: Option<Running>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub shutdown: Shutdown,
    pub client: reqwest::Client,
}

impl Balancer {
    pub async fn start(config: Config, path: Option<std::path::PathBuf>) -> Self {
        let shutdown = Shutdown::new();
        let running = brigade_balance::start(config, path, shutdown.clone())
            .await
            .unwrap();
        let balancer = Self {
            public: running.public,
            admin: running.admin,
            running: Some(running),
            shutdown,
            client: reqwest::Client::new(),
        };
        balancer.wait_ready().await;
        balancer
    }

    /// Parses a config with `listen`/`admin` on port 0 and `workers = 1` prepended.
    pub async fn from_toml(body: &str) -> Self {
        let text =
            format!("listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nworkers = 1\n{body}");
        Self::start(Config::parse(&text, "test").unwrap(), None).await
    }

    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self
                .client
                .get(self.admin_url("/health/ready"))
                .send()
                .await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("balancer never became ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.public, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// `POST /orders` with a `{}` body through the balancer, with `Idempotency-Key: key` when
    /// given (the header that makes a POST retryable).
    pub async fn post_order(&self, key: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(self.url("/orders")).body("{}");
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.unwrap()
    }

    /// GET through the balancer; returns (status, x-backend header or "").
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let backend = response
            .headers()
            .get("x-backend")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (response.status().as_u16(), backend)
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// POST (no body) to an admin path.
    pub async fn admin_post(&self, path: &str) -> reqwest::Response {
        self.client.post(self.admin_url(path)).send().await.unwrap()
    }

    pub async fn pools(&self) -> serde_json::Value {
        self.client
            .get(self.admin_url("/admin/pools"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The admin view of one backend.
    pub async fn backend(&self, pool: &str, address: SocketAddr) -> serde_json::Value {
        let pool: serde_json::Value = self
            .client
            .get(self.admin_url(&format!("/admin/pools/{pool}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pool["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["address"] == address.to_string())
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Polls the admin API until the backend's state is `state` (up to 5 s).
    pub async fn wait_state(&self, pool: &str, address: SocketAddr, state: &str) {
        for _ in 0..500 {
            if self.backend(pool, address).await["state"] == state {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{address} never became {state}: {}",
            self.backend(pool, address).await
        );
    }

    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(running) = self.running.take() {
            running.wait().await;
        }
    }
}

/// Counts of `x-backend` over `n` sequential GETs.
pub async fn spread(balancer: &Balancer, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let (status, backend) = balancer.get("/").await;
        assert_eq!(status, 200);
        *counts.entry(backend).or_insert(0) += 1;
    }
    counts
}

/// `[[pools.backends]]` lines for these upstreams.
pub fn backends_toml(upstreams: &[&Upstream]) -> String {
    upstreams
        .iter()
        .map(|u| format!("[[pools.backends]]\naddress = \"{}\"\n", u.address))
        .collect()
}

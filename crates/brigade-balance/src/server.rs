//! Listeners and lifecycle: one `current_thread` runtime per worker thread, each accepting on
//! its own `SO_REUSEPORT` socket (the kernel spreads connections), the admin listener and the
//! health checks on the caller's runtime, and a graceful stop.
//!
//! Per-core runtimes rather than one multi-thread runtime: measured on this kind of machine, the
//! work-stealing scheduler cost 4–7 % of a proxy's throughput, and a proxy's connections are
//! independent, so nothing is lost by pinning each to the thread that accepted it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use brigade_core::shutdown::Shutdown;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::clock::uptime_ms;
use crate::config::Config;
use crate::state::State;
use crate::tls::{self, CertStore, TlsError};
use crate::trace::{Accepted, Handshake};
use crate::{admin, health, proxy, redirect};

/// Why the balancer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound: a bad setting (address in use or not local), named by
    /// its configuration key.
    #[error("{key}: cannot listen on {address}: {source}")]
    Bind {
        /// The configuration key, e.g. `admin.listen`.
        key: &'static str,
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The certificate or key of `[tls]` cannot be used (a bad setting).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A worker thread or its runtime could not be started.
    #[error("cannot start a worker: {0}")]
    Worker(std::io::Error),
}

/// A running balancer.
#[derive(Debug)]
pub struct Running {
    /// The bound public address.
    pub public: SocketAddr,
    /// The bound admin address.
    pub admin: SocketAddr,
    /// The bound plain-HTTP redirect address (`tls.redirect_listen`), if any.
    pub redirect: Option<SocketAddr>,
    /// Shared state (pools, routes, readiness).
    pub state: Arc<State>,
    shutdown: Shutdown,
    admin_stop: Shutdown,
    workers: Vec<oneshot::Receiver<()>>,
}

impl Running {
    /// Starts shutdown: listeners close, in-flight requests finish within the deadline.
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Waits until shutdown was triggered and every worker has finished.
    pub async fn wait(self) {
        self.shutdown.wait().await;
        self.state.set_shutting_down();
        for worker in self.workers {
            let _ = worker.await;
        }
        self.admin_stop.trigger();
        tracing::info!("balancer stopped");
    }
}

fn bind_reuseport(address: SocketAddr) -> Result<TcpListener, std::io::Error> {
    let socket = brigade_core::net::socket(address)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    socket.listen(brigade_core::net::BACKLOG)
}

/// Listening sockets bound by whoever started the balancer (systemd socket activation, or
/// `brigade up`, which keeps them open across balancer restarts). Every worker accepts on the
/// inherited public socket (a duplicate of it each) instead of binding its own.
#[derive(Debug, Default)]
pub struct Inherited {
    /// Used instead of binding `listen`.
    pub public: Option<std::net::TcpListener>,
    /// Used instead of binding `admin.listen`.
    pub admin: Option<std::net::TcpListener>,
}

/// Binds the listeners and starts workers, health checks and the admin API. Must be called
/// inside a Tokio runtime, which runs the admin API and the health checks.
pub async fn start(
    config: Config,
    config_path: Option<PathBuf>,
    shutdown: Shutdown,
) -> Result<Running, StartError> {
    start_with(config, config_path, shutdown, Inherited::default()).await
}

/// [`start`] on the listeners in `inherited` where there are any.
pub async fn start_with(
    config: Config,
    config_path: Option<PathBuf>,
    shutdown: Shutdown,
    inherited: Inherited,
) -> Result<Running, StartError> {
    // The recorder first: descriptions given before it exists are lost, and `/metrics` would
    // lack its HELP lines (which `promtool check metrics` requires).
    let _ = brigade_core::metrics::renderer();
    crate::metrics::describe();
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (listeners, public) = bind_public(config.listen, inherited.public, workers)?;
    let (admin_listener, admin) = bind_admin(config.admin.listen, inherited.admin).await?;
    let tls_setup = match &config.tls {
        Some(settings) => Some(TlsSetup::load(settings).await?),
        None => None,
    };
    let limit = Arc::new(Semaphore::new(config.limits.max_connections));
    let state = Arc::new(State::new(config, config_path));
    let mut acceptor = None;
    let mut redirect_address = None;
    if let Some(setup) = tls_setup {
        state.set_tls(setup.store);
        acceptor = Some(setup.acceptor);
        if let Some(listener) = setup.redirect {
            redirect_address = listener.local_addr().ok();
            tokio::spawn(redirect::serve(listener, public.port(), shutdown.clone()));
        }
    }
    let mut done = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let worker = Worker {
            state: Arc::clone(&state),
            shutdown: shutdown.clone(),
            limit: Arc::clone(&limit),
            acceptor: acceptor.clone(),
        };
        done.push(worker.spawn(index, listener)?);
    }
    tokio::spawn(health::run(Arc::clone(&state), shutdown.clone()));
    let admin_stop = Shutdown::new();
    tokio::spawn(admin::serve(
        admin_listener,
        Arc::clone(&state),
        admin_stop.clone(),
    ));
    tracing::info!(address = %public, admin_address = %admin, workers, "listening");
    Ok(Running {
        public,
        admin,
        redirect: redirect_address,
        state,
        shutdown,
        admin_stop,
        workers: done,
    })
}

/// A listener's bind error, named by its configuration key.
fn bind_error(key: &'static str, address: SocketAddr) -> impl Fn(std::io::Error) -> StartError {
    move |source| StartError::Bind {
        key,
        address,
        source,
    }
}

/// One public socket per worker: an inherited socket duplicated, or `SO_REUSEPORT` sockets
/// bound to `listen` (the first decides the port when `listen` asks for any); and the
/// address they listen on.
fn bind_public(
    listen: SocketAddr,
    inherited: Option<std::net::TcpListener>,
    workers: usize,
) -> Result<(Vec<std::net::TcpListener>, SocketAddr), StartError> {
    let inherited_public = inherited.is_some();
    let first = match inherited {
        Some(listener) => listener,
        None => bind_reuseport(listen)
            .and_then(TcpListener::into_std)
            .map_err(bind_error("listen", listen))?,
    };
    first
        .set_nonblocking(true)
        .map_err(bind_error("listen", listen))?;
    let public = first.local_addr().map_err(bind_error("listen", listen))?;
    let mut listeners = Vec::with_capacity(workers);
    for _ in 1..workers {
        let listener = if inherited_public {
            first.try_clone()
        } else {
            bind_reuseport(public).and_then(TcpListener::into_std)
        };
        listeners.push(listener.map_err(bind_error("listen", public))?);
    }
    listeners.push(first);
    Ok((listeners, public))
}

/// The admin listener (inherited, or bound to `admin.listen`) and its address.
async fn bind_admin(
    listen: SocketAddr,
    inherited: Option<std::net::TcpListener>,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = match inherited {
        Some(listener) => listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener)),
        None => TcpListener::bind(listen).await,
    }
    .map_err(bind_error("admin.listen", listen))?;
    let address = listener
        .local_addr()
        .map_err(bind_error("admin.listen", listen))?;
    Ok((listener, address))
}

/// What `[tls]` needs before the workers start: the certificates, the acceptor, and the
/// plain-HTTP redirect listener if one is configured.
struct TlsSetup {
    store: Arc<CertStore>,
    acceptor: TlsAcceptor,
    redirect: Option<TcpListener>,
}

impl TlsSetup {
    async fn load(settings: &tls::TlsConfig) -> Result<Self, StartError> {
        let store = Arc::new(CertStore::load(&settings.cert, &settings.key)?);
        let acceptor = TlsAcceptor::from(tls::server_config(Arc::clone(&store))?);
        let redirect = match settings.redirect_listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .map_err(bind_error("tls.redirect_listen", address))?,
            ),
            None => None,
        };
        Ok(Self {
            store,
            acceptor,
            redirect,
        })
    }
}

/// What a worker thread shares with the others.
struct Worker {
    state: Arc<State>,
    shutdown: Shutdown,
    limit: Arc<Semaphore>,
    acceptor: Option<TlsAcceptor>,
}

impl Worker {
    /// Starts worker `index` on its own thread and `current_thread` runtime, accepting on
    /// `listener`; the receiver completes when the worker has finished.
    fn spawn(
        self,
        index: usize,
        listener: std::net::TcpListener,
    ) -> Result<oneshot::Receiver<()>, StartError> {
        let (finished, receiver) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("balance-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "cannot start a worker runtime");
                        return;
                    }
                };
                runtime.block_on(self.run(listener));
                let _ = finished.send(());
            })
            .map_err(StartError::Worker)?;
        Ok(receiver)
    }

    /// The worker's life on its runtime: idle-connection upkeep and the accept loop.
    async fn run(self, listener: std::net::TcpListener) {
        tokio::spawn(crate::fast::reap_periodically(
            Arc::clone(&self.state),
            self.shutdown.clone(),
        ));
        match TcpListener::from_std(listener) {
            Ok(listener) => {
                accept_loop(
                    listener,
                    self.state,
                    self.shutdown,
                    self.limit,
                    self.acceptor,
                )
                .await;
            }
            Err(error) => tracing::error!(%error, "cannot register a listener"),
        }
    }
}

/// Reloads the configuration on every SIGHUP until shutdown.
pub fn reload_on_sighup(state: Arc<State>, shutdown: Shutdown) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload through the admin API");
            return;
        };
        loop {
            tokio::select! {
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                    if let Err(error) = state.reload() {
                        tracing::error!(error = %error, "reload failed; keeping the running configuration");
                    }
                    if let Err(error) = state.reload_tls() {
                        tracing::error!(error = %error, "TLS reload failed; keeping the running certificate");
                    }
                }
                () = shutdown.wait() => return,
            }
        }
    });
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: Shutdown,
    limit: Arc<Semaphore>,
    acceptor: Option<TlsAcceptor>,
) {
    // Live connections, so shutdown can wait for them.
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.wait() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = shutdown.wait() => break,
        };
        let state = Arc::clone(&state);
        let shutdown = shutdown.clone();
        let acceptor = acceptor.clone();
        tracker.spawn(async move {
            let _ = stream.set_nodelay(true);
            match acceptor {
                None if fast_core(&state) => {
                    crate::fast::serve(stream, peer, state, shutdown).await
                }
                None => serve_connection(stream, peer, state, shutdown, false).await,
                Some(acceptor) => {
                    // The handshake counts against the same limit as reading a request head.
                    let limit = state.table().config.timeouts.header_read_ms;
                    let accepted_at = Instant::now();
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(Duration::from_millis(limit), handshake).await {
                        Ok(Ok(stream)) => {
                            let opened = Opened {
                                secure: true,
                                accepted: tls_accepted(accepted_at, &stream),
                                served: 0,
                            };
                            serve_connection_with(stream, peer, state, shutdown, opened).await
                        }
                        Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    let deadline = Duration::from_millis(state.table().config.timeouts.shutdown_ms);
    if tokio::time::timeout(deadline, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.len(),
            "shutdown deadline passed with requests in flight"
        );
    }
}

/// Whether a new plain-HTTP connection is served by the fast core: `[server] core = "fast"`
/// and header limits its stack array holds. With trace export on, the fast core serves the
/// unsampled requests and hands a connection to the hyper path for a sampled one.
fn fast_core(state: &State) -> bool {
    let table = state.table();
    table.config.server.core == crate::config::Core::Fast
        && table.config.limits.max_headers <= crate::fast::codec::MAX_HEADERS
}

/// How a TLS connection accepted at `at` began: its handshake's length and protocol.
fn tls_accepted<S>(at: Instant, stream: &tokio_rustls::server::TlsStream<S>) -> Accepted {
    let version = stream
        .get_ref()
        .1
        .protocol_version()
        .and_then(|version| match version {
            rustls::ProtocolVersion::TLSv1_3 => Some("1.3"),
            rustls::ProtocolVersion::TLSv1_2 => Some("1.2"),
            _ => None,
        });
    Accepted {
        at,
        tls: Some(Handshake {
            took: at.elapsed(),
            version,
        }),
    }
}

/// How a connection came to the hyper path: over TLS or not, how it began, and how many
/// requests the fast core served on it before.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) secure: bool,
    pub(crate) accepted: Accepted,
    pub(crate) served: u64,
}

/// What every request of one client connection shares: one `Arc` cloned per request.
#[derive(Debug)]
struct ConnectionContext {
    state: Arc<State>,
    client: proxy::Client,
    /// Requests being served on the connection.
    active: AtomicUsize,
    /// When the connection last finished a request.
    last_ms: AtomicU64,
}

/// What a client connection takes from the configuration once, as it opens: a reload applies
/// to the connections opened after it (each request still routes on the table of its time).
struct ConnectionSettings {
    /// The whole request head must arrive within this (`timeouts.header_read_ms`).
    header_read: Duration,
    /// A connection with no request in progress for this long is closed (`timeouts.idle_ms`).
    idle_ms: u64,
    max_header_bytes: usize,
    max_headers: usize,
    /// The client as requests are forwarded for it.
    client: proxy::Client,
}

impl ConnectionSettings {
    /// The settings of a connection from `peer`; `secure`: it speaks TLS.
    fn read(state: &State, peer: SocketAddr, opened: &Opened) -> Self {
        let secure = opened.secure;
        let table = state.table();
        let config = &table.config;
        let client = match (&config.tls, secure) {
            (Some(tls), true) => {
                proxy::Client::new(peer, &config.trusted_proxies).over_tls(tls.hsts_max_age_secs)
            }
            _ => proxy::Client::new(peer, &config.trusted_proxies),
        }
        .began(opened.accepted, opened.served);
        Self {
            header_read: Duration::from_millis(config.timeouts.header_read_ms),
            idle_ms: config.timeouts.idle_ms,
            max_header_bytes: config.limits.max_header_bytes,
            max_headers: config.limits.max_headers,
            client,
        }
    }
}

/// Serves one client connection on any byte stream until it closes: the HTTP/1.1 parser with
/// the configured head limits and timeouts, [`proxy::handle`] for each request, and graceful
/// closing on shutdown or idleness. The listeners run it for every accepted (TLS) socket; it
/// is public so that the whole request path, from raw bytes to the backend, can be driven over
/// an in-memory pipe (the fuzz targets in `fuzz/` do).
pub async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    state: Arc<State>,
    shutdown: Shutdown,
    secure: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let opened = Opened {
        secure,
        accepted: Accepted::now(),
        served: 0,
    };
    serve_connection_with(stream, peer, state, shutdown, opened).await;
}

/// [`serve_connection`] for a connection that began as `opened` says.
pub(crate) async fn serve_connection_with<S>(
    stream: S,
    peer: SocketAddr,
    state: Arc<State>,
    shutdown: Shutdown,
    opened: Opened,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let settings = ConnectionSettings::read(&state, peer, &opened);
    let context = Arc::new(ConnectionContext {
        state: Arc::clone(&state),
        client: settings.client,
        active: AtomicUsize::new(0),
        last_ms: AtomicU64::new(uptime_ms()),
    });
    let service = {
        let shared = Arc::clone(&context);
        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let context = Arc::clone(&shared);
            async move {
                context.active.fetch_add(1, Ordering::Relaxed);
                let response = proxy::handle(&context.state, request, &context.client).await;
                context.active.fetch_sub(1, Ordering::Relaxed);
                context.last_ms.store(uptime_ms(), Ordering::Relaxed);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read)
        .writev(false)
        // Room for a head somewhat over the limit, so the 431 is ours (with a problem body)
        // rather than the parser's bare one.
        .max_buf_size((settings.max_header_bytes * 2).max(8192) + 8192)
        .max_headers(settings.max_headers);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut idle_check = tokio::time::interval(Duration::from_millis(
        (settings.idle_ms / 2).clamp(10, 1_000),
    ));
    idle_check.tick().await;
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "client connection ended with an error");
                }
                return;
            }
            () = shutdown.wait(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = idle_check.tick(), if !closing => {
                let idle = uptime_ms().saturating_sub(context.last_ms.load(Ordering::Relaxed));
                if context.active.load(Ordering::Relaxed) == 0 && idle >= settings.idle_ms {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

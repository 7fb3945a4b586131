//! brigade-api: the ordering service that `brigade serve` runs.
//!
//! [`Application::build`] connects the store (applying migrations), builds the cache, binds the
//! listener and assembles the router; [`Application::run_until_stopped`] serves until the
//! shutdown signal, then drains. `main` and the integration tests start the service exactly the
//! same way (zero2prod's `Application`), on port 0 in tests.

pub mod auth;
mod caller;
mod catalogue_cache;
mod checkout;
pub mod demo;
mod error;
mod extract;
pub mod faults;
mod listener;
mod metrics;
mod middleware;
mod openapi;
mod order_spans;
mod pages;
mod per_request;
mod placement;
mod read_after;
mod report_limit;
pub mod routes;
pub mod session_cache;
mod state;
mod write_health;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use brigade_core::{HealthLatch, Settings, Shutdown};
use brigade_store::Store;
use brigade_store::cache::Cache;
use tokio::net::TcpListener;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, ApiResult};
pub use routes::orders::OrderPage;
pub use state::AppState;

/// How long idempotency records are kept: longer than any sane client retries.
const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database at {url}")]
    Store {
        /// The URL, password redacted.
        url: String,
        /// What failed.
        #[source]
        source: brigade_store::StoreError,
    },
    /// `cache.redis_url` is not a valid Redis URL.
    #[error("invalid configuration: cache.redis_url")]
    Cache(#[source] brigade_store::cache::CacheError),
    /// The payment provider settings are unusable.
    #[error("invalid configuration: payments")]
    Payments(#[source] brigade_payments::ConfigError),
    /// The listen address is taken or not ours.
    #[error("cannot listen on {address}")]
    Bind {
        /// `server.listen`.
        address: SocketAddr,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// The ordering service, built and bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Connects, migrates, binds. Nothing is served until [`run_until_stopped`].
    ///
    /// [`run_until_stopped`]: Application::run_until_stopped
    pub async fn build(settings: Settings) -> Result<Self, BuildError> {
        let url = settings.storage.effective_url();
        let store = brigade_store::connect_serving(&settings.storage)
            .await
            .map_err(|source| BuildError::Store {
                url: brigade_store::redact_url(&url),
                source,
            })?;
        let cache = brigade_store::cache::build(&settings.cache).map_err(BuildError::Cache)?;
        Self::build_with(settings, store, cache).await
    }

    /// Like [`build`](Application::build) with an already connected store and cache.
    pub async fn build_with(
        settings: Settings,
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
    ) -> Result<Self, BuildError> {
        let address = settings.server.listen;
        let listener = brigade_core::net::bind(address)
            .map_err(|source| BuildError::Bind { address, source })?;
        // Install the recorder before the first metric is touched.
        let _ = brigade_core::metrics::renderer();
        metrics::describe(store.backend().as_str());
        let auth = auth::Auth::build(&settings.auth, store.as_ref(), cache.clone())
            .await
            .map_err(|source| BuildError::Store {
                url: brigade_store::redact_url(&settings.storage.effective_url()),
                source,
            })?;
        let payments = brigade_payments::Payments::from_settings(&settings.payments)
            .map_err(BuildError::Payments)?;
        metrics::register_at_zero(&payments);
        brigade_store::cache::register_at_zero(cache.kind());
        let state = AppState::new(store, cache, settings, auth, payments);
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    /// The bound address (the real port when `server.listen` used port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// The store this application serves from.
    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// The readiness latch (tests and the supervisor watch it).
    pub fn health(&self) -> HealthLatch {
        self.state.health.clone()
    }

    /// Serves until `shutdown` fires, then: readiness fails at once, the listener stays open
    /// for `server.drain_delay_ms` so balancers notice, then closes; in-flight requests get
    /// `server.shutdown_timeout_ms` to finish; finally the database pool closes.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let Self {
            listener,
            router,
            state,
        } = self;
        let server_settings = state.settings.server.clone();
        let address = listener.local_addr()?;
        let background = tokio::spawn(background_tasks(state.clone(), shutdown.clone()));
        state.health.set_ready();
        tracing::info!(
            %address,
            backend = state.store.backend().as_str(),
            cache = state.cache.kind(),
            "listening"
        );
        let latch = state.health.clone();
        let drain_delay = server_settings.drain_delay();
        let stop_accepting = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.wait().await;
                latch.set_draining();
                tracing::info!(drain_delay_ms = drain_delay.as_millis() as u64, "draining");
                tokio::time::sleep(drain_delay).await;
                tracing::info!("listener closed; finishing in-flight requests");
            }
        };
        let serve = listener::serve(
            listener,
            router,
            listener::Limits::from_settings(&server_settings),
            stop_accepting,
        );
        let deadline = async {
            shutdown.wait().await;
            tokio::time::sleep(drain_delay + server_settings.shutdown_timeout()).await;
        };
        tokio::select! {
            () = serve => {}
            () = deadline => tracing::warn!(
                shutdown_timeout_ms = server_settings.shutdown_timeout_ms,
                "in-flight requests did not finish in time; stopping anyway"
            ),
        }
        let _ = background.await;
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Every documented route, with the document's fixed parts.
fn documented_routes() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .merge(routes::shops::router())
        .merge(routes::items::router())
        .merge(routes::orders::router())
        .merge(routes::kitchen::router())
        .merge(routes::accounts::router())
        .merge(routes::audit::router())
        .merge(routes::client_errors::router())
        .merge(routes::reports::router())
        .merge(routes::faults::router());
    // The API's handlers name their full paths (`/api/v1/...`) and are merged, not nested:
    // a nested router rewrites every request's URI to strip its prefix (a new path string
    // and a URI parse per request, 4 % of a cached menu read).
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(api)
        .merge(routes::health::router())
        .routes(utoipa_axum::routes!(metrics::metrics_endpoint))
}

/// The OpenAPI document `/openapi.json` serves.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, mut document) = documented_routes().split_for_parts();
    openapi::complete(&mut document);
    document
}

/// Assembles every route, the OpenAPI document, Swagger UI and the middleware stack.
pub fn router(state: AppState) -> Router {
    let (router, mut document) = documented_routes().split_for_parts();
    openapi::complete(&mut document);
    let body_limit = state.settings.server.body_limit_bytes;
    let timeout = state.settings.server.request_timeout();
    let router = router
        .merge(SwaggerUi::new("/swagger-ui").url("/openapi.json", document))
        .merge(pages::router())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            per_request::steps,
        ))
        .layer(compression())
        .with_state(state);
    middleware::apply(router, body_limit, timeout)
}

/// gzip for clients that send `Accept-Encoding: gzip`, on answers of more than 1 KiB: pages,
/// scripts, the OpenAPI document and Swagger UI's 1.5 MB bundle shrink to a fifth, while the
/// small JSON answers of the hot paths (an order, a session) are not worth the CPU.
fn compression()
-> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{NotForContentType, Predicate as _, SizeAbove};
    tower_http::compression::CompressionLayer::new().compress_when(
        SizeAbove::new(1024)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE),
    )
}

/// Periodic housekeeping, stopped by the shutdown signal.
async fn background_tasks(state: AppState, shutdown: Shutdown) {
    let mut purge = tokio::time::interval(Duration::from_secs(3600));
    // Often enough that a payment left behind by a dead replica waits little longer than
    // `payments.reconcile_after_secs`.
    let reconcile_every = Duration::from_secs(state.settings.payments.reconcile_after_secs / 2)
        .clamp(Duration::from_millis(200), Duration::from_secs(15));
    let mut reconcile = tokio::time::interval(reconcile_every);
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = reconcile.tick() => checkout::reconcile(&state).await,
            _ = purge.tick() => {
                let before = brigade_domain::now()
                    - chrono::Duration::from_std(IDEMPOTENCY_RETENTION).unwrap_or_default();
                match state.store.purge_idempotency_keys(before).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "old idempotency keys deleted"),
                    Err(error) => tracing::warn!(error = &error as &dyn std::error::Error, "idempotency key purge failed"),
                }
            }
        }
    }
}

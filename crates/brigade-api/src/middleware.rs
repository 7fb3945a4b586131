//! The middleware every request passes, outermost first: observability (request identity,
//! RED metrics, access log), the answer's finishing touches with the request timeout,
//! panic-to-500, body limit.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use brigade_core::Problem;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

/// Wraps every route of `router` (and its fallbacks) in the stack. Axum applies `layer` per
/// route, so the matched route template is known to the metrics and log middleware.
pub fn apply(router: Router, body_limit: usize, timeout: Duration) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(from_fn(brigade_core::request::observe))
            .layer(from_fn(move |request: Request, next: Next| {
                finish(timeout, request, next)
            }))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(DefaultBodyLimit::max(body_limit)),
    )
}

/// Seconds a client is asked to wait before retrying a 503.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The request timeout, then the headers every answer gets: `Retry-After` on a 503 and the
/// security headers. One middleware rather than three, since each `from_fn` layer costs a
/// boxed future and a clone of the inner stack per request. Outside the panic catcher, so a
/// panic's 500 gets the headers too, and a timed-out handler is dropped as before.
async fn finish(timeout: Duration, request: Request, next: Next) -> Response {
    let mut response = with_timeout(timeout, request, next).await;
    retry_after_on_unavailable(&mut response);
    brigade_core::security_headers::apply(&mut response);
    response
}

/// Every 503 tells the client when to try again (`Retry-After`), whichever part of the
/// replica answered it (an unavailable database, payments, a timeout, readiness); an answer
/// that already says so keeps its own value.
fn retry_after_on_unavailable(response: &mut Response) {
    if response.status() == http::StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(http::header::RETRY_AFTER)
    {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(RETRY_AFTER_SECS),
        );
    }
}

async fn with_timeout(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_ms = timeout.as_millis() as u64, "request timed out");
            Problem::unavailable(format!(
                "the request took longer than {} ms; retry later",
                timeout.as_millis()
            ))
            .into_response()
        }
    }
}

/// A handler's panic as a 500. Its message and location come from the panic hook
/// (`brigade_core::error_event`), which ran on this thread just before; the request middleware
/// logs them as an error event with the route.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let cause = brigade_core::error_event::take_panic().unwrap_or_else(|| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        brigade_core::error_event::ServerError::new(
            brigade_core::error_event::ErrorKind::Panic,
            format!("handler panicked: {message}"),
        )
    });
    let mut response = Problem::internal().into_response();
    cause.attach(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use brigade_core::error_event::{ErrorKind, ServerError};
    use tower::ServiceExt as _;

    use super::*;

    /// Keeps the fields of every error event as a JSON object, as the JSON log would write it.
    #[derive(Clone, Default)]
    struct Events(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    struct Fields(serde_json::Map<String, serde_json::Value>);

    impl tracing::field::Visit for Fields {
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.0.insert(field.name().into(), value.into());
        }
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0
                .insert(field.name().into(), format!("{value:?}").into());
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut fields = Fields(serde_json::Map::new());
            event.record(&mut fields);
            if fields.0.contains_key("error_kind") {
                let line = serde_json::Value::Object(fields.0).to_string();
                self.0.lock().unwrap().push(line);
            }
        }
    }

    /// A handler's panic is answered 500 with its cause attached for the request middleware
    /// to log as an error event (without the panic hook, from the payload alone).
    async fn a_panic_is_a_500_carrying_its_cause() {
        let router: Router = Router::new()
            .route(
                "/",
                get(|| async {
                    if true {
                        panic!("cart 7 vanished");
                    }
                    "never"
                }),
            )
            .layer(CatchPanicLayer::custom(panic_response));
        let request = Request::builder().uri("/").body(axum::body::Body::empty());
        let response = router.oneshot(request.unwrap()).await.unwrap();
        assert_eq!(response.status(), 500);
        let cause = response.extensions().get::<ServerError>().unwrap();
        assert_eq!(cause.kind, ErrorKind::Panic);
        assert!(cause.message.contains("cart 7 vanished"), "{cause:?}");
    }

    /// With the panic hook, a handler's panic is one error event carrying the route template
    /// and the panic's location.
    #[tokio::test(flavor = "current_thread")]
    async fn a_handler_panic_is_one_error_event_with_route_and_location() {
        use tracing_subscriber::layer::SubscriberExt as _;
        // One test, in order: the callsites' interest is cached per process, so another test
        // logging from them in parallel without this subscriber could hide the events.
        a_panic_is_a_500_carrying_its_cause().await;
        brigade_core::error_event::install_panic_hook();
        let events = Events::default();
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
        let router: Router = Router::new()
            .route(
                "/api/v1/orders/{order_id}",
                get(|| async {
                    if true {
                        panic!("order 12 vanished");
                    }
                    "never"
                }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(from_fn(brigade_core::request::observe))
                    .layer(CatchPanicLayer::custom(panic_response)),
            );
        let request = Request::builder()
            .uri("/api/v1/orders/0192f6a4-1b2c-7d3e-8f90-a1b2c3d4e5f6")
            .body(axum::body::Body::empty());
        let response = router.oneshot(request.unwrap()).await.unwrap();
        assert_eq!(response.status(), 500);
        assert!(
            response.extensions().get::<ServerError>().is_none(),
            "logged, not passed on"
        );
        let lines = events.0.lock().unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let event = brigade_core::error_event::ErrorEvent::from_log_line(&lines[0]).unwrap();
        assert_eq!(event.kind, ErrorKind::Panic);
        assert_eq!(event.message, "order 12 vanished");
        assert_eq!(event.route.as_deref(), Some("/api/v1/orders/{order_id}"));
        assert!(
            event.frames[0].starts_with("crates/brigade-api/src/middleware.rs:"),
            "{event:?}"
        );
    }
}

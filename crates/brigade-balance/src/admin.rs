//! The admin listener: the balancer's own health, its metrics, and the API a supervisor uses
//! to list, add, drain, undrain and remove backends and to reload the configuration.
//!
//! `/health/*` and `/metrics` are open (probes and scrapers); `/admin/*` requires
//! `Authorization: Bearer <admin.token>` whenever a token is configured, and a token is
//! mandatory when the listener is not on loopback. Errors are problem+json.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brigade_core::shutdown::Shutdown;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::answer::problem;
use crate::api::{NewBackend, Pools, Reloaded};
use crate::config::BackendConfig;
use crate::pool::Pool;
use crate::state::State;
use crate::upstream::ResponseBody;

/// Largest admin request body.
const MAX_BODY: usize = 64 * 1024;

/// Serves the admin API until `stop` is triggered.
pub async fn serve(listener: TcpListener, state: Arc<State>, stop: Shutdown) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = stop.wait() => return,
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(
        serde_json::to_vec(value).unwrap_or_default(),
    ));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn not_found(detail: &str) -> Response<ResponseBody> {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        detail,
        None,
    )
}

fn unprocessable(detail: &str) -> Response<ResponseBody> {
    problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
        "The request is not valid",
        detail,
        None,
    )
}

/// Answers one admin request.
pub async fn handle(state: &State, request: Request<Incoming>) -> Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method().clone();
    match (&method, segments.as_slice()) {
        (_, ["admin", rest @ ..]) => {
            if let Some(refused) = unauthorized(state, &request) {
                return refused;
            }
            admin_endpoint(state, &method, rest, request).await
        }
        (method, segments) => open_endpoint(state, method, segments),
    }
}

/// The endpoints open to anyone: health and metrics.
fn open_endpoint(state: &State, method: &Method, segments: &[&str]) -> Response<ResponseBody> {
    match (method, segments) {
        (&Method::GET, ["health", "live"]) => {
            json_response(StatusCode::OK, &json!({"status": "live"}))
        }
        (&Method::GET, ["health", "ready"]) => {
            if state.is_ready() {
                json_response(StatusCode::OK, &json!({"status": "ready"}))
            } else {
                let status = if state.is_shutting_down() {
                    "draining"
                } else {
                    "starting"
                };
                json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"status": status}))
            }
        }
        (&Method::GET, ["metrics"]) => {
            for pool in &state.table().pools {
                for backend in pool.backends() {
                    backend.publish_in_flight();
                }
            }
            let text = brigade_core::metrics::renderer().render();
            let mut response = Response::new(ResponseBody::full(text));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => not_found("no such admin endpoint"),
    }
}

/// The 401 for a request to `/admin/…` without the configured `admin.token`; `None` when it
/// may go on (it has the token, or none is configured).
fn unauthorized(state: &State, request: &Request<Incoming>) -> Option<Response<ResponseBody>> {
    let table = state.table();
    let token = table.config.admin.token.as_ref()?;
    let expected = format!("Bearer {token}");
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if constant_time_eq(given, expected.as_bytes()) {
        return None;
    }
    let mut response = problem(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authentication required",
        "send Authorization: Bearer <admin.token>",
        None,
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

/// The endpoints under `/admin/` (`segments` without the `admin`), once authorized.
async fn admin_endpoint(
    state: &State,
    method: &Method,
    segments: &[&str],
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let table = state.table_full();
    let pool = |name: &str| table.pool(name).cloned();
    match (method, segments) {
        (&Method::GET, ["pools"]) => {
            let pools = Pools {
                pools: table.pools.iter().map(|p| p.view()).collect(),
            };
            json_response(StatusCode::OK, &pools)
        }
        (&Method::GET, ["pools", name]) => match pool(name) {
            Some(pool) => json_response(StatusCode::OK, &pool.view()),
            None => not_found(&format!("no pool is named {name}")),
        },
        (&Method::POST, ["pools", name, "backends"]) => {
            let Some(pool) = pool(name) else {
                return not_found(&format!("no pool is named {name}"));
            };
            add_backend(&pool, request).await
        }
        (&Method::DELETE, ["pools", name, "backends", address]) => {
            let Some(pool) = pool(name) else {
                return not_found(&format!("no pool is named {name}"));
            };
            remove_backend(
                &pool,
                address,
                Duration::from_millis(table.config.timeouts.shutdown_ms),
            )
            .await
        }
        (
            &Method::POST,
            [
                "pools",
                name,
                "backends",
                address,
                action @ ("drain" | "undrain"),
            ],
        ) => {
            let Some(backend) = pool(name).and_then(|p| p.backend(address)) else {
                return not_found(&format!("pool {name} has no backend {address}"));
            };
            backend.set_draining(*action == "drain");
            tracing::info!(pool = %name, backend = %address, action = %action, "backend {action}ed");
            json_response(StatusCode::OK, &backend.view())
        }
        (&Method::POST, ["reload"]) => match state.reload() {
            Ok(()) => json_response(StatusCode::OK, &reloaded()),
            Err(error) => unprocessable(&error.to_string()),
        },
        (&Method::POST, ["tls", "reload"]) => match state.reload_tls() {
            Ok(true) => json_response(StatusCode::OK, &reloaded()),
            Ok(false) => not_found("the public listener does not serve TLS"),
            Err(error) => unprocessable(&error.to_string()),
        },
        _ => not_found("no such admin endpoint"),
    }
}

async fn add_backend(pool: &Pool, request: Request<Incoming>) -> Response<ResponseBody> {
    let body: Bytes = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
                "admin bodies may have at most 64 KiB",
                None,
            );
        }
    };
    let new: NewBackend = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(error) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "The request is malformed",
                &error.to_string(),
                None,
            );
        }
    };
    let Ok(address) = new.address.parse::<SocketAddr>() else {
        return unprocessable("address: must be ip:port, e.g. 127.0.0.1:41001");
    };
    if new.weight == 0 || new.weight > 1000 {
        return unprocessable("weight: must be between 1 and 1000");
    }
    let config = BackendConfig {
        address,
        weight: new.weight,
        backup: new.backup,
    };
    match pool.add(&config) {
        Some(backend) => {
            tracing::info!(pool = %pool.name(), backend = %backend.label, "backend added");
            json_response(StatusCode::CREATED, &backend.view())
        }
        None => problem(
            StatusCode::CONFLICT,
            "backend-exists",
            "Conflict with the current state",
            &format!("pool {} already has backend {address}", pool.name()),
            None,
        ),
    }
}

/// Takes the backend out of selection at once, then waits for its in-flight requests: 204
/// when they finished, 202 when the deadline passed first (the backend is removed either way;
/// the last requests finish on their own).
async fn remove_backend(pool: &Pool, address: &str, deadline: Duration) -> Response<ResponseBody> {
    let Some(backend) = pool.remove(address) else {
        return not_found(&format!("pool {} has no backend {address}", pool.name()));
    };
    backend.set_draining(true);
    tracing::info!(pool = %pool.name(), backend = %address, "backend removed; draining");
    let drained = tokio::time::timeout(deadline, async {
        while backend.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .is_ok();
    let status = if drained {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    };
    let mut response = Response::new(ResponseBody::Full(None));
    *response.status_mut() = status;
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reloaded() -> Reloaded {
    Reloaded {
        status: "reloaded".to_owned(),
    }
}

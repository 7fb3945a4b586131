//! Orders: placement (with `Idempotency-Key`), reading, listing and status changes (with
//! `If-Match`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use brigade_core::{FieldError, Problem};
use brigade_domain::{NewOrder, Order, OrderStatus, OrderSummary, Role};
use brigade_store::{IdempotencyKey, NewPayment, OrderFilter, PlaceOutcome, StoredResponse};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::caller::{Caller, Orderer};
use crate::error::{ApiError, ApiResult, etag};
use crate::extract::{IdempotencyKeyHeader, Json, Path, Query};
use crate::routes::page;
use crate::state::AppState;
use crate::{catalogue_cache, checkout, metrics as names, order_spans, placement};
use tracing::Instrument as _;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orders, create_order))
        .routes(routes!(get_order, update_order))
}

/// Places an order. Without `shop_id`, brigade picks the open shop with the shortest ETA.
///
/// Roles: customer (the order is theirs), admin.
///
/// Send an `Idempotency-Key` to make retries safe: the same key with the same body returns the
/// first response (with `Idempotent-Replayed: true`) and places nothing; the same key with a
/// different body is refused with 422.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), request_body = NewOrder,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$",
        description = "1-255 visible ASCII characters identifying this request across retries")),
    responses(
        (status = 201, description = "The order was placed and its payment authorised (or, with `Idempotent-Replayed: true`, the first answer to this Idempotency-Key)",
            body = Order, headers(
            ("Location" = String, description = "URL of the order"),
            ("ETag" = String, description = "Version of the order, for If-Match"))),
        (status = 402, description = "The payment was declined; the order was not placed and nothing was charged"),
        (status = 403, description = "Only customers and admins place orders"),
        (status = 409, description = "Shop closed, item unavailable, no shop can make the order, or the first request with this Idempotency-Key is still being processed (with Retry-After)"),
        (status = 422, description = "Invalid fields, unknown items, or an Idempotency-Key reused with another body"),
        (status = 502, description = "The payment provider did not confirm the payment; the order was not placed"),
        (status = 503, description = "Payments cannot be taken right now, the database is unavailable, or the request took too long; retry later"),
    ))]
async fn create_order(
    State(state): State<AppState>,
    Orderer(caller): Orderer,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    Json(order): Json<NewOrder>,
) -> ApiResult<Response> {
    let account = caller.account()?;
    let customer_id = (account.role == Role::Customer).then_some(account.id);
    let order = order.validate()?;
    let idempotency = key.map(|key| IdempotencyKey {
        scope: caller.idempotency_scope(),
        key,
        request_hash: request_hash(&order),
    });
    // Twice at most: a retry that finds its key released by the first request's "try again"
    // answer (see `settled_answer`) places the order anew.
    for attempt in 0..2 {
        let placing = order_spans::place_order(attempt);
        let placed = place(&state, &order, &caller, customer_id, idempotency.clone())
            .instrument(placing.clone())
            .await;
        order_spans::placed(&placing, &placed);
        let (outcome, payment) = match placed? {
            Ok(placed) => placed,
            Err(error) => return replay_or(&state, idempotency.as_ref(), error).await,
        };
        match outcome {
            PlaceOutcome::Created(order) => {
                return placed_answer(&state, &order, &payment, &caller.actor()).await;
            }
            PlaceOutcome::Replayed(stored) => return Ok(replay(stored)),
            PlaceOutcome::KeyReused => return Err(key_reused()),
            PlaceOutcome::InProgress { order_id } => {
                // A retry (often the balancer's, after the first replica died or the
                // connection broke) of a request whose payment is not settled yet.
                let Some(key) = &idempotency else {
                    return Ok(in_progress());
                };
                let answer =
                    settled_answer(&state, &key.scope, &key.key, order_id, &caller.actor()).await?;
                match answer {
                    Some(response) => return Ok(response),
                    None if attempt == 0 => continue,
                    None => return Ok(in_progress()),
                }
            }
        }
    }
    Ok(in_progress())
}

/// Prepares the order (shop, prices, estimate) and writes it, claiming its key in the same
/// statement. The inner error is a refusal of the order itself, which an answered key may
/// still replay (see [`replay_or`]); the outer one a failure of the store's write.
async fn place(
    state: &AppState,
    order: &NewOrder,
    caller: &Caller,
    customer_id: Option<Uuid>,
    idempotency: Option<IdempotencyKey>,
) -> order_spans::Placed {
    let prepared = placement::prepare(state, order, caller.actor(), customer_id, idempotency).await;
    let placement = match prepared {
        Ok(placement) => placement,
        Err(error) => return Ok(Err(error)),
    };
    let payment = placement.payment.clone();
    let outcome = state.store.place_order(placement).await?;
    Ok(Ok((outcome, payment)))
}

/// The answer to a request whose order cannot be prepared now (a shop closed, an item gone):
/// the stored first answer when its `Idempotency-Key` was already answered — a replay is
/// answered as the first request was, whatever changed since — else `error`.
///
/// Placing claims the key in the same statement as the order, so a replay of an answered
/// request is found there too; looking the key up only on this path saves every new order a
/// round trip.
async fn replay_or(
    state: &AppState,
    key: Option<&IdempotencyKey>,
    error: ApiError,
) -> ApiResult<Response> {
    let Some(key) = key else {
        return Err(error);
    };
    match state.store.find_idempotent(&key.scope, &key.key).await? {
        Some((hash, stored)) if hash == key.request_hash => Ok(replay(stored)),
        Some(_) => Err(key_reused()),
        None => Err(error),
    }
}

/// The answer to a freshly written order: its payment authorised, the order (201) or the
/// problem saying why the payment did not go through.
async fn placed_answer(
    state: &AppState,
    order: &Order,
    payment: &NewPayment,
    actor: &brigade_domain::Actor,
) -> ApiResult<Response> {
    let settling = order_spans::settle_payment();
    let settled = checkout::authorize(state, order, payment, actor)
        .instrument(settling.clone())
        .await
        .inspect_err(|error| order_spans::failed(&settling, error))?;
    settling.record("brigade.payment.status", settled.payment.status.as_str());
    let order = settled.order;
    if order.status != OrderStatus::Placed {
        metrics::counter!(names::ORDER_STATUS_CHANGES, "status" => order.status.as_str())
            .increment(1);
        tracing::info!(order_id = %order.id, status = %order.status,
            payment_status = %settled.payment.status, "order not placed: payment did not go through");
        return Ok(checkout::payment_problem(&order, &settled.payment).into_response());
    }
    metrics::counter!(names::ORDERS_PLACED).increment(1);
    metrics::counter!(names::ORDER_REVENUE, "currency" => order.currency.clone())
        .increment(u64::try_from(order.total_minor).unwrap_or(0));
    metrics::counter!(names::ORDER_STATUS_CHANGES, "status" => "placed").increment(1);
    catalogue_cache::add_load(state, order.shop_id, &work_by_station(&order)).await;
    tracing::info!(order_id = %order.id, shop_id = %order.shop_id, total_minor = order.total_minor,
        eta_seconds = order.eta_seconds, "order placed");
    Ok(order_response(StatusCode::CREATED, &order))
}

/// The answer to a retry whose first request's payment is not settled: wait a moment for the
/// first request to finish; if it does not (its replica died mid-call, or it failed on an
/// unavailable database after the provider answered), settle the payment here — the provider
/// call repeats the first one's idempotency key, so it finds the charge the first made or
/// makes it once, and settling an already settled payment changes nothing.
///
/// `None` when the key was released meanwhile (the first request's answer was a 5xx): the
/// retry is then a new request.
async fn settled_answer(
    state: &AppState,
    scope: &str,
    key: &str,
    order_id: Option<Uuid>,
    actor: &brigade_domain::Actor,
) -> ApiResult<Option<Response>> {
    let waiting = order_spans::wait_for_first();
    let answer = wait_for_first(state, scope, key, order_id, actor)
        .instrument(waiting.clone())
        .await;
    match &answer {
        Ok(answer) => {
            let outcome = if answer.is_some() {
                "answered"
            } else {
                "released"
            };
            waiting.record("brigade.order.outcome", outcome);
        }
        Err(error) => order_spans::failed(&waiting, error),
    }
    answer
}

/// The wait of [`settled_answer`]: the first request's stored answer, polled for 500 ms,
/// then the payment settled here if it is still pending.
async fn wait_for_first(
    state: &AppState,
    scope: &str,
    key: &str,
    order_id: Option<Uuid>,
    actor: &brigade_domain::Actor,
) -> ApiResult<Option<Response>> {
    let patience = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    while tokio::time::Instant::now() < patience {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        if let Some((_, stored)) = state.store.find_idempotent(scope, key).await? {
            return Ok(Some(replay(stored)));
        }
    }
    if let Some(order_id) = order_id {
        checkout::take_over(state, order_id, actor).await?;
    }
    let stored = state.store.find_idempotent(scope, key).await?;
    Ok(stored.map(|(_, stored)| replay(stored)))
}

/// 409 while the first request with this key still waits for its payment.
fn in_progress() -> Response {
    let mut response = Problem::conflict(
        "request-in-progress",
        "the first request with this Idempotency-Key is still being processed; retry shortly",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The order's work per station, from its tickets.
fn work_by_station(order: &Order) -> BTreeMap<Uuid, i64> {
    order
        .tickets
        .iter()
        .map(|ticket| (ticket.station_id, ticket.work_seconds))
        .collect()
}

/// Hash of the parsed request: two bodies that differ only in whitespace or key order are the
/// same request.
fn request_hash(order: &NewOrder) -> String {
    let canonical = serde_json::to_vec(order).unwrap_or_default();
    brigade_core::ids::hex(&Sha256::digest(&canonical))
}

fn key_reused() -> ApiError {
    Problem {
        errors: vec![FieldError::new(
            "Idempotency-Key",
            "was already used with a different request body",
        )],
        ..Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key reused",
        )
        .with_detail("this key was already used with a different request body; use a new key")
    }
    .into()
}

/// The stored first response, sent again.
fn replay(stored: StoredResponse) -> Response {
    metrics::counter!(names::IDEMPOTENT_REPLAYS).increment(1);
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED);
    // The first answer was the order, or the problem saying why its payment failed.
    let (content_type, order) = if status.is_success() {
        (
            "application/json",
            serde_json::from_str::<Order>(&stored.body).ok(),
        )
    } else {
        ("application/problem+json", None)
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        stored.body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    if let Some(order) = order {
        insert_order_headers(headers, &order);
    }
    response
}

fn order_response(status: StatusCode, order: &Order) -> Response {
    let mut response = (status, axum::Json(order)).into_response();
    insert_order_headers(response.headers_mut(), order);
    response
}

fn insert_order_headers(headers: &mut HeaderMap, order: &Order) {
    if let Ok(value) = HeaderValue::from_str(&etag(order.version)) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("/api/v1/orders/{}", order.id)) {
        headers.insert(header::LOCATION, value);
    }
}

/// One order with lines, tickets and status history.
///
/// Roles: its customer; staff of its shop; couriers of its shop once it is ready; admin.
/// Anyone else gets 404.
///
/// Send `If-None-Match` with the last `ETag` to poll cheaply: 304 while nothing changed.
#[utoipa::path(get, path = "/api/v1/orders/{order_id}", tag = "orders", security(("bearer" = [])),
    params(("order_id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order, headers(("ETag" = String, description = "Version of the order"))),
        (status = 304, description = "Not modified since the ETag in If-None-Match"),
        (status = 404, description = "No such order, or not visible to this caller"),
    ))]
async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.account()?;
    let order = visible_order(&state, &caller, order_id).await?;
    let current = etag(order.version);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim().trim_start_matches("W/") == current)
        });
    if unchanged {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        insert_order_headers(response.headers_mut(), &order);
        return Ok(response);
    }
    Ok(order_response(StatusCode::OK, &order))
}

/// Query of `GET /orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Only this shop's orders.
    shop_id: Option<Uuid>,
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>)]
    status: Option<OrderStatus>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{22}$")]
    cursor: Option<String>,
}

/// A page of orders.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    /// Orders, newest first.
    pub items: Vec<OrderSummary>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Lists orders, newest first, with cursor pagination (stable under concurrent inserts).
///
/// Roles: customers see their own orders, staff their shop's, couriers their shop's ready
/// (or, with `status`, out-for-delivery and delivered) orders, admins all.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), params(OrderQuery),
    responses(
        (status = 200, description = "A page of orders, newest first", body = OrderPage),
        (status = 403, description = "Couriers may list only ready, out_for_delivery and delivered orders"),
    ))]
async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<OrderQuery>,
) -> ApiResult<axum::Json<OrderPage>> {
    let account = caller.account()?;
    // Each role sees its own slice; filters narrow it further, never widen it.
    let (shop_id, customer_id, status) = match account.role {
        Role::Admin => (query.shop_id, None, query.status),
        Role::Customer => (query.shop_id, Some(account.id), query.status),
        Role::Staff => (account.shop_id, None, query.status),
        Role::Courier => match query.status {
            None => (account.shop_id, None, Some(OrderStatus::Ready)),
            Some(
                status
                @ (OrderStatus::Ready | OrderStatus::OutForDelivery | OrderStatus::Delivered),
            ) => (account.shop_id, None, Some(status)),
            Some(_) => {
                return Err(
                    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed")
                        .with_detail("couriers see ready, out_for_delivery and delivered orders")
                        .into(),
                );
            }
        },
    };
    if matches!(account.role, Role::Staff | Role::Courier)
        && query
            .shop_id
            .is_some_and(|wanted| Some(wanted) != account.shop_id)
    {
        return Ok(axum::Json(OrderPage {
            items: Vec::new(),
            next_cursor: None,
        }));
    }
    let limit = page::limit(query.limit)?;
    let before = page::cursor(query.cursor.as_deref())?;
    let items = state
        .store
        .list_orders(&OrderFilter {
            shop_id,
            status,
            customer_id,
            before,
            limit,
        })
        .await?;
    let next_cursor = page::next_cursor(&items, limit, |order| order.id);
    Ok(axum::Json(OrderPage { items, next_cursor }))
}

/// Body of `PATCH /orders/{order_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// The status to move to: `accepted`, `out_for_delivery`, `delivered` or `cancelled`
    /// (`preparing` and `ready` follow from the kitchen's tickets).
    pub status: OrderStatus,
}

/// Moves an order along its lifecycle. Requires `If-Match` with the order's current `ETag`.
///
/// Roles: its customer may cancel; staff of its shop may accept or cancel; couriers of its
/// shop may set out_for_delivery and delivered; admins anything the lifecycle allows.
#[utoipa::path(patch, path = "/api/v1/orders/{order_id}", tag = "orders", security(("bearer" = [])), request_body = StatusChange,
    params(
        ("order_id" = Uuid, Path, description = "Order id"),
        ("If-Match" = String, Header, pattern = r#"^(\*|"[0-9]{1,18}")$"#, description = "ETag of the order as last read, or *"),
    ),
    responses(
        (status = 200, description = "The order in its new status", body = Order, headers(("ETag" = String, description = "New version"))),
        (status = 403, description = "The caller's role may not request this status"),
        (status = 404, description = "No such order, or not visible to this caller"),
        (status = 409, description = "The lifecycle does not allow this change"),
        (status = 412, description = "The order changed since it was read"),
        (status = 428, description = "If-Match is missing"),
    ))]
async fn update_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
    headers: HeaderMap,
    Json(change): Json<StatusChange>,
) -> ApiResult<Response> {
    caller.account()?;
    let current = visible_order(&state, &caller, order_id).await?;
    caller.may_request(change.status)?;
    // `If-Match: *` asks only that the order exists.
    let expected = if_match(&headers)?.unwrap_or(current.version);
    let order = state
        .store
        .transition_order(order_id, expected, change.status, &caller.actor())
        .await?;
    checkout::follow_order(&state, &order).await;
    metrics::counter!(names::ORDER_STATUS_CHANGES, "status" => order.status.as_str()).increment(1);
    if order.status == OrderStatus::Cancelled {
        catalogue_cache::forget_load(&state, order.shop_id).await;
    }
    tracing::info!(order_id = %order.id, status = %order.status, version = order.version, "order status changed");
    Ok(order_response(StatusCode::OK, &order))
}

/// The order if this caller may see it; 404 otherwise, whether or not it exists.
async fn visible_order(state: &AppState, caller: &Caller, order_id: Uuid) -> ApiResult<Order> {
    match state.store.get_order(order_id).await {
        Ok(order) if caller.may_see(&order) => Ok(order),
        Ok(_) | Err(brigade_store::StoreError::NotFound(_)) => {
            Err(crate::error::not_found("no order with this id"))
        }
        Err(other) => Err(other.into()),
    }
}

/// Reads `If-Match`: `Some(version)`, `None` for `*`, 428 when missing, 400 when malformed.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            "If-Match is required",
        )
        .with_detail("send If-Match with the ETag of the order as you last read it")
        .into());
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    text.strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .and_then(|version| version.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            Problem::invalid(
                StatusCode::BAD_REQUEST,
                vec![FieldError::new(
                    "If-Match",
                    "must be an ETag returned by this API, such as \"3\", or *",
                )],
            )
            .into()
        })
}

//! Who may do what: every role against every kind of endpoint, from one table.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json, order_body};

/// The callers of the matrix, in column order.
const ROLES: [&str; 7] = [
    "anonymous",
    "owner",
    "other customer",
    "staff",
    "other staff",
    "courier",
    "admin",
];

/// Any 2xx (for actions whose exact success code depends on the state, e.g. 200 or 204).
const OK: u16 = 2;

/// What a row acts on, made fresh for each caller when the action changes it.
#[derive(Clone, Copy)]
enum Target {
    Fixed,
    PlacedOrder,
    ReadyOrder,
}

struct Row {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    target: Target,
    expect: [u16; 7],
}

fn row(
    method: Method,
    path: &'static str,
    body: Option<Value>,
    target: Target,
    expect: [u16; 7],
) -> Row {
    Row {
        method,
        path,
        body,
        target,
        expect,
    }
}

struct World {
    tokens: Vec<Option<String>>,
    shop: String,
    station: String,
    pizza: String,
    owner: String,
}

async fn world(app: &TestApp) -> World {
    let a = app.fixture("Shop A", 52.51, 13.40).await;
    let b = app.fixture("Shop B", 52.52, 13.40).await;
    let owner = app.log_in_new("owner@example.org").await;
    let other = app.log_in_new("other@example.org").await;
    let staff = app
        .log_in_staff("staff.a@example.org", "staff", &a.shop_id())
        .await;
    let other_staff = app
        .log_in_staff("staff.b@example.org", "staff", &b.shop_id())
        .await;
    let courier = app
        .log_in_staff("courier.a@example.org", "courier", &a.shop_id())
        .await;
    World {
        tokens: vec![
            None,
            Some(owner.clone()),
            Some(other),
            Some(staff),
            Some(other_staff),
            Some(courier),
            None,
        ],
        shop: a.shop_id(),
        station: a.pizza_station.clone(),
        pizza: a.pizza.clone(),
        owner,
    }
}

/// An order placed by the owner at shop A.
async fn placed(app: &TestApp, world: &World) -> Value {
    let response = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(&world.owner)
        .json(&order_body(Some(&world.shop), &[(&world.pizza, 1)]))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::CREATED).await
}

/// An order of the owner walked to `ready` by the admin (the kitchen must have nothing else
/// claimable, which holds because every ready order is made before any other is accepted).
async fn ready(app: &TestApp, world: &World) -> Value {
    let order = placed(app, world).await;
    let accepted = expect_json(app.transition(&order, "accepted").await, StatusCode::OK).await;
    let ticket = expect_json(
        app.act(&format!("/api/v1/kitchen/stations/{}/claim", world.station))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ticket["order_id"], accepted["id"]);
    expect_json(
        app.act(&format!(
            "/api/v1/kitchen/tickets/{}/complete",
            ticket["id"].as_str().unwrap()
        ))
        .await,
        StatusCode::OK,
    )
    .await;
    app.read_order(order["id"].as_str().unwrap()).await
}

both_backends! {
    async fn every_role_gets_exactly_its_rights(app) {
        let world = world(&app).await;
        let r = |m, p, b, t, e| row(m, p, b, t, e);
        use Target::*;
        let rows = [
            r(Method::POST, "/api/v1/shops", Some(json!({"name": "Shop {n}", "region": "x", "location": {"lat": 1.0, "lon": 1.0}})), Fixed, [401, 403, 403, 403, 403, 403, 201]),
            r(Method::PATCH, "/api/v1/shops/{shop}", Some(json!({"open": true})), Fixed, [401, 403, 403, 403, 403, 403, 200]),
            r(Method::POST, "/api/v1/shops/{shop}/stations", Some(json!({"name": "oven {n}", "capacity": 1, "prep_seconds": {"cat{n}": 60}})), Fixed, [401, 403, 403, 403, 403, 403, 201]),
            r(Method::PUT, "/api/v1/shops/{shop}/items/{pizza}", Some(json!({"available": true})), Fixed, [401, 403, 403, 403, 403, 403, 204]),
            r(Method::POST, "/api/v1/items", Some(json!({"sku": "sku{n}", "name": "x", "category": "pizza", "price_minor": 1, "currency": "EUR"})), Fixed, [401, 403, 403, 403, 403, 403, 201]),
            r(Method::GET, "/api/v1/shops", None, Fixed, [200; 7]),
            r(Method::GET, "/api/v1/shops/{shop}/menu", None, Fixed, [200; 7]),
            r(Method::GET, "/api/v1/items", None, Fixed, [200; 7]),
            r(Method::POST, "/api/v1/orders", Some(json!("{order}")), Fixed, [401, 201, 201, 403, 403, 403, 201]),
            r(Method::GET, "/api/v1/orders", None, Fixed, [401, 200, 200, 200, 200, 200, 200]),
            r(Method::GET, "/api/v1/orders/{order}", None, PlacedOrder, [401, 200, 404, 200, 404, 404, 200]),
            r(Method::GET, "/api/v1/orders/{order}", None, ReadyOrder, [401, 200, 404, 200, 404, 200, 200]),
            r(Method::PATCH, "/api/v1/orders/{order}", Some(json!({"status": "accepted"})), PlacedOrder, [401, 403, 404, 200, 404, 404, 200]),
            r(Method::PATCH, "/api/v1/orders/{order}", Some(json!({"status": "cancelled"})), PlacedOrder, [401, 200, 404, 200, 404, 404, 200]),
            r(Method::PATCH, "/api/v1/orders/{order}", Some(json!({"status": "out_for_delivery"})), ReadyOrder, [401, 403, 404, 403, 404, 200, 200]),
            r(Method::GET, "/api/v1/kitchen/stations/{station}/tickets", None, Fixed, [401, 403, 403, 200, 404, 403, 200]),
            r(Method::POST, "/api/v1/kitchen/stations/{station}/claim", None, Fixed, [401, 403, 403, OK, 404, 403, OK]),
            r(Method::GET, "/api/v1/admin/accounts", None, Fixed, [401, 403, 403, 403, 403, 403, 200]),
            r(Method::POST, "/api/v1/admin/accounts", Some(json!({"email": "new{n}@example.org", "password": "long enough 1", "role": "customer"})), Fixed, [401, 403, 403, 403, 403, 403, 201]),
            r(Method::GET, "/api/v1/accounts/me", None, Fixed, [401, 200, 200, 200, 200, 200, 200]),
            r(Method::GET, "/api/v1/admin/audit", None, Fixed, [401, 403, 403, 403, 403, 403, 200]),
            r(Method::GET, "/api/v1/admin/faults", None, Fixed, [401, 403, 403, 403, 403, 403, 200]),
            r(Method::PUT, "/api/v1/admin/faults", Some(json!({"error_ratio": 0.0})), Fixed, [401, 403, 403, 403, 403, 403, 200]),
        ];
        // Ready orders first, while nothing else is claimable.
        let mut ready_orders = Vec::new();
        for _ in 0..rows.iter().filter(|row| matches!(row.target, ReadyOrder)).count() * ROLES.len() {
            ready_orders.push(ready(&app, &world).await);
        }
        let mut failures = Vec::new();
        let mut n = 0;
        for row in &rows {
            for (column, role) in ROLES.iter().enumerate() {
                n += 1;
                let order = match row.target {
                    Fixed => None,
                    PlacedOrder => Some(placed(&app, &world).await),
                    ReadyOrder => ready_orders.pop(),
                };
                let path = row
                    .path
                    .replace("{shop}", &world.shop)
                    .replace("{station}", &world.station)
                    .replace("{pizza}", &world.pizza)
                    .replace("{order}", order.as_ref().map_or("", |o| o["id"].as_str().unwrap()));
                let body = row.body.as_ref().map(|body| {
                    if body == &json!("{order}") {
                        order_body(Some(&world.shop), &[(&world.pizza, 1)])
                    } else {
                        serde_json::from_str(&body.to_string().replace("{n}", &n.to_string())).unwrap()
                    }
                });
                // The admin column uses the app's own client, which carries the admin's token.
                let client = if column == 6 { app.client.clone() } else { app.anonymous() };
                let mut request = client.request(row.method.clone(), app.url(&path));
                if let Some(token) = &world.tokens[column] {
                    request = request.bearer_auth(token);
                }
                if let Some(order) = &order {
                    request = request.header("if-match", format!("\"{}\"", order["version"]));
                }
                if let Some(body) = body {
                    request = request.json(&body);
                }
                let status = request.send().await.unwrap().status().as_u16();
                let expected = row.expect[column];
                let matched = if expected == OK { (200..300).contains(&status) } else { status == expected };
                if !matched {
                    failures.push(format!("{} {} as {role}: got {status}, want {expected}", row.method, row.path));
                }
            }
        }
        assert!(failures.is_empty(), "{} of {} checks failed:\n{}", failures.len(), n, failures.join("\n"));
    }
}

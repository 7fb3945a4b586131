//! Placing orders (shortest ETA, idempotency), reading, listing and the lifecycle.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{expect_json, expect_problem, order_body, problem_fields};

both_backends! {
    async fn an_order_is_priced_split_into_tickets_and_estimated(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let response = app
            .post("/api/v1/orders", &order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 2), (&fixture.bread, 1)]))
            .await;
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        // Version 1 awaited the payment; version 2 is the paid, placed order.
        assert_eq!(response.headers()["etag"], "\"2\"");
        let order = expect_json(response, StatusCode::CREATED).await;
        assert_eq!(location, format!("/api/v1/orders/{}", order["id"].as_str().unwrap()));
        assert_eq!(order["status"], "placed");
        assert_eq!(order["version"], 2);
        assert_eq!(order["total_minor"], 2 * 1000 + 400);
        assert_eq!(order["currency"], "EUR");
        assert_eq!(order["shop_id"], fixture.shop_id().as_str());
        let tickets = order["tickets"].as_array().unwrap();
        assert_eq!(tickets.len(), 2, "one ticket per station");
        let pizza_ticket = tickets.iter().find(|t| t["station_id"] == fixture.pizza_station.as_str()).unwrap();
        assert_eq!(pizza_ticket["work_seconds"], 1200);
        assert_eq!(pizza_ticket["items"][0]["quantity"], 2);
        assert_eq!(pizza_ticket["status"], "queued");
        // Idle kitchen: the slower station decides (1200 s of pizza); delivery point is at
        // the shop, so only the 120 s handover follows.
        assert_eq!(order["eta_seconds"], 1200 + 120);
        assert_eq!(order["history"][0]["status"], "awaiting_payment");
        assert_eq!(order["history"][1]["status"], "placed", "placed once the payment was authorised");
        assert!(order["history"][0]["actor"].as_str().unwrap().starts_with("account:"), "{order}");
        assert_eq!(app.read_order(order["id"].as_str().unwrap()).await, order, "stored as returned");
    }

    async fn without_a_shop_the_shortest_eta_wins(app) {
        let near = app.fixture("Near", 52.51, 13.40).await;
        let far = app.fixture("Far", 52.55, 13.40).await; // about 4.5 km away
        let first = app.order(None, &[(&near.pizza, 1)]).await;
        assert_eq!(first["shop_id"], near.shop_id().as_str(), "idle kitchens: the nearer shop");
        // Fill the near shop's pizza station until the far shop is faster despite the ride.
        for _ in 0..6 {
            app.order(Some(&near.shop_id()), &[(&near.pizza, 4)]).await;
        }
        let rerouted = app.order(None, &[(&near.pizza, 1)]).await;
        assert_eq!(rerouted["shop_id"], far.shop_id().as_str(), "busy kitchen: the other shop");
        assert!(rerouted["distance_m"].as_i64().unwrap() > 4000, "{rerouted}");

        // A closed shop is never chosen.
        app.patch(&format!("/api/v1/shops/{}", far.shop_id()), &json!({"open": false}), None).await;
        let back = app.order(None, &[(&near.pizza, 1)]).await;
        assert_eq!(back["shop_id"], near.shop_id().as_str());
    }

    async fn orders_that_cannot_be_served_are_refused_without_writes(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let shop_id = fixture.shop_id();
        app.set_available(&shop_id, &fixture.bread, false).await;
        let unavailable = app.post("/api/v1/orders", &order_body(Some(&shop_id), &[(&fixture.bread, 1)])).await;
        let problem = expect_problem(unavailable, StatusCode::CONFLICT).await;
        assert_eq!(problem["type"], "urn:brigade:problem:item-unavailable");
        assert_eq!(problem_fields(&problem), ["items[0].item_id"]);
        let nowhere = app.post("/api/v1/orders", &order_body(None, &[(&fixture.pizza, 1), (&fixture.bread, 1)])).await;
        let problem = expect_problem(nowhere, StatusCode::CONFLICT).await;
        assert_eq!(problem["type"], "urn:brigade:problem:no-shop-available");

        let unknown = uuid::Uuid::now_v7().to_string();
        let missing = app.post("/api/v1/orders", &order_body(None, &[(&fixture.pizza, 1), (&unknown, 1)])).await;
        let problem = expect_problem(missing, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem_fields(&problem), ["items[1].item_id"]);
        let no_shop = app.post("/api/v1/orders", &order_body(Some(&unknown), &[(&fixture.pizza, 1)])).await;
        assert_eq!(problem_fields(&expect_problem(no_shop, StatusCode::UNPROCESSABLE_ENTITY).await), ["shop_id"]);

        let dollars = app.item("burger", "pizza", 800, "USD").await;
        app.set_available(&shop_id, &dollars, true).await;
        let mixed = app.post("/api/v1/orders", &order_body(Some(&shop_id), &[(&fixture.pizza, 1), (&dollars, 1)])).await;
        assert_eq!(problem_fields(&expect_problem(mixed, StatusCode::UNPROCESSABLE_ENTITY).await), ["items"]);

        app.patch(&format!("/api/v1/shops/{shop_id}"), &json!({"open": false}), None).await;
        let closed = app.post("/api/v1/orders", &order_body(Some(&shop_id), &[(&fixture.pizza, 1)])).await;
        let problem = expect_problem(closed, StatusCode::CONFLICT).await;
        assert_eq!(problem["type"], "urn:brigade:problem:shop-closed");

        let orders = expect_json(app.get("/api/v1/orders").await, StatusCode::OK).await;
        assert_eq!(orders["items"].as_array().unwrap().len(), 0, "no refused order was written");
        let queue = expect_json(app.get(&format!("/api/v1/kitchen/stations/{}/tickets", fixture.pizza_station)).await, StatusCode::OK).await;
        assert_eq!(queue.as_array().unwrap().len(), 0, "no ticket of a refused order was written");
    }

    async fn idempotency_key_replays_the_first_response(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let body = order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]);
        let send = |body: Value, key: &'static str| {
            let request = app.client.post(app.url("/api/v1/orders")).header("idempotency-key", key).json(&body);
            async move { request.send().await.unwrap() }
        };
        let first = send(body.clone(), "order-1").await;
        assert!(first.headers().get("idempotent-replayed").is_none());
        let first = expect_json(first, StatusCode::CREATED).await;
        let again = send(body.clone(), "order-1").await;
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.headers()["etag"], "\"2\"");
        let again = expect_json(again, StatusCode::CREATED).await;
        assert_eq!(again, first, "the replay is the first response");

        let mut other = body.clone();
        other["items"][0]["quantity"] = json!(2);
        let reused = send(other, "order-1").await;
        let problem = expect_problem(reused, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["type"], "urn:brigade:problem:idempotency-key-reused");
        assert_eq!(problem_fields(&problem), ["Idempotency-Key"]);

        // Many concurrent retries of one request place exactly one order; a retry arriving
        // while the first still waits for its payment waits for the first answer.
        let retries: Vec<_> = (0..8).map(|_| send(body.clone(), "order-2")).collect();
        let mut ids = HashSet::new();
        for response in futures_join(retries).await {
            let order = expect_json(response, StatusCode::CREATED).await;
            ids.insert(order["id"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids.len(), 1, "one order for eight concurrent retries");
        let orders = expect_json(app.get("/api/v1/orders").await, StatusCode::OK).await;
        assert_eq!(orders["items"].as_array().unwrap().len(), 2);
    }

    async fn orders_are_listed_newest_first_with_cursors_and_filters(app) {
        let a = app.fixture("A", 52.51, 13.40).await;
        let b = app.fixture("B", 52.52, 13.40).await;
        let mut placed = Vec::new();
        for i in 0..5 {
            let shop = if i % 2 == 0 { a.shop_id() } else { b.shop_id() };
            placed.push(app.order(Some(&shop), &[(&a.pizza, 1)]).await["id"].as_str().unwrap().to_owned());
        }
        let mut seen = Vec::new();
        let mut url = "/api/v1/orders?limit=2".to_owned();
        loop {
            let page = expect_json(app.get(&url).await, StatusCode::OK).await;
            seen.extend(page["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()));
            match page["next_cursor"].as_str() {
                Some(cursor) => url = format!("/api/v1/orders?limit=2&cursor={cursor}"),
                None => break,
            }
        }
        placed.reverse();
        assert_eq!(seen, placed, "every order once, newest first");

        let only_b = expect_json(app.get(&format!("/api/v1/orders?shop_id={}", b.shop_id())).await, StatusCode::OK).await;
        assert_eq!(only_b["items"].as_array().unwrap().len(), 2);
        let order = app.read_order(&placed[0]).await;
        app.transition(&order, "accepted").await;
        let accepted = expect_json(app.get("/api/v1/orders?status=accepted").await, StatusCode::OK).await;
        assert_eq!(accepted["items"][0]["id"], placed[0].as_str());
        assert_eq!(accepted["items"].as_array().unwrap().len(), 1);
    }

    async fn lifecycle_runs_through_the_kitchen_to_delivery(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let order = app.order(Some(&fixture.shop_id()), &[(&fixture.pizza, 1), (&fixture.bread, 1)]).await;
        let id = order["id"].as_str().unwrap().to_owned();
        let accepted = expect_json(app.transition(&order, "accepted").await, StatusCode::OK).await;
        assert_eq!(accepted["version"], 3);

        for ticket in accepted["tickets"].as_array().unwrap() {
            let ticket_id = ticket["id"].as_str().unwrap();
            expect_json(app.act(&format!("/api/v1/kitchen/tickets/{ticket_id}/claim")).await, StatusCode::OK).await;
        }
        assert_eq!(app.read_order(&id).await["status"], "preparing");
        let tickets = accepted["tickets"].as_array().unwrap();
        expect_json(app.act(&format!("/api/v1/kitchen/tickets/{}/complete", tickets[0]["id"].as_str().unwrap())).await, StatusCode::OK).await;
        assert_eq!(app.read_order(&id).await["status"], "preparing", "one ticket still cooking");
        expect_json(app.act(&format!("/api/v1/kitchen/tickets/{}/complete", tickets[1]["id"].as_str().unwrap())).await, StatusCode::OK).await;
        let ready = app.read_order(&id).await;
        assert_eq!(ready["status"], "ready", "the last ticket makes the order ready");

        let out = expect_json(app.transition(&ready, "out_for_delivery").await, StatusCode::OK).await;
        let delivered = expect_json(app.transition(&out, "delivered").await, StatusCode::OK).await;
        let history: Vec<&str> = delivered["history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
        assert_eq!(history, ["awaiting_payment", "placed", "accepted", "preparing", "ready", "out_for_delivery", "delivered"]);
        assert_eq!(delivered["version"], 7);
    }

    async fn every_forbidden_transition_is_a_conflict(app) {
        let all = ["placed", "accepted", "preparing", "ready", "out_for_delivery", "delivered", "cancelled"];
        // Set only by the payment step, never requested.
        let targets = [&all[..], &["awaiting_payment", "payment_failed"]].concat();
        let allowed = [("placed", "accepted"), ("placed", "cancelled"), ("accepted", "cancelled"),
                       ("ready", "out_for_delivery"), ("out_for_delivery", "delivered")];
        for from in all {
            // A shop per starting status, so earlier orders never block this one's queue.
            let fixture = app.fixture(&format!("Shop {from}"), 52.51, 13.40).await;
            let order = order_in(&app, &fixture, from).await;
            for to in targets.iter().copied() {
                if allowed.contains(&(from, to)) {
                    continue;
                }
                let response = app.transition(&order, to).await;
                let problem = expect_problem(response, StatusCode::CONFLICT).await;
                let kind = problem["type"].as_str().unwrap();
                assert!(kind == "urn:brigade:problem:invalid-transition" || kind == "urn:brigade:problem:kitchen-only",
                        "{from} -> {to}: {problem}");
            }
            let unchanged = app.read_order(order["id"].as_str().unwrap()).await;
            assert_eq!(unchanged["status"], from);
            assert_eq!(unchanged["version"], order["version"], "refused changes write nothing");
        }
    }

    async fn cancelling_takes_tickets_off_the_queue(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let order = app.order(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]).await;
        let accepted = expect_json(app.transition(&order, "accepted").await, StatusCode::OK).await;
        let cancelled = expect_json(app.transition(&accepted, "cancelled").await, StatusCode::OK).await;
        assert_eq!(cancelled["status"], "cancelled");
        assert_eq!(cancelled["tickets"][0]["status"], "cancelled");
        let queue = expect_json(app.get(&format!("/api/v1/kitchen/stations/{}/tickets", fixture.pizza_station)).await, StatusCode::OK).await;
        assert!(queue.as_array().unwrap().is_empty());
        let load = expect_json(app.get(&format!("/api/v1/shops/{}/load", fixture.shop_id())).await, StatusCode::OK).await;
        assert!(load.as_array().unwrap().iter().all(|l| l["queued_work_seconds"] == 0), "{load}");
    }

    async fn updates_need_the_current_version(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let order = app.order(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]).await;
        let url = format!("/api/v1/orders/{}", order["id"].as_str().unwrap());
        let missing = app.patch(&url, &json!({"status": "accepted"}), None).await;
        expect_problem(missing, StatusCode::PRECONDITION_REQUIRED).await;
        let malformed = app.patch(&url, &json!({"status": "accepted"}), Some("v1")).await;
        assert_eq!(problem_fields(&expect_problem(malformed, StatusCode::BAD_REQUEST).await), ["If-Match"]);
        let stale = app.patch(&url, &json!({"status": "accepted"}), Some("\"7\"")).await;
        assert_eq!(stale.headers()["etag"], "\"2\"", "412 tells the current version");
        expect_problem(stale, StatusCode::PRECONDITION_FAILED).await;
        let ok = app.patch(&url, &json!({"status": "accepted"}), Some("\"2\"")).await;
        assert_eq!(ok.headers()["etag"], "\"3\"");
        // A second writer holding the old version loses.
        let lost = app.patch(&url, &json!({"status": "cancelled"}), Some("\"2\"")).await;
        expect_problem(lost, StatusCode::PRECONDITION_FAILED).await;
        let any = app.patch(&url, &json!({"status": "cancelled"}), Some("*")).await;
        assert_eq!(expect_json(any, StatusCode::OK).await["status"], "cancelled");
        let unknown = app.patch(&format!("/api/v1/orders/{}", uuid::Uuid::now_v7()), &json!({"status": "accepted"}), Some("\"1\"")).await;
        expect_problem(unknown, StatusCode::NOT_FOUND).await;
        let bad_status = app.patch(&url, &json!({"status": "eaten"}), Some("\"3\"")).await;
        assert_eq!(problem_fields(&expect_problem(bad_status, StatusCode::UNPROCESSABLE_ENTITY).await), ["status"]);
    }

    async fn polling_with_the_etag_is_cheap(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let order = app.order(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]).await;
        let url = app.url(&format!("/api/v1/orders/{}", order["id"].as_str().unwrap()));
        let unchanged = app.client.get(&url).header("if-none-match", "\"2\"").send().await.unwrap();
        assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
        app.transition(&order, "accepted").await;
        let changed = app.client.get(&url).header("if-none-match", "\"2\"").send().await.unwrap();
        assert_eq!(changed.status(), StatusCode::OK);
        expect_problem(app.get(&format!("/api/v1/orders/{}", uuid::Uuid::now_v7())).await, StatusCode::NOT_FOUND).await;
    }
}

/// Places an order and walks it to `status`.
async fn order_in(
    app: &crate::helpers::TestApp,
    fixture: &crate::helpers::Fixture,
    status: &str,
) -> Value {
    let mut order = app
        .order(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)])
        .await;
    let id = order["id"].as_str().unwrap().to_owned();
    let steps: &[&str] = match status {
        "placed" => &[],
        "accepted" => &["accepted"],
        "preparing" => &["accepted", "claim"],
        "ready" => &["accepted", "claim", "complete"],
        "out_for_delivery" => &["accepted", "claim", "complete", "out_for_delivery"],
        "delivered" => &[
            "accepted",
            "claim",
            "complete",
            "out_for_delivery",
            "delivered",
        ],
        "cancelled" => &["cancelled"],
        other => panic!("unknown status {other}"),
    };
    for step in steps {
        let ticket = order["tickets"][0]["id"].as_str().unwrap().to_owned();
        match *step {
            "claim" => {
                expect_json(
                    app.act(&format!("/api/v1/kitchen/tickets/{ticket}/claim"))
                        .await,
                    StatusCode::OK,
                )
                .await;
            }
            "complete" => {
                expect_json(
                    app.act(&format!("/api/v1/kitchen/tickets/{ticket}/complete"))
                        .await,
                    StatusCode::OK,
                )
                .await;
            }
            to => {
                expect_json(app.transition(&order, to).await, StatusCode::OK).await;
            }
        }
        order = app.read_order(&id).await;
    }
    assert_eq!(order["status"], status);
    order
}

/// Awaits all futures concurrently.
async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

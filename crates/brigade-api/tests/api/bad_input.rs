//! Bad input gets a 4xx problem naming what is wrong — never a 500, a hang or a partial write.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{expect_json, expect_problem, order_body, problem_fields};

both_backends! {
    async fn malformed_bodies_are_400_and_wrong_shapes_422(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let raw = |body: &'static str, content_type: &'static str| {
            app.client.post(app.url("/api/v1/orders")).header("content-type", content_type).body(body).send()
        };
        expect_problem(raw("{\"items\": [", "application/json").await.unwrap(), StatusCode::BAD_REQUEST).await;
        expect_problem(raw("", "application/json").await.unwrap(), StatusCode::BAD_REQUEST).await;
        expect_problem(raw("{} {}", "application/json").await.unwrap(), StatusCode::BAD_REQUEST).await;
        expect_problem(raw("{}", "text/plain").await.unwrap(), StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

        let cases = [
            (json!({"items": [], "delivery": {"lat": 1.0, "lon": 1.0}, "tip": 5}), "tip"),
            (json!({"items": [{"item_id": fixture.pizza, "quantity": "two"}], "delivery": {"lat": 1.0, "lon": 1.0}}), "items[0].quantity"),
            (json!({"items": [{"item_id": fixture.pizza}], "delivery": {"lat": 1.0, "lon": 1.0}}), "items[0].quantity"),
            (json!({"items": [{"item_id": fixture.pizza, "quantity": 1}]}), "delivery"),
            (json!({"items": [{"item_id": fixture.pizza, "quantity": -1}], "delivery": {"lat": 1.0, "lon": 1.0}}), "items[0].quantity"),
            (json!({"items": [{"item_id": fixture.pizza, "quantity": 100}], "delivery": {"lat": 1.0, "lon": 1.0}}), "items[0].quantity"),
            (json!({"items": [], "delivery": {"lat": 1.0, "lon": 1.0}}), "items"),
            (json!({"items": [{"item_id": fixture.pizza, "quantity": 1}], "delivery": {"lat": 91.0, "lon": 1.0}}), "delivery.lat"),
            (json!({"items": [{"item_id": "pizza", "quantity": 1}], "delivery": {"lat": 1.0, "lon": 1.0}}), "items[0].item_id"),
            (json!([1, 2]), "body"),
        ];
        for (body, field) in cases {
            let problem = expect_problem(app.post("/api/v1/orders", &body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(problem_fields(&problem), [field], "{body}");
        }
        let orders = expect_json(app.get("/api/v1/orders").await, StatusCode::OK).await;
        assert!(orders["items"].as_array().unwrap().is_empty(), "bad input wrote nothing");
    }

    async fn oversized_bodies_are_413(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let mut body = order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]);
        body["padding"] = json!("x".repeat(100 * 1024));
        let response = app.post("/api/v1/orders", &body).await;
        let problem = expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
        assert_eq!(problem["type"], "urn:brigade:problem:payload-too-large");
    }

    async fn unknown_routes_methods_and_parameters_are_named(app) {
        let problem = expect_problem(app.get("/api/v1/nothing-here").await, StatusCode::NOT_FOUND).await;
        assert_eq!(problem["type"], "urn:brigade:problem:not-found");
        let wrong_method = app.client.delete(app.url("/api/v1/orders")).send().await.unwrap();
        expect_problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=many", "limit"),
            ("cursor=not-a-cursor", "cursor"),
            ("status=eaten", "status"),
            ("shop_id=12", "shop_id"),
            ("colour=red", "colour"),
        ] {
            let problem = expect_problem(app.get(&format!("/api/v1/orders?{query}")).await, StatusCode::BAD_REQUEST).await;
            assert_eq!(problem_fields(&problem), [field], "{query}");
        }
        let bad_key = app
            .client
            .post(app.url("/api/v1/orders"))
            .header("idempotency-key", "has space")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(problem_fields(&expect_problem(bad_key, StatusCode::BAD_REQUEST).await), ["Idempotency-Key"]);
        let bad_ticket = app.act("/api/v1/kitchen/tickets/123/claim").await;
        assert_eq!(problem_fields(&expect_problem(bad_ticket, StatusCode::BAD_REQUEST).await), ["ticket_id"]);
    }

    async fn control_characters_are_422_naming_the_field(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let shop = fixture.shop_id();
        let nul = "a\u{0}b";
        let bodies = [
            ("POST", "/api/v1/shops".to_owned(), json!({"name": nul, "region": "x", "location": {"lat": 1.0, "lon": 1.0}}), "name"),
            ("POST", "/api/v1/shops".to_owned(), json!({"name": "ok", "region": "a\u{1b}[31m", "location": {"lat": 1.0, "lon": 1.0}}), "region"),
            ("PATCH", format!("/api/v1/shops/{shop}"), json!({"name": nul}), "name"),
            ("POST", format!("/api/v1/shops/{shop}/stations"), json!({"name": nul, "capacity": 1, "prep_seconds": {"pizza": 60}}), "name"),
            ("POST", format!("/api/v1/shops/{shop}/stations"), json!({"name": "oven", "capacity": 1, "prep_seconds": {nul: 60}}), "prep_seconds.a\u{0}b"),
            ("POST", "/api/v1/items".to_owned(), json!({"sku": nul, "name": "x", "category": "pizza", "price_minor": 1, "currency": "EUR"}), "sku"),
            ("POST", "/api/v1/items".to_owned(), json!({"sku": "x", "name": nul, "category": "pizza", "price_minor": 1, "currency": "EUR"}), "name"),
            ("POST", "/api/v1/accounts".to_owned(), json!({"email": "a\u{0}@example.org", "password": "correct horse battery"}), "email"),
            ("POST", "/api/v1/sessions".to_owned(), json!({"email": "a\u{0}@example.org", "password": "correct horse battery"}), "email"),
            ("POST", "/api/v1/admin/accounts".to_owned(), json!({"email": "a\u{0}@example.org", "password": "correct horse battery", "role": "customer"}), "email"),
            ("POST", "/api/v1/orders".to_owned(), json!({"items": [{"item_id": nul, "quantity": 1}], "delivery": {"lat": 1.0, "lon": 1.0}}), "items[0].item_id"),
        ];
        for (method, path, body, field) in bodies {
            let response = app
                .client
                .request(method.parse().unwrap(), app.url(&path))
                .json(&body)
                .send()
                .await
                .unwrap();
            let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(problem_fields(&problem), [field], "{method} {path} {body}");
        }
        for (query, field) in [
            ("/api/v1/shops?region=a%00b", "region"),
            ("/api/v1/admin/audit?actor=a%00b", "actor"),
            ("/api/v1/admin/audit?entity=%07", "entity"),
            ("/api/v1/orders?cursor=%00", "cursor"),
            ("/api/v1/admin/reports/daily?from=%00", "from"),
        ] {
            let problem = expect_problem(app.get(query).await, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(problem_fields(&problem), [field], "{query}");
        }
        // Nothing was written and the service is as healthy as before.
        let shops = expect_json(app.get("/api/v1/shops").await, StatusCode::OK).await;
        assert_eq!(shops.as_array().unwrap().len(), 1);
    }
}

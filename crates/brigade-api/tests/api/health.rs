//! Health, metrics, OpenAPI, Swagger UI, request ids and trace context.

use reqwest::StatusCode;

use serde_json::json;

use crate::helpers::{expect_json, expect_problem, problem_fields};

both_backends! {
    async fn the_fault_switch_fails_api_requests_only_and_can_be_turned_off(app) {
        let faulty = app.replica_with(|s| s.faults.error_ratio = 1.0).await;
        let problem = expect_problem(faulty.get("/api/v1/shops").await, StatusCode::INTERNAL_SERVER_ERROR).await;
        assert_eq!(problem["type"], "urn:brigade:problem:injected-fault");
        assert_eq!(faulty.get("/health/ready").await.status(), StatusCode::OK, "health is never faulted");
        let metrics = faulty.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("http_response_status_code=\"500\""), "5xx are counted: alerts can see them");
        let bad = faulty.put("/api/v1/admin/faults", &json!({"error_ratio": 1.5})).await;
        assert_eq!(problem_fields(&expect_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await), ["error_ratio"]);
        let off = expect_json(faulty.put("/api/v1/admin/faults", &json!({"error_ratio": 0.0})).await, StatusCode::OK).await;
        assert_eq!(off["error_ratio"], 0.0);
        expect_json(faulty.get("/api/v1/shops").await, StatusCode::OK).await;
        let half = faulty.put("/api/v1/admin/faults", &json!({"error_ratio": 0.5})).await;
        expect_json(half, StatusCode::OK).await;
        let mut failed = 0;
        for _ in 0..10 {
            if faulty.get("/api/v1/shops").await.status() == StatusCode::INTERNAL_SERVER_ERROR {
                failed += 1;
            }
        }
        assert_eq!(failed, 5, "half of the requests fail");
        // The switch is per replica: the first one never failed.
        expect_json(app.get("/api/v1/shops").await, StatusCode::OK).await;
    }

    async fn health_endpoints_answer(app) {
        let live = expect_json(app.get("/health/live").await, StatusCode::OK).await;
        assert_eq!(live["status"], "live");
        let startup = expect_json(app.get("/health/startup").await, StatusCode::OK).await;
        assert_eq!(startup["status"], "started");
        let ready = expect_json(app.get("/health/ready").await, StatusCode::OK).await;
        assert_eq!(ready["status"], "ready");
        assert_eq!(ready["checks"]["database"]["status"], "up");
        let expected = match app.backend {
            crate::helpers::Backend::Sqlite => "sqlite",
            crate::helpers::Backend::Postgres => "postgres",
        };
        assert_eq!(ready["checks"]["database"]["kind"], expected);
        assert_eq!(ready["checks"]["cache"]["kind"], "memory");
    }

    async fn readiness_fails_once_shutdown_starts(app) {
        let mut app = app;
        assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
        app.shutdown.trigger();
        let server = app.server.take().unwrap();
        // drain_delay is 0 in tests, so the server stops; it must stop cleanly.
        server.await.unwrap().unwrap();
        assert!(app.client.get(app.url("/health/live")).send().await.is_err());
    }

    async fn metrics_expose_red_and_business_counters(app) {
        let fixture = app.fixture("Metrics", 52.52, 13.41).await;
        app.order(Some(&fixture.shop_id()), &[(&fixture.pizza, 2)]).await;
        app.get(&format!("/api/v1/shops/{}", fixture.shop_id())).await;
        let response = app.get("/metrics").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = response.text().await.unwrap();
        for needle in [
            "# TYPE http_server_request_duration_seconds histogram",
            "http_route=\"/api/v1/shops/{shop_id}\"",
            "http_response_status_code=\"201\"",
            "http_server_active_requests",
            "brigade_orders_placed_total",
            "brigade_order_revenue_minor_total{currency=\"EUR\"}",
            "brigade_db_pool_connections{state=\"idle\"}",
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        // Raw ids must never become label values.
        assert!(!text.contains(&fixture.shop_id()), "an id leaked into a label");
        crate::promtool::assert_accepts(&text, "a replica's /metrics");
    }

    async fn openapi_documents_every_route(app) {
        let doc = expect_json(app.get("/openapi.json").await, StatusCode::OK).await;
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
        let paths = doc["paths"].as_object().unwrap();
        let expected: &[(&str, &[&str])] = &[
            ("/api/v1/shops", &["get", "post"]),
            ("/api/v1/shops/{shop_id}", &["get", "patch"]),
            ("/api/v1/shops/{shop_id}/stations", &["get", "post"]),
            ("/api/v1/shops/{shop_id}/menu", &["get"]),
            ("/api/v1/shops/{shop_id}/items/{item_id}", &["put"]),
            ("/api/v1/shops/{shop_id}/load", &["get"]),
            ("/api/v1/items", &["get", "post"]),
            ("/api/v1/items/{item_id}", &["get"]),
            ("/api/v1/orders", &["get", "post"]),
            ("/api/v1/orders/{order_id}", &["get", "patch"]),
            ("/api/v1/kitchen/stations/{station_id}/tickets", &["get"]),
            ("/api/v1/kitchen/stations/{station_id}/claim", &["post"]),
            ("/api/v1/kitchen/tickets/{ticket_id}/claim", &["post"]),
            ("/api/v1/kitchen/tickets/{ticket_id}/complete", &["post"]),
            ("/api/v1/accounts", &["post"]),
            ("/api/v1/accounts/me", &["get"]),
            ("/api/v1/sessions", &["post"]),
            ("/api/v1/admin/accounts", &["get", "post"]),
            ("/api/v1/admin/accounts/{account_id}", &["patch"]),
            ("/api/v1/sessions/current", &["delete"]),
            ("/api/v1/admin/audit", &["get"]),
            ("/api/v1/client-errors", &["post"]),
            ("/api/v1/admin/faults", &["get", "put"]),
            ("/api/v1/admin/reports/daily", &["get"]),
            ("/api/v1/admin/reports/daily/refresh", &["post"]),
            ("/api/v1/admin/cache/warm", &["post"]),
            ("/health/live", &["get"]),
            ("/health/ready", &["get"]),
            ("/health/startup", &["get"]),
            ("/metrics", &["get"]),
        ];
        for (path, methods) in expected {
            let item = paths.get(*path).unwrap_or_else(|| panic!("{path} undocumented"));
            for method in *methods {
                assert!(item.get(*method).is_some(), "{method} {path} undocumented");
            }
        }
        assert_eq!(paths.len(), expected.len(), "undocumented or unexpected paths: {:?}", paths.keys());
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for schema in ["Problem", "Order", "NewOrder", "Shop", "Ticket", "QueuedTicket", "OrderPage"] {
            assert!(schemas.contains_key(schema), "schema {schema} missing");
        }
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        // Each protected operation says which roles may call it.
        for (path, method) in [("/api/v1/shops", "post"), ("/api/v1/orders", "post"), ("/api/v1/orders/{order_id}", "patch"),
                               ("/api/v1/kitchen/tickets/{ticket_id}/claim", "post"), ("/api/v1/admin/accounts", "get")] {
            let description = paths[path][method]["description"].as_str().unwrap_or_default();
            assert!(description.contains("Roles:"), "{method} {path}: {description}");
        }
        assert!(paths["/api/v1/accounts/me"]["get"]["security"][0]["bearer"].is_array());
        // Every operation documents its error answers as problem+json.
        let create = &paths["/api/v1/orders"]["post"]["responses"];
        assert!(create["422"]["content"]["application/problem+json"].is_object(), "{create}");
    }

    async fn swagger_ui_works_offline(app) {
        let page = app.get("/swagger-ui/").await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("swagger-ui"), "{html}");
        for asset in ["/swagger-ui/swagger-ui-bundle.js", "/swagger-ui/swagger-ui.css", "/swagger-ui/swagger-initializer.js"] {
            let response = app.get(asset).await;
            assert_eq!(response.status(), StatusCode::OK, "{asset}");
            let body = response.text().await.unwrap();
            assert!(!body.contains("https://unpkg.com") && !body.contains("cdn.jsdelivr"), "{asset} loads from the network");
        }
        let initializer = app.get("/swagger-ui/swagger-initializer.js").await.text().await.unwrap();
        assert!(initializer.contains("/openapi.json"), "{initializer}");
    }

    async fn request_id_and_trace_context_pass_through(app) {
        let response = app
            .client
            .get(app.url("/api/v1/orders/not-a-uuid"))
            .header("x-request-id", "req-42")
            .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "req-42");
        let traceparent = response.headers()["traceparent"].to_str().unwrap().to_owned();
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{traceparent}");
        assert!(!traceparent.contains("00f067aa0ba902b7"), "the server must start its own span");
        let problem = expect_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["instance"], "urn:brigade:request:req-42");

        let fresh = app.get("/health/live").await;
        let id = fresh.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "generated request ids are UUIDs: {id}");
    }
}

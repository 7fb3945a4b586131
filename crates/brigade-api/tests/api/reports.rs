//! The daily sales report (precomputed, refreshed on demand) and the cache warm-up: the work
//! `brigade up`'s scheduler does off-peak.

use brigade_core::config::CacheSettings;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// Today, UTC, as the API names days.
fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

/// The report's rows for one shop.
fn rows_of<'a>(report: &'a Value, shop_id: &str) -> Vec<&'a Value> {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["shop_id"] == shop_id)
        .collect()
}

/// Takes an order through the kitchen to `delivered` (its payment is captured on the way).
async fn deliver(app: &TestApp, order: &Value) {
    let accepted = expect_json(app.transition(order, "accepted").await, StatusCode::OK).await;
    for ticket in accepted["tickets"].as_array().unwrap() {
        let id = ticket["id"].as_str().unwrap();
        expect_json(
            app.act(&format!("/api/v1/kitchen/tickets/{id}/claim"))
                .await,
            StatusCode::OK,
        )
        .await;
        expect_json(
            app.act(&format!("/api/v1/kitchen/tickets/{id}/complete"))
                .await,
            StatusCode::OK,
        )
        .await;
    }
    let ready = app.read_order(accepted["id"].as_str().unwrap()).await;
    let out = expect_json(
        app.transition(&ready, "out_for_delivery").await,
        StatusCode::OK,
    )
    .await;
    expect_json(app.transition(&out, "delivered").await, StatusCode::OK).await;
}

both_backends! {
    async fn the_daily_report_counts_orders_deliveries_cancellations_and_revenue(app) {
        let mitte = app.fixture("Mitte", 52.51, 13.40).await;
        let kreuzberg = app.fixture("Kreuzberg", 52.49, 13.42).await;
        let delivered = app.order(Some(&mitte.shop_id()), &[(&mitte.pizza, 2), (&mitte.bread, 1)]).await;
        deliver(&app, &delivered).await;
        let cancelled = app.order(Some(&mitte.shop_id()), &[(&mitte.bread, 1)]).await;
        expect_json(app.transition(&cancelled, "cancelled").await, StatusCode::OK).await;
        app.order(Some(&mitte.shop_id()), &[(&mitte.pizza, 1)]).await;
        app.order(Some(&kreuzberg.shop_id()), &[(&kreuzberg.bread, 3)]).await;

        // Nothing is computed until a refresh runs: the report reads precomputed rows.
        let before = expect_json(app.get("/api/v1/admin/reports/daily").await, StatusCode::OK).await;
        assert_eq!(before["items"], serde_json::json!([]), "{before}");

        let refreshed = expect_json(
            app.post("/api/v1/admin/reports/daily/refresh", &Value::Null).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(refreshed["to"], today());
        assert_eq!(refreshed["items"].as_array().unwrap().len(), 2, "{refreshed}");

        let report = expect_json(app.get("/api/v1/admin/reports/daily").await, StatusCode::OK).await;
        assert_eq!(report["to"], today());
        let mitte_rows = rows_of(&report, &mitte.shop_id());
        assert_eq!(mitte_rows.len(), 1, "{report}");
        let row = mitte_rows[0];
        assert_eq!(row["day"], today());
        assert_eq!(row["shop_name"], "Mitte");
        assert_eq!(row["currency"], "EUR");
        assert_eq!(row["orders"], 3, "{row}");
        assert_eq!(row["delivered"], 1, "{row}");
        assert_eq!(row["cancelled"], 1, "{row}");
        assert_eq!(row["revenue_minor"], delivered["total_minor"], "captured payments only: {row}");
        let kreuzberg_rows = rows_of(&report, &kreuzberg.shop_id());
        assert_eq!(kreuzberg_rows[0]["orders"], 1);
        assert_eq!(kreuzberg_rows[0]["revenue_minor"], 0, "nothing captured yet");

        // One shop only.
        let one = expect_json(
            app.get(&format!("/api/v1/admin/reports/daily?shop_id={}&from={}&to={}", kreuzberg.shop_id(), today(), today())).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(one["items"].as_array().unwrap().len(), 1);
        assert_eq!(one["items"][0]["shop_name"], "Kreuzberg");

        // Refreshing again changes nothing but the time it was computed; a later order counts.
        expect_json(app.post("/api/v1/admin/reports/daily/refresh", &Value::Null).await, StatusCode::OK).await;
        let again = expect_json(app.get("/api/v1/admin/reports/daily").await, StatusCode::OK).await;
        assert_eq!(again["items"].as_array().unwrap().len(), 2);
        assert_eq!(rows_of(&again, &mitte.shop_id())[0]["orders"], 3);
        app.order(Some(&kreuzberg.shop_id()), &[(&kreuzberg.pizza, 1)]).await;
        let day = today();
        let refreshed = expect_json(
            app.post(&format!("/api/v1/admin/reports/daily/refresh?from={day}&to={day}"), &Value::Null).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(rows_of(&refreshed, &kreuzberg.shop_id())[0]["orders"], 2, "{refreshed}");

        // A day without orders has no rows.
        let empty = expect_json(
            app.get("/api/v1/admin/reports/daily?from=2020-01-01&to=2020-01-31").await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(empty["items"], serde_json::json!([]));
    }

    async fn bad_report_queries_name_the_parameter_and_only_admins_get_in(app) {
        for (query, field) in [
            ("from=2026-13-01", "from"),
            ("to=yesterday", "to"),
            ("from=2026-11-23&to=2026-11-22", "from"),
            ("from=2020-01-01&to=2026-11-22", "to"),
            ("shop_id=not-a-uuid", "shop_id"),
            ("colour=red", "colour"),
        ] {
            let problem = expect_problem(
                app.get(&format!("/api/v1/admin/reports/daily?{query}")).await,
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert_eq!(problem_fields(&problem), [field], "{query}: {problem}");
        }
        let problem = expect_problem(
            app.post("/api/v1/admin/reports/daily/refresh?from=2026-01-01&to=2026-03-01", &Value::Null).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(problem_fields(&problem), ["to"], "{problem}");
        expect_problem(
            app.get(&format!("/api/v1/admin/reports/daily?shop_id={}", uuid::Uuid::now_v7())).await,
            StatusCode::NOT_FOUND,
        )
        .await;

        let customer = app.log_in_new("counter@example.org").await;
        for (method, path) in [
            ("GET", "/api/v1/admin/reports/daily"),
            ("POST", "/api/v1/admin/reports/daily/refresh"),
            ("POST", "/api/v1/admin/cache/warm"),
        ] {
            let request = |client: reqwest::Client| match method {
                "GET" => client.get(app.url(path)),
                _ => client.post(app.url(path)),
            };
            let as_customer = request(app.anonymous()).bearer_auth(&customer).send().await.unwrap();
            expect_problem(as_customer, StatusCode::FORBIDDEN).await;
            let anonymous = request(app.anonymous()).send().await.unwrap();
            expect_problem(anonymous, StatusCode::UNAUTHORIZED).await;
        }
    }

    async fn the_report_routes_are_in_the_openapi_document(app) {
        let doc = expect_json(app.get("/openapi.json").await, StatusCode::OK).await;
        for path in ["/api/v1/admin/reports/daily", "/api/v1/admin/reports/daily/refresh", "/api/v1/admin/cache/warm"] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        let params: Vec<&str> = doc["paths"]["/api/v1/admin/reports/daily"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        // The read fence of a standby read comes after the report's own parameters.
        assert_eq!(params, ["shop_id", "from", "to", "Brigade-Read-After"]);
        let from = &doc["paths"]["/api/v1/admin/reports/daily"]["get"]["parameters"][1]["schema"];
        assert_eq!(from["format"], "date", "{from}");
    }
}

/// A warm-up replaces a stale cached menu: a second replica changes the menu (invalidating only
/// its own in-process cache), the first keeps serving its cached copy until it is warmed.
async fn warming_replaces_stale_entries(backend: Backend) {
    let Some((db, storage)) = TestDb::create(backend).await else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let long_lived = CacheSettings {
        menu_ttl_ms: 600_000,
        ..CacheSettings::default()
    };
    let first = spawn_on(std::sync::Arc::new(db), storage, long_lived, backend).await;
    let fixture = first.fixture("Mitte", 52.51, 13.40).await;
    let shop = fixture.shop_id();
    let available = |menu: &Value| {
        menu.as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["item_id"] == fixture.pizza.as_str())
            .map(|entry| entry["available"] == true)
            .unwrap()
    };
    let menu_path = format!("/api/v1/shops/{shop}/menu");
    assert!(available(
        &expect_json(first.get(&menu_path).await, StatusCode::OK).await
    ));

    let second = first.replica_with(|_| {}).await;
    second.set_available(&shop, &fixture.pizza, false).await;
    assert!(
        available(&expect_json(first.get(&menu_path).await, StatusCode::OK).await),
        "the first replica still serves its cached menu"
    );

    let warmed = expect_json(
        first.post("/api/v1/admin/cache/warm", &Value::Null).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(warmed["cache"], "memory");
    assert_eq!(warmed["menus"], 1, "{warmed}");
    assert_eq!(warmed["open_shops"], 1, "{warmed}");
    assert_eq!(warmed["loads"], 1, "{warmed}");
    assert!(
        !available(&expect_json(first.get(&menu_path).await, StatusCode::OK).await),
        "the warm-up loaded the current menu"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warming_replaces_stale_entries_sqlite() {
    warming_replaces_stale_entries(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warming_replaces_stale_entries_postgres() {
    warming_replaces_stale_entries(Backend::Postgres).await;
}

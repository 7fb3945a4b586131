//! Shops, stations, the catalogue, menus and availability.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{expect_json, expect_problem, problem_fields};

both_backends! {
    async fn shops_are_created_read_listed_and_changed(app) {
        let response = app
            .post("/api/v1/shops", &json!({"name": "Mitte", "region": "berlin-mitte",
                                           "location": {"lat": 52.52, "lon": 13.41}}))
            .await;
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let shop = expect_json(response, StatusCode::CREATED).await;
        assert_eq!(location, format!("/api/v1/shops/{}", shop["id"].as_str().unwrap()));
        assert_eq!(shop["open"], true);
        app.post("/api/v1/shops", &json!({"name": "Kreuzberg", "region": "berlin-kreuzberg",
                                          "location": {"lat": 52.49, "lon": 13.42}, "open": false}))
            .await;

        let read = expect_json(app.get(&location).await, StatusCode::OK).await;
        assert_eq!(read, shop);
        let all = expect_json(app.get("/api/v1/shops").await, StatusCode::OK).await;
        assert_eq!(all.as_array().unwrap().len(), 2);
        assert_eq!(all[0]["name"], "Kreuzberg", "sorted by name");
        let open = expect_json(app.get("/api/v1/shops?open=true").await, StatusCode::OK).await;
        assert_eq!(open.as_array().unwrap().len(), 1);
        let region = expect_json(app.get("/api/v1/shops?region=berlin-kreuzberg").await, StatusCode::OK).await;
        assert_eq!(region[0]["name"], "Kreuzberg");

        let closed = expect_json(app.patch(&location, &json!({"open": false}), None).await, StatusCode::OK).await;
        assert_eq!(closed["open"], false);
        assert_eq!(closed["name"], "Mitte");
        let renamed = expect_json(
            app.patch(&location, &json!({"name": "Mitte Nord", "location": {"lat": 52.53, "lon": 13.40}}), None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(renamed["name"], "Mitte Nord");
        assert_eq!(renamed["location"]["lat"], 52.53);
        assert_eq!(renamed["open"], false, "absent fields are unchanged");
    }

    async fn shop_conflicts_and_bad_fields_are_named(app) {
        app.shop("Mitte", 52.52, 13.41).await;
        let duplicate = app.post("/api/v1/shops", &json!({"name": "Mitte", "region": "x",
                                                          "location": {"lat": 1.0, "lon": 1.0}})).await;
        let problem = expect_problem(duplicate, StatusCode::CONFLICT).await;
        assert_eq!(problem["type"], "urn:brigade:problem:duplicate");

        let invalid = app.post("/api/v1/shops", &json!({"name": "", "region": "Not A Slug",
                                                        "location": {"lat": 100.0, "lon": 1.0}})).await;
        let problem = expect_problem(invalid, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem_fields(&problem), ["name", "region", "location.lat"]);

        let empty_patch = app.patch(&format!("/api/v1/shops/{}", uuid::Uuid::now_v7()), &json!({}), None).await;
        expect_problem(empty_patch, StatusCode::UNPROCESSABLE_ENTITY).await;
        let missing = app.patch(&format!("/api/v1/shops/{}", uuid::Uuid::now_v7()), &json!({"open": true}), None).await;
        expect_problem(missing, StatusCode::NOT_FOUND).await;
        expect_problem(app.get(&format!("/api/v1/shops/{}", uuid::Uuid::now_v7())).await, StatusCode::NOT_FOUND).await;
        let bad_id = expect_problem(app.get("/api/v1/shops/12").await, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem_fields(&bad_id), ["shop_id"]);
    }

    async fn stations_belong_to_one_shop_and_own_their_categories(app) {
        let shop = app.shop("Mitte", 52.52, 13.41).await;
        let shop_id = shop["id"].as_str().unwrap();
        let stations_url = format!("/api/v1/shops/{shop_id}/stations");
        let created = expect_json(
            app.post(&stations_url, &json!({"name": "pizza", "capacity": 2, "prep_seconds": {"pizza": 600, "calzone": 700}})).await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(created["prep_seconds"]["calzone"], 700);
        let same_name = app.post(&stations_url, &json!({"name": "pizza", "capacity": 1, "prep_seconds": {"soup": 60}})).await;
        expect_problem(same_name, StatusCode::CONFLICT).await;
        let taken_category = app.post(&stations_url, &json!({"name": "oven", "capacity": 1, "prep_seconds": {"pizza": 60}})).await;
        let problem = expect_problem(taken_category, StatusCode::CONFLICT).await;
        assert!(problem["detail"].as_str().unwrap().contains("pizza"), "{problem}");
        let invalid = app.post(&stations_url, &json!({"name": "x", "capacity": 0, "prep_seconds": {}})).await;
        let problem = expect_problem(invalid, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem_fields(&problem), ["capacity", "prep_seconds"]);

        let listed = expect_json(app.get(&stations_url).await, StatusCode::OK).await;
        assert_eq!(listed.as_array().unwrap().len(), 1, "failed inserts left nothing behind");
        assert_eq!(listed[0], created);
        let other = format!("/api/v1/shops/{}/stations", uuid::Uuid::now_v7());
        expect_problem(app.get(&other).await, StatusCode::NOT_FOUND).await;
        let orphan = app.post(&other, &json!({"name": "x", "capacity": 1, "prep_seconds": {"x": 1}})).await;
        expect_problem(orphan, StatusCode::NOT_FOUND).await;
    }

    async fn catalogue_items_are_validated_and_unique(app) {
        let id = app.item("margherita", "pizza", 950, "EUR").await;
        let item = expect_json(app.get(&format!("/api/v1/items/{id}")).await, StatusCode::OK).await;
        assert_eq!(item["price_minor"], 950);
        assert_eq!(item["currency"], "EUR");
        let duplicate = app.post("/api/v1/items", &json!({"sku": "margherita", "name": "M", "category": "pizza",
                                                          "price_minor": 1, "currency": "EUR"})).await;
        expect_problem(duplicate, StatusCode::CONFLICT).await;
        let invalid = app.post("/api/v1/items", &json!({"sku": "Bad SKU", "name": "M", "category": "pizza",
                                                        "price_minor": -5, "currency": "euro"})).await;
        let problem = expect_problem(invalid, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem_fields(&problem), ["sku", "price_minor", "currency"]);
        let all = expect_json(app.get("/api/v1/items").await, StatusCode::OK).await;
        assert_eq!(all.as_array().unwrap().len(), 1);
        expect_problem(app.get(&format!("/api/v1/items/{}", uuid::Uuid::now_v7())).await, StatusCode::NOT_FOUND).await;
    }

    async fn menus_follow_availability_at_once(app) {
        let fixture = app.fixture("Mitte", 52.52, 13.41).await;
        let menu_url = format!("/api/v1/shops/{}/menu", fixture.shop_id());
        let menu = expect_json(app.get(&menu_url).await, StatusCode::OK).await;
        let menu = menu.as_array().unwrap();
        assert_eq!(menu.len(), 2);
        let pizza = menu.iter().find(|m| m["item_id"] == fixture.pizza.as_str()).unwrap();
        assert_eq!(pizza["available"], true);
        assert_eq!(pizza["station_id"], fixture.pizza_station.as_str());
        assert_eq!(pizza["prep_seconds"], 600);

        // The menu is cached now; a change through the API must show on the next read.
        app.set_available(&fixture.shop_id(), &fixture.pizza, false).await;
        let menu = expect_json(app.get(&menu_url).await, StatusCode::OK).await;
        let pizza = menu.as_array().unwrap().iter().find(|m| m["item_id"] == fixture.pizza.as_str()).unwrap();
        assert_eq!(pizza["available"], false);

        // An item of a category no station cooks is not on the menu.
        let soup = app.item("soup", "soup", 300, "EUR").await;
        app.set_available(&fixture.shop_id(), &soup, true).await;
        let menu = expect_json(app.get(&menu_url).await, StatusCode::OK).await;
        assert_eq!(menu.as_array().unwrap().len(), 2);

        let unknown_shop = format!("/api/v1/shops/{}/menu", uuid::Uuid::now_v7());
        expect_problem(app.get(&unknown_shop).await, StatusCode::NOT_FOUND).await;
        let unknown_item = app.put(&format!("/api/v1/shops/{}/items/{}", fixture.shop_id(), uuid::Uuid::now_v7()),
                                   &json!({"available": true})).await;
        expect_problem(unknown_item, StatusCode::NOT_FOUND).await;
        let bad_body = app.put(&format!("/api/v1/shops/{}/items/{}", fixture.shop_id(), fixture.pizza),
                               &json!({"available": "yes"})).await;
        let problem = expect_problem(bad_body, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem_fields(&problem), ["available"]);
    }

    async fn load_shows_queued_work_per_station(app) {
        let fixture = app.fixture("Mitte", 52.52, 13.41).await;
        app.order(Some(&fixture.shop_id()), &[(&fixture.pizza, 3), (&fixture.bread, 1)]).await;
        let load = expect_json(app.get(&format!("/api/v1/shops/{}/load", fixture.shop_id())).await, StatusCode::OK).await;
        let pizza = load.as_array().unwrap().iter().find(|l| l["station_id"] == fixture.pizza_station.as_str()).unwrap();
        assert_eq!(pizza["queued_work_seconds"], 1800);
        assert_eq!(pizza["wait_seconds"], 900, "two chefs share the queue");
        let bread = load.as_array().unwrap().iter().find(|l| l["station_id"] == fixture.bread_station.as_str()).unwrap();
        assert_eq!(bread["queued_work_seconds"], 300);
    }
}

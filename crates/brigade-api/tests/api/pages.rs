//! The web pages as the server renders them: shops and menu on the ordering page, the order,
//! kitchen and courier frames, embedded assets, and the basics every page must keep (language,
//! viewport, a label for every control). Behaviour in a browser is tested in tests/browser.

use reqwest::StatusCode;

use crate::helpers::{TestApp, expect_problem};

/// GETs a page anonymously and returns its HTML after checking status and media type.
async fn page(app: &TestApp, path: &str) -> String {
    let response = app
        .anonymous()
        .get(app.url(path))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let media = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(media.starts_with("text/html"), "{path}: {media}");
    response.text().await.unwrap()
}

/// Every `<input id=…>` and `<select id=…>` has a `<label for=…>`; the document declares its
/// language and a phone-friendly viewport.
fn assert_accessible_basics(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "doctype");
    assert!(html.contains(r#"<html lang="en">"#), "language");
    assert!(html.contains(r#"name="viewport" content="width=device-width, initial-scale=1""#));
    assert!(html.contains(r##"href="#main""##), "skip link");
    for tag in ["<input ", "<select "] {
        for chunk in html.split(tag).skip(1) {
            let element = &chunk[..chunk.find('>').unwrap()];
            let id = element
                .split("id=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("{tag}without id: {element}"));
            assert!(
                html.contains(&format!(r#"<label for="{id}""#)),
                "no label for #{id}"
            );
        }
    }
}

both_backends! {
    async fn ordering_page_lists_shops_and_the_first_open_shops_menu(app) {
        let closed = app.fixture("Altona", 53.55, 9.93).await;
        app.patch(&format!("/api/v1/shops/{}", closed.shop_id()), &serde_json::json!({"open": false}), None).await;
        let open = app.fixture("Mitte", 52.52, 13.40).await;
        app.set_available(&open.shop_id(), &open.bread, false).await;

        let html = page(&app, "/").await;
        assert_accessible_basics(&html);
        assert!(html.contains("Altona (test) — closed"), "closed shops are listed as closed");
        assert!(html.contains(&format!(r#"data-shop-id="{}""#, open.shop_id())), "the open shop is chosen");
        assert!(html.contains(&format!(r#"data-item-id="{}""#, open.pizza)), "pizza can be added");
        assert!(html.contains(r#"data-price="1000""#));
        assert!(html.contains("10.00 EUR"), "prices in major units");
        assert!(!html.contains(&format!(r#"data-item-id="{}""#, open.bread)), "sold out cannot be added");
        assert!(html.contains("bread is sold out"));
        assert!(html.contains(r#"id="place-order""#));
        assert!(html.contains(r#"id="signup-button""#));
        assert!(!html.contains(r#"id="shop-closed""#));

        let html = page(&app, &format!("/?shop={}", closed.shop_id())).await;
        assert!(html.contains(r#"id="shop-closed""#), "a closed shop says so");
        assert!(html.contains(r#"data-shop-open="false""#));
    }

    async fn ordering_page_escapes_names(app) {
        app.shop("<script>alert(1)</script>", 52.5, 13.4).await;
        let html = page(&app, "/").await;
        assert!(!html.contains("<script>alert(1)"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    async fn ordering_page_rejects_unknown_and_malformed_shops(app) {
        let response = app.anonymous().get(app.url(&format!("/?shop={}", uuid::Uuid::now_v7()))).send().await.unwrap();
        expect_problem(response, StatusCode::NOT_FOUND).await;
        let response = app.anonymous().get(app.url("/?shop=nope")).send().await.unwrap();
        expect_problem(response, StatusCode::BAD_REQUEST).await;
        let response = app.anonymous().get(app.url("/?colour=red")).send().await.unwrap();
        expect_problem(response, StatusCode::BAD_REQUEST).await;
    }

    async fn order_page_has_the_timeline_of_every_status(app) {
        let id = uuid::Uuid::now_v7();
        let html = page(&app, &format!("/orders/{id}")).await;
        assert_accessible_basics(&html);
        assert!(html.contains(&format!(r#"data-order-id="{id}""#)));
        let steps = ["placed", "accepted", "preparing", "ready", "out_for_delivery", "delivered"];
        let mut last = 0;
        for step in steps {
            let at = html.find(&format!(r#"data-status="{step}""#)).unwrap_or_else(|| panic!("{step}"));
            assert!(at > last, "{step} in order");
            last = at;
        }
        assert!(hashed_asset(html.as_str(), "order", "js").is_some(), "order.js by its hashed name");
        let response = app.anonymous().get(app.url("/orders/123")).send().await.unwrap();
        expect_problem(response, StatusCode::BAD_REQUEST).await;
    }

    async fn kitchen_and_courier_pages_render_their_frames(app) {
        let kitchen = page(&app, "/kitchen").await;
        assert_accessible_basics(&kitchen);
        assert!(kitchen.contains(r#"id="station-select""#));
        assert!(kitchen.contains(r#"id="tickets""#));
        assert!(kitchen.contains(r#"id="login-form""#));
        assert!(kitchen.contains(r#"<a href="/kitchen" aria-current="page">"#));
        assert!(hashed_asset(kitchen.as_str(), "kitchen", "js").is_some(), "kitchen.js by its hashed name");
        let courier = page(&app, "/courier").await;
        assert_accessible_basics(&courier);
        assert!(courier.contains(r#"id="ready-orders""#));
        assert!(courier.contains(r#"id="road-orders""#));
        assert!(hashed_asset(courier.as_str(), "courier", "js").is_some(), "courier.js by its hashed name");
        assert!(!courier.contains(r#"id="signup-button""#), "couriers do not sign up");
    }

    async fn assets_are_embedded_with_their_media_types(app) {
        for (name, media, marker) in [
            ("brigade.css", "text/css", ".ticket.late"),
            ("common.js", "text/javascript", "application/json"),
            ("ordering.js", "text/javascript", "idempotency-key"),
            ("order.js", "text/javascript", "if-none-match"),
            ("kitchen.js", "text/javascript", "/claim"),
            ("courier.js", "text/javascript", "out_for_delivery"),
        ] {
            let response = app.anonymous().get(app.url(&format!("/assets/{name}"))).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{name}");
            assert!(response.headers()["content-type"].to_str().unwrap().starts_with(media), "{name}");
            assert!(response.text().await.unwrap().contains(marker), "{name}");
        }
        let response = app.anonymous().get(app.url("/assets/secret.txt")).send().await.unwrap();
        expect_problem(response, StatusCode::NOT_FOUND).await;
    }

    async fn every_answer_carries_the_security_headers(app) {
        for path in ["/", "/kitchen", "/courier", "/swagger-ui/", "/assets/common.js", "/api/v1/shops",
                     "/api/v1/accounts/me", "/api/v1/nothing-here", "/health/live", "/metrics", "/openapi.json"] {
            let response = app.anonymous().get(app.url(path)).send().await.unwrap();
            let headers = response.headers();
            let html = headers["content-type"].to_str().unwrap().starts_with("text/html");
            let policy = headers.get("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP")).to_str().unwrap();
            assert!(policy.contains("frame-ancestors 'none'"), "{path}: {policy}");
            assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{path}: {policy}");
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(headers["x-frame-options"], "DENY", "{path}");
            assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
            if html {
                assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
                // No inline script a policy without 'unsafe-inline' would block.
                let body = response.text().await.unwrap();
                for chunk in body.split("<script").skip(1) {
                    let tag = &chunk[..chunk.find('>').unwrap()];
                    assert!(tag.contains("src="), "{path}: inline script");
                }
                assert!(!body.contains(" onclick=") && !body.contains(" onload="), "{path}: inline handler");
            }
        }
    }

    async fn pages_use_content_hashed_assets_cached_for_a_year_and_compressed(app) {
        let html = page(&app, "/").await;
        for (stem, extension) in [("brigade", "css"), ("common", "js"), ("ordering", "js"), ("favicon", "svg")] {
            let path = hashed_asset(&html, stem, extension).unwrap_or_else(|| panic!("{stem}.{extension} in {html}"));
            let response = app.anonymous().get(app.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable", "{path}");
        }
        // The plain name still answers, but is revalidated: it may change with the next release.
        let plain = app.anonymous().get(app.url("/assets/common.js")).send().await.unwrap();
        assert_eq!(plain.headers()["cache-control"], "no-cache");
        // Compressed for a client that accepts it; reqwest here does not decompress.
        let script = hashed_asset(&html, "ordering", "js").unwrap();
        let gzipped = app
            .anonymous()
            .get(app.url(&script))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(gzipped.headers()["content-encoding"], "gzip");
        let identity = app.anonymous().get(app.url(&script)).send().await.unwrap();
        assert!(identity.headers().get("content-encoding").is_none());
        let swagger = app
            .anonymous()
            .get(app.url("/openapi.json"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(swagger.headers()["content-encoding"], "gzip");
        let bundle = app
            .anonymous()
            .get(app.url("/swagger-ui/swagger-ui-bundle.js"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(bundle.status(), StatusCode::OK);
        assert_eq!(bundle.headers()["content-encoding"], "gzip");
        // Browsers ask for /favicon.ico on their own.
        let icon = app.anonymous().get(app.url("/favicon.ico")).send().await.unwrap();
        assert_eq!(icon.status(), StatusCode::OK);
        assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    }
}

/// The first `/assets/{stem}.{16 hex digits}.{extension}` in `html`.
fn hashed_asset(html: &str, stem: &str, extension: &str) -> Option<String> {
    let prefix = format!("/assets/{stem}.");
    html.match_indices(&prefix).find_map(|(at, _)| {
        let rest = &html[at + prefix.len()..];
        let hash = rest.get(..16)?;
        let is_hash = hash.bytes().all(|b| b.is_ascii_hexdigit());
        (is_hash && rest[16..].starts_with(&format!(".{extension}")))
            .then(|| format!("{prefix}{hash}.{extension}"))
    })
}

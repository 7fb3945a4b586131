//! Accounts and sessions: sign-up, log-in, log-out on every replica, limits, expiry, rotation.

use std::sync::Arc;

use brigade_core::config::SigningKey;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    expect_json, expect_problem, problem_fields, spawn_configured, test_settings,
};

both_backends! {
    async fn sign_up_log_in_and_out(app) {
        let credentials = json!({"email": "Ann@Example.org", "password": "correct horse battery"});
        let accepted = expect_json(app.post("/api/v1/accounts", &credentials).await, StatusCode::ACCEPTED).await;
        assert_eq!(accepted["status"], "accepted");

        let session = expect_json(app.post("/api/v1/sessions", &json!({"email": "ANN@example.org", "password": "correct horse battery"})).await, StatusCode::CREATED).await;
        assert_eq!(session["token_type"], "Bearer");
        let account = session["account"].clone();
        assert_eq!(account["email"], "ann@example.org");
        assert_eq!(account["role"], "customer");
        assert!(account.get("password_hash").is_none() && account.get("password").is_none());
        let token = session["token"].as_str().unwrap();
        let me = expect_json(app.get_as("/api/v1/accounts/me", token).await, StatusCode::OK).await;
        assert_eq!(me, account);

        let logout = app.client.delete(app.url("/api/v1/sessions/current")).bearer_auth(token).send().await.unwrap();
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        let after = app.get_as("/api/v1/accounts/me", token).await;
        assert!(after.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        expect_problem(after, StatusCode::UNAUTHORIZED).await;
        let anonymous = app.anonymous().get(app.url("/api/v1/accounts/me")).send().await.unwrap();
        expect_problem(anonymous, StatusCode::UNAUTHORIZED).await;

        // An address that has an account gets the very same answer as a new one, so sign-up
        // tells nobody who has an account; the existing password keeps working.
        let taken = expect_json(app.post("/api/v1/accounts", &json!({"email": "ann@EXAMPLE.org", "password": "plum tiger violin seven"})).await, StatusCode::ACCEPTED).await;
        assert_eq!(taken, accepted);
        expect_problem(app.post("/api/v1/sessions", &json!({"email": "ann@example.org", "password": "plum tiger violin seven"})).await, StatusCode::UNAUTHORIZED).await;
        expect_json(app.post("/api/v1/sessions", &credentials).await, StatusCode::CREATED).await;
        let invalid = app.post("/api/v1/accounts", &json!({"email": "ann", "password": "short"})).await;
        assert_eq!(problem_fields(&expect_problem(invalid, StatusCode::UNPROCESSABLE_ENTITY).await), ["email", "password"]);
    }

    async fn weak_passwords_and_the_address_itself_are_refused(app) {
        for (password, hint) in [
            ("aaaaaaaaaa", "too easy to guess"),
            ("password12", "too easy to guess"),
            ("zoe.winterbottom@example.org", "e-mail"),
            ("zoe.winterbottom", "e-mail"),
        ] {
            let body = json!({"email": "zoe.winterbottom@example.org", "password": password});
            let problem = expect_problem(app.post("/api/v1/accounts", &body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(problem_fields(&problem), ["password"], "{password}");
            assert!(problem["errors"][0]["message"].as_str().unwrap().contains(hint), "{problem}");
            // The admin API holds new staff passwords to the same rule.
            let staff = json!({"email": "zoe.winterbottom@example.org", "password": password, "role": "customer"});
            let problem = expect_problem(app.post("/api/v1/admin/accounts", &staff).await, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(problem_fields(&problem), ["password"], "{password}");
        }
    }

    async fn sign_ups_are_limited_per_address(app) {
        let mut settings = test_settings(app.storage(), Default::default());
        settings.auth.max_signups_per_address = 3;
        let strict = spawn_configured(Arc::clone(&app.db), settings, app.backend).await;
        for n in 0..3 {
            let body = json!({"email": format!("new{n}@example.org"), "password": "correct horse battery"});
            expect_json(strict.post("/api/v1/accounts", &body).await, StatusCode::ACCEPTED).await;
        }
        let body = json!({"email": "new9@example.org", "password": "correct horse battery"});
        let refused = strict.post("/api/v1/accounts", &body).await;
        assert_eq!(refused.headers()["retry-after"], "3600");
        expect_problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    }

    async fn hashing_beyond_its_slots_and_queue_is_503_with_retry_after(app) {
        let mut settings = test_settings(app.storage(), Default::default());
        // One slot (1 MiB for 1 MiB hashes), no queue: a second hash at once is refused. A hash
        // takes a few hundred milliseconds, so the eight overlap even on a busy machine.
        settings.auth.argon2_memory_kib = 1024;
        settings.auth.argon2_iterations = 400;
        settings.auth.hash_memory_mib = 1;
        settings.auth.hash_queue = 0;
        let tight = spawn_configured(Arc::clone(&app.db), settings, app.backend).await;
        let sign_ups: Vec<_> = (0..8).map(|n| {
            let body = json!({"email": format!("burst{n}@example.org"), "password": "correct horse battery"});
            tokio::spawn(tight.anonymous().post(tight.url("/api/v1/accounts")).json(&body).send())
        }).collect();
        let mut busy = 0;
        for sign_up in sign_ups {
            let answer = sign_up.await.unwrap().unwrap();
            if answer.status() == StatusCode::SERVICE_UNAVAILABLE {
                busy += 1;
                assert!(answer.headers().contains_key("retry-after"));
                expect_problem(answer, StatusCode::SERVICE_UNAVAILABLE).await;
            } else {
                expect_json(answer, StatusCode::ACCEPTED).await;
            }
        }
        assert!(busy > 0, "eight hashes at once with one slot and no queue");
    }

    async fn the_last_admin_stays_admin(app) {
        let admin = expect_json(app.get("/api/v1/accounts/me").await, StatusCode::OK).await;
        let admin_id = admin["id"].as_str().unwrap();
        let demote = app.patch(&format!("/api/v1/admin/accounts/{admin_id}"), &json!({"role": "customer"}), None).await;
        let problem = expect_problem(demote, StatusCode::CONFLICT).await;
        assert_eq!(problem["type"], "urn:brigade:problem:last-admin");
        // With a second admin, the first may step down.
        let token = app.log_in_new("second.admin@example.org").await;
        let second = expect_json(app.get_as("/api/v1/accounts/me", &token).await, StatusCode::OK).await;
        let promote = app.patch(&format!("/api/v1/admin/accounts/{}", second["id"].as_str().unwrap()), &json!({"role": "admin"}), None).await;
        expect_json(promote, StatusCode::OK).await;
        let demote = app.patch(&format!("/api/v1/admin/accounts/{admin_id}"), &json!({"role": "customer"}), None).await;
        expect_json(demote, StatusCode::OK).await;
        // Now the second is the last one.
        let demote = app.client.patch(app.url(&format!("/api/v1/admin/accounts/{}", second["id"].as_str().unwrap()))).bearer_auth(&token).json(&json!({"role": "customer"})).send().await.unwrap();
        expect_problem(demote, StatusCode::CONFLICT).await;
    }

    async fn wrong_password_and_unknown_account_look_the_same(app) {
        app.log_in_new("bob@example.org").await;
        let wrong = expect_problem(app.post("/api/v1/sessions", &json!({"email": "bob@example.org", "password": "wrong password!"})).await, StatusCode::UNAUTHORIZED).await;
        let unknown = expect_problem(app.post("/api/v1/sessions", &json!({"email": "nobody@example.org", "password": "wrong password!"})).await, StatusCode::UNAUTHORIZED).await;
        for field in ["type", "title", "status", "detail"] {
            assert_eq!(wrong[field], unknown[field], "{field} differs");
        }
    }

    async fn repeated_failures_are_refused_for_a_while(app) {
        app.log_in_new("eve@example.org").await;
        let wrong = json!({"email": "eve@example.org", "password": "guess number x"});
        for _ in 0..5 {
            expect_problem(app.post("/api/v1/sessions", &wrong).await, StatusCode::UNAUTHORIZED).await;
        }
        // Now even the right password is refused from this address until the window passes.
        let right = app.post("/api/v1/sessions", &json!({"email": "eve@example.org", "password": "correct horse battery"})).await;
        assert_eq!(right.headers()["retry-after"], "900");
        let problem = expect_problem(right, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(problem["type"], "urn:brigade:problem:too-many-attempts");
        // Another account from the same address is still allowed (the address limit is higher).
        app.log_in_new("fay@example.org").await;
    }

    async fn failures_from_one_address_are_limited_across_accounts(app) {
        let mut settings = test_settings(app.storage(), Default::default());
        settings.auth.max_failures_per_address = 3;
        let strict = spawn_configured(Arc::clone(&app.db), settings, app.backend).await;
        for n in 0..3 {
            let guess = json!({"email": format!("victim{n}@example.org"), "password": "guess number x"});
            expect_problem(strict.post("/api/v1/sessions", &guess).await, StatusCode::UNAUTHORIZED).await;
        }
        // A fourth account, never tried before, is refused from this address.
        let fresh = json!({"email": "victim9@example.org", "password": "guess number x"});
        expect_problem(strict.post("/api/v1/sessions", &fresh).await, StatusCode::TOO_MANY_REQUESTS).await;
    }

    async fn bad_tokens_are_401(app) {
        for header in ["Bearer not-a-token", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer a.b.c"] {
            let response = app.client.get(app.url("/api/v1/accounts/me")).header("authorization", header).send().await.unwrap();
            expect_problem(response, StatusCode::UNAUTHORIZED).await;
        }
        // Anonymous ordering still works; a bad token is never silently treated as anonymous.
        let response = app.client.post(app.url("/api/v1/orders")).header("authorization", "Bearer nope").json(&json!({})).send().await.unwrap();
        expect_problem(response, StatusCode::UNAUTHORIZED).await;
        // Public reads too: a bad token is refused rather than read as "anonymous".
        let response = app.client.get(app.url("/api/v1/shops")).header("authorization", "Bearer nope").send().await.unwrap();
        expect_problem(response, StatusCode::UNAUTHORIZED).await;
        let anonymous = app.anonymous().get(app.url("/api/v1/shops")).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::OK);
    }

    async fn logins_and_logouts_hold_on_every_replica(app) {
        let second = crate::helpers::spawn_on(Arc::clone(&app.db), app.storage(), Default::default(), app.backend).await;
        let token = app.log_in_new("gus@example.org").await;
        expect_json(second.get_as("/api/v1/accounts/me", &token).await, StatusCode::OK).await;
        let logout = second.client.delete(second.url("/api/v1/sessions/current")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        expect_problem(app.get_as("/api/v1/accounts/me", &token).await, StatusCode::UNAUTHORIZED).await;
    }

    async fn tokens_expire(app) {
        let mut settings = test_settings(app.storage(), Default::default());
        settings.auth.token_ttl_secs = 0;
        let short = spawn_configured(Arc::clone(&app.db), settings, app.backend).await;
        let token = short.log_in_new("hal@example.org").await;
        expect_problem(short.get_as("/api/v1/accounts/me", &token).await, StatusCode::UNAUTHORIZED).await;
    }

    async fn rotated_keys_keep_old_tokens_working(app) {
        let key = |id: &str, fill: char| SigningKey { id: id.into(), secret: fill.to_string().repeat(32) };
        let mut old = test_settings(app.storage(), Default::default());
        old.auth.keys = vec![key("k1", 'a')];
        let mut rotated = test_settings(app.storage(), Default::default());
        rotated.auth.keys = vec![key("k2", 'b'), key("k1", 'a')];
        let mut retired = test_settings(app.storage(), Default::default());
        retired.auth.keys = vec![key("k2", 'b')];
        let old = spawn_configured(Arc::clone(&app.db), old, app.backend).await;
        let rotated = spawn_configured(Arc::clone(&app.db), rotated, app.backend).await;
        let retired = spawn_configured(Arc::clone(&app.db), retired, app.backend).await;

        let old_token = old.log_in_new("ida@example.org").await;
        expect_json(rotated.get_as("/api/v1/accounts/me", &old_token).await, StatusCode::OK).await;
        expect_problem(retired.get_as("/api/v1/accounts/me", &old_token).await, StatusCode::UNAUTHORIZED).await;
        let credentials = json!({"email": "ida@example.org", "password": "correct horse battery"});
        let new_token = expect_json(rotated.post("/api/v1/sessions", &credentials).await, StatusCode::CREATED).await;
        let new_token = new_token["token"].as_str().unwrap();
        expect_json(retired.get_as("/api/v1/accounts/me", new_token).await, StatusCode::OK).await;
        expect_problem(old.get_as("/api/v1/accounts/me", new_token).await, StatusCode::UNAUTHORIZED).await;
    }
    async fn role_changes_apply_to_live_sessions_everywhere(app) {
        let second = crate::helpers::spawn_on(Arc::clone(&app.db), app.storage(), Default::default(), app.backend).await;
        let shop = app.shop("Mitte", 52.5, 13.4).await;
        let token = app.log_in_new("jo@example.org").await;
        let me = expect_json(second.get_as("/api/v1/accounts/me", &token).await, StatusCode::OK).await;
        assert_eq!(me["role"], "customer");
        let change = json!({"role": "courier", "shop_id": shop["id"]});
        let changed = expect_json(app.patch(&format!("/api/v1/admin/accounts/{}", me["id"].as_str().unwrap()), &change, None).await, StatusCode::OK).await;
        assert_eq!(changed["role"], "courier");
        // The second replica had the session cached: it applies the change within the
        // session cache's bound (auth.session_cache.max_staleness_ms), not necessarily at once.
        let me = within_the_bound(|| async {
            let me = expect_json(second.get_as("/api/v1/accounts/me", &token).await, StatusCode::OK).await;
            (me["role"] == "courier").then_some(me)
        }).await;
        assert_eq!(me["role"], "courier", "the same token now carries the new role");
        assert_eq!(me["shop_id"], shop["id"]);
        // Rights are checked before the body is read: no right, 403, however bad the body.
        let shop_attempt = second.client.post(second.url("/api/v1/shops")).bearer_auth(&token).json(&json!({})).send().await.unwrap();
        expect_problem(shop_attempt, StatusCode::FORBIDDEN).await;
        // A courier may not place orders any more.
        let order = second.client.post(second.url("/api/v1/orders")).bearer_auth(&token).json(&json!({})).send().await.unwrap();
        expect_problem(order, StatusCode::FORBIDDEN).await;
        let missing_shop = app.patch(&format!("/api/v1/admin/accounts/{}", me["id"].as_str().unwrap()), &json!({"role": "staff"}), None).await;
        assert_eq!(problem_fields(&expect_problem(missing_shop, StatusCode::UNPROCESSABLE_ENTITY).await), ["shop_id"]);
    }
}

/// Polls `probe` until it gives an answer; every request that still saw the old state must
/// have started within the session cache's bound (250 ms by default) of the change, which
/// committed before this is called.
async fn within_the_bound<T, F, Fut>(probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let bound = std::time::Duration::from_millis(
        brigade_core::config::SessionCacheSettings::default().max_staleness_ms,
    );
    let changed = std::time::Instant::now();
    loop {
        let started = std::time::Instant::now();
        if let Some(answer) = probe().await {
            return answer;
        }
        assert!(
            started.duration_since(changed) <= bound,
            "a request {:?} after the change still saw the old state",
            started.duration_since(changed)
        );
    }
}

//! The audit trail: every change is recorded with actor, action, entity, before/after and the
//! request id; the trail is filtered and paged; nothing can change or delete it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// `(action, before.status, after.status)` of events, oldest first.
fn steps(events: &[Value]) -> Vec<(String, Value, Value)> {
    events
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["before"]["status"].clone(),
                e["after"]["status"].clone(),
            )
        })
        .collect()
}

both_backends! {
    async fn a_full_order_life_is_in_the_audit_trail(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let customer = app.log_in_new("eater@example.org").await;
        let response = app
            .anonymous()
            .post(app.url("/api/v1/orders"))
            .bearer_auth(&customer)
            .header("x-request-id", "audit-life-1")
            .json(&order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 1), (&fixture.bread, 1)]))
            .send()
            .await
            .unwrap();
        let order = expect_json(response, StatusCode::CREATED).await;
        let id = order["id"].as_str().unwrap().to_owned();
        let accepted = expect_json(app.transition(&order, "accepted").await, StatusCode::OK).await;
        for ticket in accepted["tickets"].as_array().unwrap() {
            let ticket_id = ticket["id"].as_str().unwrap();
            expect_json(app.act(&format!("/api/v1/kitchen/tickets/{ticket_id}/claim")).await, StatusCode::OK).await;
            expect_json(app.act(&format!("/api/v1/kitchen/tickets/{ticket_id}/complete")).await, StatusCode::OK).await;
        }
        let ready = app.read_order(&id).await;
        let out = expect_json(app.transition(&ready, "out_for_delivery").await, StatusCode::OK).await;
        expect_json(app.transition(&out, "delivered").await, StatusCode::OK).await;

        let events = app.audit(&format!("entity=order&entity_id={id}")).await;
        let s = |x: &str| json!(x);
        assert_eq!(steps(&events), [
            ("order.placed".to_owned(), Value::Null, s("awaiting_payment")),
            ("order.status_changed".to_owned(), s("awaiting_payment"), s("placed")),
            ("order.status_changed".to_owned(), s("placed"), s("accepted")),
            ("order.status_changed".to_owned(), s("accepted"), s("preparing")),
            ("order.status_changed".to_owned(), s("preparing"), s("ready")),
            ("order.status_changed".to_owned(), s("ready"), s("out_for_delivery")),
            ("order.status_changed".to_owned(), s("out_for_delivery"), s("delivered")),
        ]);
        let placed = events.last().unwrap();
        let me = expect_json(app.get_as("/api/v1/accounts/me", &customer).await, StatusCode::OK).await;
        assert_eq!(placed["actor"], format!("account:{}", me["id"].as_str().unwrap()));
        assert_eq!(placed["request_id"], "audit-life-1", "the request that made the change");
        assert_eq!(placed["after"]["total_minor"], order["total_minor"]);
        assert_eq!(placed["after"]["lines"].as_array().unwrap().len(), 2);
        assert_eq!(events[events.len() - 2]["request_id"], "audit-life-1", "paid in the same request");
        for event in &events {
            assert!(event["at"].is_string() && event["id"].is_string(), "{event}");
        }

        // Tickets: claimed and completed, by whom.
        for ticket in accepted["tickets"].as_array().unwrap() {
            let ticket_events = app.audit(&format!("entity=ticket&entity_id={}", ticket["id"].as_str().unwrap())).await;
            let actions: Vec<_> = steps(&ticket_events).into_iter().map(|(action, _, _)| action).collect();
            assert_eq!(actions, ["ticket.claimed", "ticket.completed"]);
            assert!(ticket_events[0]["actor"].as_str().unwrap().starts_with("account:"));
        }
        // The payment: authorised when placed, captured when delivered.
        let payment_id = placed["after"]["payment_id"].as_str().unwrap();
        let payment: Vec<_> = steps(&app.audit(&format!("entity=payment&entity_id={payment_id}")).await)
            .into_iter().map(|(action, _, after)| (action, after)).collect();
        assert_eq!(payment, [
            ("payment.authorized".to_owned(), s("authorized")),
            ("payment.capture_requested".to_owned(), s("capturing")),
            ("payment.captured".to_owned(), s("captured")),
        ]);
    }

    async fn people_and_places_changes_are_audited_without_secrets(app) {
        let shop = app.shop("Audit Shop", 52.5, 13.4).await;
        let shop_id = shop["id"].as_str().unwrap();
        let patched = app.patch(&format!("/api/v1/shops/{shop_id}"), &json!({"open": false}), None).await;
        expect_json(patched, StatusCode::OK).await;
        let changes = app.audit(&format!("entity=shop&entity_id={shop_id}")).await;
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0]["action"], "shop.updated");
        assert_eq!(changes[0]["before"]["open"], true);
        assert_eq!(changes[0]["after"]["open"], false);
        assert_eq!(changes[1]["action"], "shop.created");
        let admin = expect_json(app.get("/api/v1/accounts/me").await, StatusCode::OK).await;
        assert_eq!(changes[0]["actor"], format!("account:{}", admin["id"].as_str().unwrap()));

        app.station(shop_id, "oven", 1, "pizza", 600).await;
        assert_eq!(app.audit("action=station.created").await.len(), 1);
        let (pizza, _) = app.catalogue().await;
        assert!(!app.audit("action=item.created").await.is_empty());
        app.set_available(shop_id, &pizza, true).await;
        let menu = app.audit("action=menu.availability_set").await;
        assert_eq!(menu[0]["after"]["available"], true);

        // Accounts: sign-up (its own actor), role change (the admin), log-in and log-out.
        let token = app.log_in_new("signer@example.org").await;
        let me = expect_json(app.get_as("/api/v1/accounts/me", &token).await, StatusCode::OK).await;
        let account_id = me["id"].as_str().unwrap();
        let created = app.audit(&format!("entity=account&entity_id={account_id}")).await;
        assert_eq!(created[0]["action"], "account.created");
        assert_eq!(created[0]["actor"], format!("account:{account_id}"));
        let changed = app.patch(&format!("/api/v1/admin/accounts/{account_id}"), &json!({"role": "staff", "shop_id": shop_id}), None).await;
        expect_json(changed, StatusCode::OK).await;
        let role = app.audit(&format!("entity=account&entity_id={account_id}&action=account.role_changed")).await;
        assert_eq!(role[0]["before"]["role"], "customer");
        assert_eq!(role[0]["after"]["role"], "staff");
        assert_eq!(role[0]["after"]["shop_id"], shop_id);
        let logout = app.anonymous().delete(app.url("/api/v1/sessions/current")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.audit("action=session.revoked").await[0]["actor"], format!("account:{account_id}"));
        assert!(!app.audit(&format!("actor=account:{account_id}&action=session.created")).await.is_empty());

        // No password, hash or token anywhere in the trail.
        let everything = app.get("/api/v1/admin/audit?limit=100").await.text().await.unwrap();
        for secret in ["password", "argon2", PASSWORD, &token] {
            assert!(!everything.contains(secret), "{secret} leaked into the audit trail");
        }
    }

    async fn the_trail_is_filtered_paged_and_cannot_be_changed(app) {
        for n in 0..5 {
            app.shop(&format!("Paged {n}"), 52.5, 13.4).await;
        }
        let first = expect_json(app.get("/api/v1/admin/audit?entity=shop&limit=2").await, StatusCode::OK).await;
        let cursor = first["next_cursor"].as_str().unwrap();
        let second = expect_json(app.get(&format!("/api/v1/admin/audit?entity=shop&limit=2&cursor={cursor}")).await, StatusCode::OK).await;
        let third = expect_json(app.get(&format!("/api/v1/admin/audit?entity=shop&limit=2&cursor={}", second["next_cursor"].as_str().unwrap())).await, StatusCode::OK).await;
        let ids: Vec<_> = [&first, &second, &third].iter()
            .flat_map(|page| page["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(ids.len(), 5);
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.reverse();
        assert_eq!(ids, sorted, "newest first, no overlap across pages");
        assert!(third.get("next_cursor").is_none());

        // Time filters.
        let all = app.audit("entity=shop").await;
        let middle = all[2]["at"].as_str().unwrap();
        let since = app.audit(&format!("entity=shop&since={}", urlencode(middle))).await;
        let until = app.audit(&format!("entity=shop&until={}", urlencode(middle))).await;
        assert_eq!(since.len() + until.len(), 5, "since is inclusive, until exclusive");
        assert!(since.iter().all(|e| e["at"].as_str().unwrap() >= middle));

        // Bad filters are named.
        let bad = app.get("/api/v1/admin/audit?since=yesterday").await;
        assert_eq!(problem_fields(&expect_problem(bad, StatusCode::BAD_REQUEST).await), ["since"]);
        let bad = app.get("/api/v1/admin/audit?cursor=nope").await;
        assert_eq!(problem_fields(&expect_problem(bad, StatusCode::BAD_REQUEST).await), ["cursor"]);

        // Read-only through the API...
        for method in [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::PATCH] {
            let response = app.client.request(method.clone(), app.url("/api/v1/admin/audit")).json(&json!({})).send().await.unwrap();
            expect_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
        }
        // ...and in the database itself.
        let refused = raw_sql(&app, "UPDATE audit_events SET actor = 'someone else'").await;
        assert!(refused.unwrap_err().contains("append-only"));
        let refused = raw_sql(&app, "DELETE FROM audit_events").await;
        assert!(refused.unwrap_err().contains("append-only"));
        assert_eq!(app.audit("entity=shop").await.len(), 5);
    }
}

fn urlencode(value: &str) -> String {
    value.replace(':', "%3A").replace('+', "%2B")
}

/// Runs one statement straight on the app's database, as an operator with a SQL shell would.
async fn raw_sql(app: &TestApp, statement: &'static str) -> Result<u64, String> {
    use sqlx::Connection;
    let url = app.storage().effective_url();
    let result = if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .map(|r| r.rows_affected())
    } else {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .map(|r| r.rows_affected())
    };
    result.map_err(|error| error.to_string())
}

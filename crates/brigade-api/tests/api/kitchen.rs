//! The kitchen: FIFO queues, claims (exactly one winner), completion.

use std::collections::HashSet;

use reqwest::StatusCode;

use crate::helpers::{expect_json, expect_problem};

both_backends! {
    async fn only_accepted_orders_are_cooked_in_arrival_order(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let first = app.order(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]).await;
        let second = app.order(Some(&fixture.shop_id()), &[(&fixture.pizza, 2)]).await;
        let queue_url = format!("/api/v1/kitchen/stations/{}/tickets", fixture.pizza_station);
        let queue = expect_json(app.get(&queue_url).await, StatusCode::OK).await;
        let queue = queue.as_array().unwrap();
        assert_eq!(queue.len(), 2);
        assert_eq!(queue[0]["order_id"], first["id"]);
        assert_eq!(queue[0]["claimable"], false, "not accepted yet");
        assert_eq!(queue[0]["order_status"], "placed");

        let first_ticket = first["tickets"][0]["id"].as_str().unwrap().to_owned();
        let second_ticket = second["tickets"][0]["id"].as_str().unwrap().to_owned();
        let early = app.act(&format!("/api/v1/kitchen/tickets/{first_ticket}/claim")).await;
        let problem = expect_problem(early, StatusCode::CONFLICT).await;
        assert_eq!(problem["type"], "urn:brigade:problem:order-not-cookable");
        let claim_next = format!("/api/v1/kitchen/stations/{}/claim", fixture.pizza_station);
        assert_eq!(app.act(&claim_next).await.status(), StatusCode::NO_CONTENT);

        app.transition(&first, "accepted").await;
        app.transition(&second, "accepted").await;
        let jump = app.act(&format!("/api/v1/kitchen/tickets/{second_ticket}/claim")).await;
        let problem = expect_problem(jump, StatusCode::CONFLICT).await;
        assert_eq!(problem["type"], "urn:brigade:problem:not-next-in-queue");
        assert!(problem["detail"].as_str().unwrap().contains(&first_ticket), "{problem}");

        let claimed = expect_json(app.act(&claim_next).await, StatusCode::OK).await;
        assert_eq!(claimed["id"], first_ticket.as_str());
        assert_eq!(claimed["status"], "claimed");
        assert!(claimed["claimed_by"].as_str().unwrap().starts_with("account:"), "{claimed}");
        let claimed = expect_json(app.act(&claim_next).await, StatusCode::OK).await;
        assert_eq!(claimed["id"], second_ticket.as_str());
        assert_eq!(app.act(&claim_next).await.status(), StatusCode::NO_CONTENT);
        let queue = expect_json(app.get(&queue_url).await, StatusCode::OK).await;
        assert!(queue.as_array().unwrap().iter().all(|t| t["status"] == "claimed" && t["claimable"] == false));
    }

    async fn two_chefs_one_ticket_exactly_one_wins(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let order = app.order(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]).await;
        app.transition(&order, "accepted").await;
        let ticket = order["tickets"][0]["id"].as_str().unwrap().to_owned();
        let claims: Vec<_> = (0..8)
            .map(|_| {
                let request = app.client.post(app.url(&format!("/api/v1/kitchen/tickets/{ticket}/claim")));
                tokio::spawn(async move { request.send().await.unwrap().status() })
            })
            .collect();
        let mut statuses = Vec::new();
        for claim in claims {
            statuses.push(claim.await.unwrap());
        }
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 7, "{statuses:?}");
        let order = app.read_order(order["id"].as_str().unwrap()).await;
        assert_eq!(order["status"], "preparing");
        let preparing = order["history"].as_array().unwrap().iter().filter(|e| e["status"] == "preparing").count();
        assert_eq!(preparing, 1, "the order started once");
    }

    async fn concurrent_claim_next_hands_out_each_ticket_once(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        for _ in 0..3 {
            let order = app.order(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]).await;
            app.transition(&order, "accepted").await;
        }
        let claim_next = app.url(&format!("/api/v1/kitchen/stations/{}/claim", fixture.pizza_station));
        let chefs: Vec<_> = (0..6)
            .map(|_| {
                let request = app.client.post(&claim_next);
                tokio::spawn(async move {
                    let response = request.send().await.unwrap();
                    let status = response.status();
                    let body = response.text().await.unwrap();
                    (status, body)
                })
            })
            .collect();
        let mut tickets = HashSet::new();
        for chef in chefs {
            let (status, body) = chef.await.unwrap();
            match status {
                StatusCode::OK => {
                    let ticket: serde_json::Value = serde_json::from_str(&body).unwrap();
                    assert!(tickets.insert(ticket["id"].as_str().unwrap().to_owned()), "ticket handed out twice");
                }
                StatusCode::NO_CONTENT | StatusCode::CONFLICT => {}
                other => panic!("unexpected {other}: {body}"),
            }
        }
        // Whatever raced, every ticket ends up claimed exactly once.
        loop {
            let response = app.client.post(&claim_next).send().await.unwrap();
            match response.status() {
                StatusCode::OK => {
                    let ticket: serde_json::Value = response.json().await.unwrap();
                    assert!(tickets.insert(ticket["id"].as_str().unwrap().to_owned()));
                }
                StatusCode::NO_CONTENT => break,
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(tickets.len(), 3);
    }

    async fn completing_needs_a_claim(app) {
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let order = app.order(Some(&fixture.shop_id()), &[(&fixture.bread, 1)]).await;
        app.transition(&order, "accepted").await;
        let ticket = order["tickets"][0]["id"].as_str().unwrap().to_owned();
        let early = app.act(&format!("/api/v1/kitchen/tickets/{ticket}/complete")).await;
        let problem = expect_problem(early, StatusCode::CONFLICT).await;
        assert_eq!(problem["type"], "urn:brigade:problem:ticket-state");
        expect_json(app.act(&format!("/api/v1/kitchen/tickets/{ticket}/claim")).await, StatusCode::OK).await;
        let done = expect_json(app.act(&format!("/api/v1/kitchen/tickets/{ticket}/complete")).await, StatusCode::OK).await;
        assert_eq!(done["status"], "done");
        assert!(done["completed_at"].is_string());
        let twice = app.act(&format!("/api/v1/kitchen/tickets/{ticket}/complete")).await;
        expect_problem(twice, StatusCode::CONFLICT).await;
        let reclaim = app.act(&format!("/api/v1/kitchen/tickets/{ticket}/claim")).await;
        expect_problem(reclaim, StatusCode::CONFLICT).await;
        let unknown = uuid::Uuid::now_v7();
        expect_problem(app.act(&format!("/api/v1/kitchen/tickets/{unknown}/claim")).await, StatusCode::NOT_FOUND).await;
        expect_problem(app.act(&format!("/api/v1/kitchen/tickets/{unknown}/complete")).await, StatusCode::NOT_FOUND).await;
        expect_problem(app.act(&format!("/api/v1/kitchen/stations/{unknown}/claim")).await, StatusCode::NOT_FOUND).await;
        expect_problem(app.get(&format!("/api/v1/kitchen/stations/{unknown}/tickets")).await, StatusCode::NOT_FOUND).await;
    }
}

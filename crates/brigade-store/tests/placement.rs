//! Placing orders through the store directly: the checks the transaction (or PostgreSQL's
//! single statement) makes against data that changed after the order was built, and settling
//! their payments from what the placing request holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use brigade_core::config::StorageSettings;
use brigade_domain::{
    Actor, GeoPoint, NewItem, NewShop, NewStation, Order, OrderEvent, OrderLine, OrderStatus,
    Payment, PaymentStatus, ShopPatch, Ticket, TicketItem, TicketStatus,
};
use brigade_store::{
    AuditFilter, ConflictKind, IdempotencyKey, NewPayment, PlaceOutcome, Placement, Settlement,
    Store, StoreError, StoredResponse,
};
use sqlx::Connection;
use uuid::Uuid;

struct Kitchen {
    store: Arc<dyn Store>,
    shop: Uuid,
    station: Uuid,
    item: Uuid,
    _dir: Option<tempfile::TempDir>,
    /// (admin URL, database name) of a PostgreSQL test database to drop afterwards.
    postgres: Option<(String, String)>,
}

impl Kitchen {
    async fn drop_database(self) {
        self.store.close().await;
        if let Some((admin, name)) = self.postgres {
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

async fn kitchen(postgres: bool) -> Option<Kitchen> {
    let (storage, dir, created) = if postgres {
        let admin = brigade_store::test_support::postgres_url()?;
        let name = format!("brigade_store_test_{}", Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("postgres reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        let storage = StorageSettings {
            database_url: Some(format!("{base}/{name}")),
            ..StorageSettings::default()
        };
        (storage, None, Some((admin.clone(), name)))
    } else {
        let dir = tempfile::tempdir().unwrap();
        let storage = StorageSettings {
            data_dir: dir.path().to_path_buf(),
            ..StorageSettings::default()
        };
        (storage, Some(dir), None)
    };
    let store = brigade_store::connect(&storage).await.unwrap();
    let shop = store
        .create_shop(
            &NewShop {
                name: "Mitte".into(),
                region: "test".into(),
                location: GeoPoint {
                    lat: 52.5,
                    lon: 13.4,
                },
                open: true,
            },
            &Actor::system(),
        )
        .await
        .unwrap()
        .id;
    let station = store
        .create_station(
            shop,
            &NewStation {
                name: "pizza".into(),
                capacity: 1,
                prep_seconds: BTreeMap::from([("pizza".to_owned(), 600)]),
            },
            &Actor::system(),
        )
        .await
        .unwrap()
        .id;
    let item = store
        .create_item(
            &NewItem {
                sku: "margherita".into(),
                name: "Margherita".into(),
                description: String::new(),
                category: "pizza".into(),
                price_minor: 950,
                currency: "EUR".into(),
            },
            &Actor::system(),
        )
        .await
        .unwrap()
        .id;
    store
        .set_availability(shop, item, true, &Actor::system())
        .await
        .unwrap();
    Some(Kitchen {
        store,
        shop,
        station,
        item,
        _dir: dir,
        postgres: created,
    })
}

/// An order as the API would build it, priced at `price`.
fn order(kitchen: &Kitchen, price: i64) -> Placement {
    let now = brigade_domain::now();
    let id = Uuid::now_v7();
    let actor = Actor::anonymous();
    Placement {
        order: Order {
            id,
            shop_id: kitchen.shop,
            customer_id: None,
            status: OrderStatus::AwaitingPayment,
            version: 1,
            lines: vec![OrderLine {
                item_id: kitchen.item,
                name: "Margherita".into(),
                quantity: 2,
                unit_price_minor: price,
                station_id: kitchen.station,
            }],
            total_minor: 2 * price,
            currency: "EUR".into(),
            delivery: GeoPoint {
                lat: 52.5,
                lon: 13.4,
            },
            distance_m: 0,
            eta_seconds: 1320,
            estimated_ready_at: now,
            estimated_delivery_at: now,
            tickets: vec![Ticket {
                id: Uuid::now_v7(),
                order_id: id,
                shop_id: kitchen.shop,
                station_id: kitchen.station,
                status: TicketStatus::Held,
                work_seconds: 1200,
                items: vec![TicketItem {
                    name: "Margherita".into(),
                    quantity: 2,
                }],
                claimed_by: None,
                created_at: now,
                claimed_at: None,
                completed_at: None,
            }],
            history: vec![OrderEvent {
                status: OrderStatus::AwaitingPayment,
                at: now,
                actor: actor.clone(),
            }],
            created_at: now,
            updated_at: now,
        },
        actor,
        idempotency: None,
        payment: NewPayment {
            id: Uuid::now_v7(),
            provider: "simulated".into(),
        },
    }
}

async fn stale_data_is_rechecked(postgres: bool) {
    let Some(kitchen) = kitchen(postgres).await else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    // Built with the price the cache showed; the database has the real one.
    let PlaceOutcome::Created(placed) = kitchen
        .store
        .place_order(order(&kitchen, 900))
        .await
        .unwrap()
    else {
        panic!("not created");
    };
    assert_eq!(
        placed.lines[0].unit_price_minor, 950,
        "repriced from the database"
    );
    assert_eq!(placed.total_minor, 1900);
    let stored = kitchen.store.get_order(placed.id).await.unwrap();
    assert_eq!(stored, *placed, "stored as returned");

    // Priced right, it is written as built (PostgreSQL's one-statement path).
    let PlaceOutcome::Created(placed) = kitchen
        .store
        .place_order(order(&kitchen, 950))
        .await
        .unwrap()
    else {
        panic!("not created");
    };
    assert_eq!(kitchen.store.get_order(placed.id).await.unwrap(), *placed);

    kitchen
        .store
        .set_availability(kitchen.shop, kitchen.item, false, &Actor::system())
        .await
        .unwrap();
    let error = kitchen
        .store
        .place_order(order(&kitchen, 950))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Conflict {
                kind: ConflictKind::ItemUnavailable,
                ..
            }
        ),
        "{error:?}"
    );

    kitchen
        .store
        .set_availability(kitchen.shop, kitchen.item, true, &Actor::system())
        .await
        .unwrap();
    let closed = ShopPatch {
        open: Some(false),
        ..ShopPatch::default()
    };
    kitchen
        .store
        .update_shop(kitchen.shop, &closed, &Actor::system())
        .await
        .unwrap();
    let error = kitchen
        .store
        .place_order(order(&kitchen, 950))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Conflict {
                kind: ConflictKind::ShopClosed,
                ..
            }
        ),
        "{error:?}"
    );
    let page = kitchen
        .store
        .list_orders(&brigade_store::OrderFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2, "refused orders wrote nothing");
    kitchen.drop_database().await;
}

#[tokio::test]
async fn sqlite_rechecks_stale_data() {
    stale_data_is_rechecked(false).await;
}

#[tokio::test]
async fn postgres_rechecks_stale_data() {
    stale_data_is_rechecked(true).await;
}

fn answer(order: &Order, payment: &Payment) -> StoredResponse {
    StoredResponse {
        status: if order.status == OrderStatus::Placed {
            201
        } else {
            402
        },
        body: format!("{} {}", order.status.as_str(), payment.status.as_str()),
    }
}

/// Places `placement` with an idempotency key; returns the order and its pending payment.
async fn placed_with_key(kitchen: &Kitchen, mut placement: Placement) -> (Order, Payment) {
    placement.idempotency = Some(IdempotencyKey {
        scope: "test".into(),
        key: placement.order.id.to_string(),
        request_hash: "hash".into(),
    });
    let payment = placement.payment.clone();
    let PlaceOutcome::Created(placed) = kitchen.store.place_order(placement).await.unwrap() else {
        panic!("not created");
    };
    let pending = payment.pending(&placed);
    assert_eq!(
        kitchen.store.payment_of_order(placed.id).await.unwrap(),
        Some(pending.clone()),
        "the pending payment is the one written"
    );
    (*placed, pending)
}

/// Settling from what the placing request holds writes what the general path writes: the
/// order, payment, stored answer and audit trail read back are those it answered with.
async fn settling_a_placement_writes_what_it_answers(postgres: bool) {
    let Some(kitchen) = kitchen(postgres).await else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let actor = Actor::anonymous();
    let approved = Settlement {
        status: PaymentStatus::Authorized,
        reference: Some("ref-1".into()),
        reason: None,
    };
    let (placed, pending) = placed_with_key(&kitchen, order(&kitchen, 950)).await;
    let settled = kitchen
        .store
        .settle_placed(&placed, &pending, &approved, &actor, &answer)
        .await
        .unwrap();
    assert!(settled.changed);
    assert_eq!(settled.order.status, OrderStatus::Placed);
    assert_eq!(settled.order.tickets[0].status, TicketStatus::Queued);
    let stored = kitchen.store.get_order(placed.id).await.unwrap();
    assert_eq!(stored, settled.order, "stored as answered");
    let payment = kitchen.store.payment_of_order(placed.id).await.unwrap();
    assert_eq!(payment.as_ref(), Some(&settled.payment));
    assert_eq!(settled.payment.reference.as_deref(), Some("ref-1"));
    let (_, replay) = kitchen
        .store
        .find_idempotent("test", &placed.id.to_string())
        .await
        .unwrap()
        .expect("the answer is kept for replays");
    assert_eq!(
        (replay.status, replay.body.as_str()),
        (201, "placed authorized")
    );
    let actions: Vec<_> = kitchen
        .store
        .audit_events(&AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.action)
        .collect();
    assert!(
        actions.contains(&"payment.authorized".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"order.status_changed".to_owned()),
        "{actions:?}"
    );

    // Settled meanwhile by someone else (a reconciler): nothing changes, the answer says so.
    let (placed, pending) = placed_with_key(&kitchen, order(&kitchen, 950)).await;
    let declined = Settlement {
        status: PaymentStatus::Declined,
        reference: None,
        reason: Some("no".into()),
    };
    kitchen
        .store
        .settle_authorization(pending.id, &declined, &Actor::system(), &answer)
        .await
        .unwrap();
    let late = kitchen
        .store
        .settle_placed(&placed, &pending, &approved, &actor, &answer)
        .await
        .unwrap();
    assert!(!late.changed);
    assert_eq!(late.order.status, OrderStatus::PaymentFailed);
    assert_eq!(late.payment.status, PaymentStatus::Declined);
    assert_eq!(
        kitchen.store.get_order(placed.id).await.unwrap(),
        late.order
    );
    kitchen.drop_database().await;
}

#[tokio::test]
async fn sqlite_settles_a_placement_as_answered() {
    settling_a_placement_writes_what_it_answers(false).await;
}

#[tokio::test]
async fn postgres_settles_a_placement_as_answered() {
    settling_a_placement_writes_what_it_answers(true).await;
}

//! Placing orders through the store directly: the checks the transaction (or PostgreSQL's
//! single statement) makes against data that changed after the order was built.

use std::collections::BTreeMap;
use std::sync::Arc;

use brigade_core::config::StorageSettings;
use brigade_domain::{
    Actor, GeoPoint, NewItem, NewShop, NewStation, Order, OrderEvent, OrderLine, OrderStatus,
    ShopPatch, Ticket, TicketItem, TicketStatus,
};
use brigade_store::{ConflictKind, NewPayment, PlaceOutcome, Placement, Store, StoreError};
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

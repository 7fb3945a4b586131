//! `brigade demo-data`: two shops, each with a pizza and a garlic-bread station, and a menu.
//!
//! Idempotent: everything is looked up by its natural key (shop name, station name, item SKU)
//! and only created when missing, and an item already on a shop's menu is left as it is (an
//! operator may have marked it unavailable). Running it twice changes nothing.

use std::collections::BTreeMap;

use brigade_domain::{GeoPoint, NewItem, NewShop, NewStation};
use brigade_store::{ShopFilter, Store, StoreResult};

/// What a run created.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DemoReport {
    /// Shops created.
    pub shops: usize,
    /// Stations created.
    pub stations: usize,
    /// Catalogue items created.
    pub items: usize,
    /// Items put on a shop's menu.
    pub menu_entries: usize,
}

impl DemoReport {
    /// Whether the run changed anything.
    pub fn changed(&self) -> bool {
        *self != Self::default()
    }
}

struct DemoShop {
    name: &'static str,
    region: &'static str,
    lat: f64,
    lon: f64,
}

const SHOPS: [DemoShop; 2] = [
    DemoShop {
        name: "Brigade Mitte",
        region: "berlin-mitte",
        lat: 52.5219,
        lon: 13.4132,
    },
    DemoShop {
        name: "Brigade Kreuzberg",
        region: "berlin-kreuzberg",
        lat: 52.4990,
        lon: 13.4180,
    },
];

/// (name, capacity, category, seconds per item)
const STATIONS: [(&str, i64, &str, i64); 2] = [
    ("pizza", 2, "pizza", 480),
    ("garlic-bread", 1, "garlic-bread", 240),
];

/// (sku, name, description, category, price in cents)
const ITEMS: [(&str, &str, &str, &str, i64); 5] = [
    (
        "margherita",
        "Margherita",
        "Tomato, mozzarella, basil",
        "pizza",
        950,
    ),
    (
        "diavola",
        "Diavola",
        "Tomato, mozzarella, spicy salami",
        "pizza",
        1150,
    ),
    (
        "quattro-formaggi",
        "Quattro Formaggi",
        "Four cheeses",
        "pizza",
        1250,
    ),
    (
        "garlic-bread",
        "Garlic Bread",
        "Baked with garlic butter",
        "garlic-bread",
        450,
    ),
    (
        "cheesy-garlic-bread",
        "Cheesy Garlic Bread",
        "Garlic bread with mozzarella",
        "garlic-bread",
        550,
    ),
];

/// Loads the demo data into `store`, creating only what is missing.
pub async fn load(store: &dyn Store) -> StoreResult<DemoReport> {
    let mut report = DemoReport::default();
    let existing_items = store.list_items().await?;
    let mut items = Vec::new();
    for (sku, name, description, category, price_minor) in ITEMS {
        let item = match existing_items.iter().find(|item| item.sku == sku) {
            Some(item) => item.clone(),
            None => {
                report.items += 1;
                store
                    .create_item(&NewItem {
                        sku: sku.into(),
                        name: name.into(),
                        description: description.into(),
                        category: category.into(),
                        price_minor,
                        currency: "EUR".into(),
                    })
                    .await?
            }
        };
        items.push(item);
    }
    let existing_shops = store.list_shops(&ShopFilter::default()).await?;
    for demo in &SHOPS {
        let shop = match existing_shops.iter().find(|shop| shop.name == demo.name) {
            Some(shop) => shop.clone(),
            None => {
                report.shops += 1;
                store
                    .create_shop(&NewShop {
                        name: demo.name.into(),
                        region: demo.region.into(),
                        location: GeoPoint {
                            lat: demo.lat,
                            lon: demo.lon,
                        },
                        open: true,
                    })
                    .await?
            }
        };
        let stations = store.list_stations(shop.id).await?;
        for (name, capacity, category, seconds) in STATIONS {
            if !stations.iter().any(|station| station.name == name) {
                report.stations += 1;
                store
                    .create_station(
                        shop.id,
                        &NewStation {
                            name: name.into(),
                            capacity,
                            prep_seconds: BTreeMap::from([(category.to_owned(), seconds)]),
                        },
                    )
                    .await?;
            }
        }
        let menu = store.menu(shop.id).await?;
        for item in &items {
            if !menu.iter().any(|entry| entry.item_id == item.id) {
                report.menu_entries += 1;
                store.set_availability(shop.id, item.id, true).await?;
            }
        }
    }
    Ok(report)
}

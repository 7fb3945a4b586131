//! `brigade demo-data`: two shops, each with a pizza and a garlic-bread station, and a menu.
//!
//! Also one admin, one staff member and one courier per shop, and a customer. Their passwords
//! come from `BRIGADE_DEMO_PASSWORD` when it is set, else are generated; either way they are
//! reported once, when the account is created, and never logged.
//!
//! Idempotent: everything is looked up by its natural key (shop name, station name, item SKU,
//! e-mail address) and only created when missing, and an item already on a shop's menu is left
//! as it is (an operator may have marked it unavailable). Running it twice changes nothing.

use std::collections::BTreeMap;

use brigade_domain::{
    Actor, Credentials, GeoPoint, Item, NewItem, NewShop, NewStation, Role, Shop,
};
use brigade_store::{Accounts, Catalogue, ShopFilter, Store};

use crate::auth::Passwords;
use crate::error::ApiResult;

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
    /// Accounts created, with their passwords: shown to the operator once.
    pub accounts: Vec<DemoAccount>,
}

/// A demo account created by this run.
#[derive(Clone, PartialEq, Eq)]
pub struct DemoAccount {
    /// Login e-mail address.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Password (show once; never log).
    pub password: String,
}

impl std::fmt::Debug for DemoAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoAccount")
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl DemoReport {
    /// Whether the run changed anything.
    pub fn changed(&self) -> bool {
        *self != Self::default()
    }
}

struct DemoShop {
    name: &'static str,
    /// Used in the demo staff's and courier's e-mail addresses.
    key: &'static str,
    region: &'static str,
    lat: f64,
    lon: f64,
}

const SHOPS: [DemoShop; 2] = [
    DemoShop {
        name: "Brigade Mitte",
        key: "mitte",
        region: "berlin-mitte",
        lat: 52.5219,
        lon: 13.4132,
    },
    DemoShop {
        name: "Brigade Kreuzberg",
        key: "kreuzberg",
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

/// Loads the demo data into `store`, creating only what is missing. `password` is the
/// password of new demo accounts (`BRIGADE_DEMO_PASSWORD`); without it each gets a random one.
pub async fn load(
    store: &dyn Store,
    passwords: &Passwords,
    password: Option<&str>,
) -> ApiResult<DemoReport> {
    let mut report = DemoReport::default();
    let items = items(store, &mut report).await?;
    let existing_shops = store.list_shops(&ShopFilter::default()).await?;
    let mut people = Vec::new();
    for demo in &SHOPS {
        let shop = shop(store, &existing_shops, demo, &mut report).await?;
        kitchen(store, shop.id, &mut report).await?;
        menu(store, shop.id, &items, &mut report).await?;
        for role in [Role::Staff, Role::Courier] {
            let email = format!("{}.{}@brigade.demo", role.as_str(), demo.key);
            people.push((email, role, Some(shop.id)));
        }
    }
    people.push(("admin@brigade.demo".to_owned(), Role::Admin, None));
    people.push(("customer@brigade.demo".to_owned(), Role::Customer, None));
    for (email, role, shop_id) in people {
        account(
            store,
            passwords,
            password,
            &email,
            role,
            shop_id,
            &mut report,
        )
        .await?;
    }
    Ok(report)
}

/// Every demo item, created where its SKU is missing.
async fn items(store: &dyn Catalogue, report: &mut DemoReport) -> ApiResult<Vec<Item>> {
    let existing = store.list_items().await?;
    let mut items = Vec::new();
    for (sku, name, description, category, price_minor) in ITEMS {
        let item = match existing.iter().find(|item| item.sku == sku) {
            Some(item) => item.clone(),
            None => {
                report.items += 1;
                let new = NewItem {
                    sku: sku.into(),
                    name: name.into(),
                    description: description.into(),
                    category: category.into(),
                    price_minor,
                    currency: "EUR".into(),
                };
                store.create_item(&new, &Actor::system()).await?
            }
        };
        items.push(item);
    }
    Ok(items)
}

/// The demo shop `demo`, created unless a shop of its name exists.
async fn shop(
    store: &dyn Catalogue,
    existing: &[Shop],
    demo: &DemoShop,
    report: &mut DemoReport,
) -> ApiResult<Shop> {
    if let Some(shop) = existing.iter().find(|shop| shop.name == demo.name) {
        return Ok(shop.clone());
    }
    report.shops += 1;
    let new = NewShop {
        name: demo.name.into(),
        region: demo.region.into(),
        location: GeoPoint {
            lat: demo.lat,
            lon: demo.lon,
        },
        open: true,
    };
    Ok(store.create_shop(&new, &Actor::system()).await?)
}

/// The demo stations of a shop's kitchen that it lacks.
async fn kitchen(
    store: &dyn Catalogue,
    shop_id: uuid::Uuid,
    report: &mut DemoReport,
) -> ApiResult<()> {
    let stations = store.list_stations(shop_id).await?;
    for (name, capacity, category, seconds) in STATIONS {
        if stations.iter().any(|station| station.name == name) {
            continue;
        }
        report.stations += 1;
        let new = NewStation {
            name: name.into(),
            capacity,
            prep_seconds: BTreeMap::from([(category.to_owned(), seconds)]),
        };
        store
            .create_station(shop_id, &new, &Actor::system())
            .await?;
    }
    Ok(())
}

/// Every demo item on the shop's menu.
async fn menu(
    store: &dyn Catalogue,
    shop_id: uuid::Uuid,
    items: &[Item],
    report: &mut DemoReport,
) -> ApiResult<()> {
    let menu = store.menu(shop_id).await?;
    for item in items {
        if !menu.iter().any(|entry| entry.item_id == item.id) {
            report.menu_entries += 1;
            store
                .set_availability(shop_id, item.id, true, &Actor::system())
                .await?;
        }
    }
    Ok(())
}

/// Creates a demo account unless its address is taken.
async fn account(
    store: &dyn Store,
    passwords: &Passwords,
    password: Option<&str>,
    email: &str,
    role: Role,
    shop_id: Option<uuid::Uuid>,
    report: &mut DemoReport,
) -> ApiResult<()> {
    if store.account_credentials(email).await?.is_some() {
        return Ok(());
    }
    let password = password.map_or_else(generated_password, str::to_owned);
    let credentials = Credentials {
        email: email.to_owned(),
        password: password.clone(),
    };
    crate::routes::accounts::create_account_with(
        store,
        passwords,
        credentials,
        role,
        shop_id,
        Some(&Actor::system()),
    )
    .await?;
    report.accounts.push(DemoAccount {
        email: email.to_owned(),
        role,
        password,
    });
    Ok(())
}

/// Gives every demo account that exists a new password (`password`, else a random one) and
/// reports them: how an operator who lost the printed passwords gets in again without
/// deleting data.
pub async fn reset_passwords(
    store: &dyn Accounts,
    passwords: &Passwords,
    password: Option<&str>,
) -> ApiResult<Vec<DemoAccount>> {
    let mut emails: Vec<String> = SHOPS
        .iter()
        .flat_map(|shop| {
            [Role::Staff, Role::Courier]
                .map(|role| format!("{}.{}@brigade.demo", role.as_str(), shop.key))
        })
        .collect();
    emails.extend([
        "admin@brigade.demo".to_owned(),
        "customer@brigade.demo".to_owned(),
    ]);
    let mut reset = Vec::new();
    for email in emails {
        let Some((account, _)) = store.account_credentials(&email).await? else {
            continue;
        };
        let new_password = password.map_or_else(generated_password, str::to_owned);
        let hash = passwords.hash(new_password.clone()).await?;
        store
            .set_password_hash(account.id, &hash, &Actor::system())
            .await?;
        reset.push(DemoAccount {
            email,
            role: account.role,
            password: new_password,
        });
    }
    Ok(reset)
}

/// 16 characters from an alphabet without look-alikes.
fn generated_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY3479";
    (0..16)
        .map(|_| char::from(ALPHABET[usize::from(rand::random::<u8>()) % ALPHABET.len()]))
        .collect()
}

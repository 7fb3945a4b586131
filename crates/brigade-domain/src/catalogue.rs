//! The catalogue: what can be ordered, at what price, and where it is on the menu.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::validate::{Violation, Violations, is_currency_code, is_slug};

/// Highest accepted price of one item in minor units (one million in major units for
/// two-decimal currencies): catches a misplaced decimal point long before an order total could
/// overflow.
pub const MAX_PRICE_MINOR: i64 = 100_000_000;
/// Longest item name.
pub const MAX_ITEM_NAME: usize = 100;
/// Longest item description.
pub const MAX_DESCRIPTION: usize = 500;

/// An item of the catalogue. Its category decides which station cooks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Item {
    /// Item id (UUID v7).
    pub id: Uuid,
    /// Stock-keeping unit, unique; stable across environments (demo data uses it).
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Longer description for the menu.
    pub description: String,
    /// Category key, e.g. `pizza`; stations declare which categories they cook.
    pub category: String,
    /// Price of one item in minor units (cents).
    pub price_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// When the item was created.
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /api/v1/items`.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// Unique stock-keeping unit: 1–40 lower-case letters, digits, `-`, `_`.
    #[schema(min_length = 1, max_length = 40, pattern = "^[a-z0-9_-]{1,40}$")]
    pub sku: String,
    /// Display name, 1–100 characters, not only white space.
    #[schema(min_length = 1, max_length = 100, pattern = r"[^\s\u0085]")]
    pub name: String,
    /// Description, up to 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// Category key, like `sku`.
    #[schema(min_length = 1, max_length = 40, pattern = "^[a-z0-9_-]{1,40}$")]
    pub category: String,
    /// Price in minor units, 0 to 100 000 000.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub price_minor: i64,
    /// ISO 4217 code, e.g. `EUR`.
    #[schema(min_length = 3, max_length = 3, pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

impl NewItem {
    /// Checks every field.
    pub fn validate(mut self) -> Result<Self, Vec<Violation>> {
        let mut v = Violations::new();
        v.check(
            is_slug(&self.sku),
            "sku",
            "must be 1-40 lower-case letters, digits, '-' or '_'",
        );
        self.name = v.text("name", &self.name, MAX_ITEM_NAME);
        self.description = self.description.trim().to_owned();
        v.check(
            self.description.chars().count() <= MAX_DESCRIPTION,
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        );
        v.check(
            is_slug(&self.category),
            "category",
            "must be 1-40 lower-case letters, digits, '-' or '_'",
        );
        v.check(
            (0..=MAX_PRICE_MINOR).contains(&self.price_minor),
            "price_minor",
            format!("must be between 0 and {MAX_PRICE_MINOR}"),
        );
        v.check(
            is_currency_code(&self.currency),
            "currency",
            "must be an ISO 4217 code such as EUR",
        );
        v.finish(self)
    }
}

/// One line of a shop's menu: an item, whether this shop has it now, and who cooks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MenuItem {
    /// The catalogue item.
    pub item_id: Uuid,
    /// Its SKU.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category key.
    pub category: String,
    /// Price of one, minor units.
    pub price_minor: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// Whether this shop can make it right now.
    pub available: bool,
    /// The station of this shop that cooks it.
    pub station_id: Uuid,
    /// Seconds to prepare one at that station.
    pub prep_seconds: i64,
}

/// Body of `PUT /api/v1/shops/{shop_id}/items/{item_id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Availability {
    /// Whether the shop offers the item now.
    pub available: bool,
}

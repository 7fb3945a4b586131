//! Shops and their stations.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::geo::GeoPoint;
use crate::validate::{Violation, Violations, is_slug};

/// Longest shop name.
pub const MAX_SHOP_NAME: usize = 100;
/// Longest station name.
pub const MAX_STATION_NAME: usize = 60;
/// Most chefs of one station.
pub const MAX_CAPACITY: i64 = 100;
/// Longest preparation time of one item: a day.
pub const MAX_PREP_SECONDS: i64 = 86_400;

/// A restaurant location. Orders without a named shop go to the open shop with the shortest ETA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Shop {
    /// Shop id (UUID v7).
    pub id: Uuid,
    /// Display name, unique across shops.
    pub name: String,
    /// Region key (e.g. `berlin-mitte`), for partitioning and filtering.
    pub region: String,
    /// Where couriers start from.
    pub location: GeoPoint,
    /// Closed shops take no orders.
    pub open: bool,
    /// When the shop was created.
    pub created_at: DateTime<Utc>,
    /// When the shop last changed.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /api/v1/shops`.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShop {
    /// Display name, 1–100 characters, not only white space,
    /// unique.
    #[schema(min_length = 1, max_length = 100, pattern = r"[^\s\u0085]")]
    pub name: String,
    /// Region key: 1–40 lower-case letters, digits, `-`, `_`.
    #[schema(min_length = 1, max_length = 40, pattern = "^[a-z0-9_-]{1,40}$")]
    pub region: String,
    /// Position of the shop.
    pub location: GeoPoint,
    /// Whether the shop takes orders right away (default true).
    #[serde(default = "default_true")]
    pub open: bool,
}

fn default_true() -> bool {
    true
}

impl NewShop {
    /// Checks every field, returning the trimmed input or all violations.
    pub fn validate(mut self) -> Result<Self, Vec<Violation>> {
        let mut v = Violations::new();
        self.name = v.text("name", &self.name, MAX_SHOP_NAME);
        v.check(
            is_slug(&self.region),
            "region",
            "must be 1-40 lower-case letters, digits, '-' or '_'",
        );
        self.location.validate("location", &mut v);
        v.finish(self)
    }
}

/// Body of `PATCH /api/v1/shops/{shop_id}`: only the fields present change; at least one must be.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct ShopPatch {
    /// New display name, as in `NewShop`.
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 100,
        pattern = r"[^\s\u0085]"
    )]
    pub name: Option<String>,
    /// New region key, as in `NewShop`.
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 40,
        pattern = "^[a-z0-9_-]{1,40}$"
    )]
    pub region: Option<String>,
    /// New position.
    #[schema(nullable = false)]
    pub location: Option<GeoPoint>,
    /// Open or close the shop.
    #[schema(nullable = false)]
    pub open: Option<bool>,
}

impl ShopPatch {
    /// Checks the fields that are present.
    pub fn validate(mut self) -> Result<Self, Vec<Violation>> {
        let mut v = Violations::new();
        if let Some(name) = &self.name {
            self.name = Some(v.text("name", name, MAX_SHOP_NAME));
        }
        if let Some(region) = &self.region {
            v.check(
                is_slug(region),
                "region",
                "must be 1-40 lower-case letters, digits, '-' or '_'",
            );
        }
        if let Some(location) = &self.location {
            location.validate("location", &mut v);
        }
        v.check(
            self.name.is_some()
                || self.region.is_some()
                || self.location.is_some()
                || self.open.is_some(),
            "body",
            "must change at least one of name, region, location, open",
        );
        v.finish(self)
    }
}

/// A station of a shop: a group of chefs who cook some categories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Station {
    /// Station id (UUID v7).
    pub id: Uuid,
    /// The shop it belongs to.
    pub shop_id: Uuid,
    /// Name, unique within the shop (e.g. `pizza`).
    pub name: String,
    /// Chefs working in parallel; a queue of N seconds of work takes N / capacity seconds.
    pub capacity: i64,
    /// Categories this station cooks, with the preparation time of one item of each.
    pub prep_seconds: BTreeMap<String, i64>,
}

/// Body of `POST /api/v1/shops/{shop_id}/stations`.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStation {
    /// Name, 1–60 characters, not only white space, unique within the
    /// shop.
    #[schema(min_length = 1, max_length = 60, pattern = r"[^\s\u0085]")]
    pub name: String,
    /// Chefs working in parallel, 1–100.
    #[schema(minimum = 1, maximum = 100)]
    pub capacity: i64,
    /// Category → seconds to prepare one item (1–86400); at least one
    /// category. A category belongs to at most one station per shop.
    #[schema(schema_with = prep_seconds_schema)]
    pub prep_seconds: BTreeMap<String, i64>,
}

/// The schema of [`NewStation::prep_seconds`]: a map from slugs to 1–[`MAX_PREP_SECONDS`].
fn prep_seconds_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let seconds = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
        .minimum(Some(1))
        .maximum(Some(MAX_PREP_SECONDS));
    let category = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(crate::validate::SLUG_PATTERN));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(seconds))
        .property_names(Some(category))
        .min_properties(Some(1))
        .build()
}

impl NewStation {
    /// Checks every field.
    pub fn validate(mut self) -> Result<Self, Vec<Violation>> {
        let mut v = Violations::new();
        self.name = v.text("name", &self.name, MAX_STATION_NAME);
        v.check(
            (1..=MAX_CAPACITY).contains(&self.capacity),
            "capacity",
            format!("must be between 1 and {MAX_CAPACITY}"),
        );
        v.check(
            !self.prep_seconds.is_empty(),
            "prep_seconds",
            "must name at least one category",
        );
        for (category, seconds) in &self.prep_seconds {
            v.check(
                is_slug(category),
                format!("prep_seconds.{category}"),
                "category must be 1-40 lower-case letters, digits, '-' or '_'",
            );
            v.check(
                (1..=MAX_PREP_SECONDS).contains(seconds),
                format!("prep_seconds.{category}"),
                format!("must be between 1 and {MAX_PREP_SECONDS} seconds"),
            );
        }
        v.finish(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_shop_reports_every_bad_field() {
        let shop = NewShop {
            name: "  ".into(),
            region: "Berlin Mitte".into(),
            location: GeoPoint {
                lat: 100.0,
                lon: 0.0,
            },
            open: true,
        };
        let fields: Vec<_> = shop
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["name", "region", "location.lat"]);
    }

    #[test]
    fn empty_patch_is_rejected() {
        assert!(ShopPatch::default().validate().is_err());
        let patch = ShopPatch {
            open: Some(false),
            ..ShopPatch::default()
        };
        assert!(patch.validate().is_ok());
    }

    #[test]
    fn station_needs_sane_capacity_and_times() {
        let station = NewStation {
            name: "pizza".into(),
            capacity: 0,
            prep_seconds: BTreeMap::from([("pizza".into(), 0)]),
        };
        let fields: Vec<_> = station
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["capacity", "prep_seconds.pizza"]);
    }
}

//! Locations and distances.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::Violations;

/// A WGS 84 position in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    /// Latitude, −90 to 90.
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    /// Longitude, −180 to 180.
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
}

const EARTH_RADIUS_M: f64 = 6_371_008.8;

impl GeoPoint {
    /// Records a violation under `field` when out of range or not a number.
    pub fn validate(&self, field: &str, violations: &mut Violations) {
        violations.check(
            self.lat.is_finite() && (-90.0..=90.0).contains(&self.lat),
            format!("{field}.lat"),
            "must be between -90 and 90",
        );
        violations.check(
            self.lon.is_finite() && (-180.0..=180.0).contains(&self.lon),
            format!("{field}.lon"),
            "must be between -180 and 180",
        );
    }

    /// Great-circle distance in metres (haversine): accurate to well under 1 % at city scale,
    /// which is far better than the courier-speed guess it is combined with.
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.lon - self.lon).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().asin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_between_two_known_points() {
        // Berlin Hauptbahnhof to Alexanderplatz: about 3.1 km.
        let a = GeoPoint {
            lat: 52.5251,
            lon: 13.3694,
        };
        let b = GeoPoint {
            lat: 52.5219,
            lon: 13.4132,
        };
        let d = a.distance_m(&b);
        assert!((2900.0..3200.0).contains(&d), "{d}");
        assert_eq!(a.distance_m(&a), 0.0);
    }

    #[test]
    fn out_of_range_is_named() {
        let mut v = Violations::new();
        GeoPoint {
            lat: 91.0,
            lon: f64::NAN,
        }
        .validate("delivery", &mut v);
        let errors = v.finish(()).unwrap_err();
        assert_eq!(errors[0].field, "delivery.lat");
        assert_eq!(errors[1].field, "delivery.lon");
    }
}

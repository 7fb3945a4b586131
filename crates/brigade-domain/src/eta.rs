//! Delivery estimates: how long until an order reaches the customer from a given shop.
//!
//! Per station the order needs: the work already queued there divided by the station's chefs,
//! plus this order's own work at that station. The kitchen is ready when the slowest station is;
//! then the courier needs the handover time plus the distance at courier speed. The estimate is
//! deliberately simple and explainable — every input is visible in the API.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

/// The work waiting at one station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StationLoad {
    /// The station.
    pub station_id: Uuid,
    /// Its shop.
    pub shop_id: Uuid,
    /// Chefs working in parallel.
    pub capacity: i64,
    /// Seconds of work on tickets not yet done (queued or being cooked).
    pub queued_work_seconds: i64,
}

/// What an estimate is computed from.
#[derive(Debug, Clone)]
pub struct EtaInputs<'a> {
    /// This order's work per station, seconds.
    pub work_by_station: &'a BTreeMap<Uuid, i64>,
    /// Current load of the shop's stations.
    pub loads: &'a HashMap<Uuid, StationLoad>,
    /// Shop to delivery address, metres.
    pub distance_m: f64,
    /// Average courier speed.
    pub courier_speed_kmh: f64,
    /// Ready to courier leaving, seconds.
    pub handover_seconds: i64,
}

/// An estimate, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eta {
    /// Until the kitchen is done, seconds.
    pub prep_seconds: i64,
    /// Handover plus travel, seconds.
    pub delivery_seconds: i64,
}

impl Eta {
    /// Placement to delivery, seconds.
    pub fn total_seconds(&self) -> i64 {
        self.prep_seconds + self.delivery_seconds
    }
}

/// Computes the estimate; a station missing from `loads` counts as idle with one chef.
pub fn estimate(inputs: &EtaInputs<'_>) -> Eta {
    let prep_seconds = inputs
        .work_by_station
        .iter()
        .map(|(station, own_work)| {
            let (queued, capacity) = inputs.loads.get(station).map_or((0, 1), |load| {
                (load.queued_work_seconds, load.capacity.max(1))
            });
            // Ceiling division: a queue of 10 s at 3 chefs still costs 4 s, not 3.
            (queued.max(0) + capacity - 1) / capacity + own_work
        })
        .max()
        .unwrap_or(0);
    let travel_seconds = (inputs.distance_m / 1000.0 / inputs.courier_speed_kmh * 3600.0).ceil();
    Eta {
        prep_seconds,
        delivery_seconds: inputs.handover_seconds + travel_seconds as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(station: Uuid, capacity: i64, queued: i64) -> (Uuid, StationLoad) {
        (
            station,
            StationLoad {
                station_id: station,
                shop_id: Uuid::nil(),
                capacity,
                queued_work_seconds: queued,
            },
        )
    }

    #[test]
    fn slowest_station_and_travel_decide() {
        let (pizza, bread) = (Uuid::now_v7(), Uuid::now_v7());
        let work = BTreeMap::from([(pizza, 600), (bread, 120)]);
        let loads = HashMap::from([load(pizza, 2, 1200), load(bread, 1, 1000)]);
        let eta = estimate(&EtaInputs {
            work_by_station: &work,
            loads: &loads,
            distance_m: 5000.0,
            courier_speed_kmh: 20.0,
            handover_seconds: 60,
        });
        // pizza: 1200 / 2 + 600 = 1200; bread: 1000 / 1 + 120 = 1120.
        assert_eq!(eta.prep_seconds, 1200);
        // 5 km at 20 km/h = 900 s, plus 60 s handover.
        assert_eq!(eta.delivery_seconds, 960);
        assert_eq!(eta.total_seconds(), 2160);
    }

    #[test]
    fn more_chefs_shorten_the_queue() {
        let station = Uuid::now_v7();
        let work = BTreeMap::from([(station, 100)]);
        let busy = HashMap::from([load(station, 1, 900)]);
        let staffed = HashMap::from([load(station, 3, 900)]);
        let inputs = |loads| EtaInputs {
            work_by_station: &work,
            loads,
            distance_m: 0.0,
            courier_speed_kmh: 20.0,
            handover_seconds: 0,
        };
        assert_eq!(estimate(&inputs(&busy)).prep_seconds, 1000);
        assert_eq!(estimate(&inputs(&staffed)).prep_seconds, 400);
    }
}

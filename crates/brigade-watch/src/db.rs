//! Alert state, history, silences and the notification log: kept in brigade's database through
//! the store ([`brigade_store::alert_state`]), under the same write gate as the replicas'
//! writes.

pub use brigade_store::alert_state::{
    AlertStateError as DbError, AlertStateStore as Db, HistoryRow,
};

//! What the supervisor's tasks and the ops API share: the children's status, the addresses,
//! the pools' command channels, the database link and the recent events. Every part of `up`
//! reads it; it depends on nothing that runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::api::{ChildStatus, Status};
use crate::events::Events;
use crate::pool::command::PoolCommand;
use crate::public::PublicEndpoint;

/// Where the public listener, the balancer's admin API and watch are.
#[derive(Clone, Default)]
pub(crate) struct Addresses {
    pub(crate) public: Option<String>,
    pub(crate) balancer_admin: Option<String>,
    /// Changes when watch is restarted.
    pub(crate) watch: Option<String>,
}

/// State shared by the supervisor's tasks and the ops API.
#[derive(Clone, Default)]
pub struct Shared {
    pub(crate) children: Arc<Mutex<BTreeMap<String, ChildStatus>>>,
    pub(crate) addresses: Arc<Mutex<Addresses>>,
    pub(crate) pools: Arc<Mutex<BTreeMap<String, mpsc::Sender<PoolCommand>>>>,
    pub(crate) db_link: Arc<Mutex<Option<crate::db_link::DbLink>>>,
    pub(crate) data_dir: Arc<std::sync::OnceLock<PathBuf>>,
    pub(crate) endpoint: Arc<std::sync::OnceLock<PublicEndpoint>>,
    /// Recent events.
    pub events: Events,
    /// The off-peak jobs, for the ops API.
    pub(crate) jobs: crate::scheduler::board::JobBoard,
    /// Continuous backups and restores, for the ops API.
    pub(crate) backups: Arc<Mutex<crate::api::BackupView>>,
    /// Error groups, fed by the central log, for the ops API.
    pub(crate) errors: crate::errors::groups::ErrorGroups,
}

impl Shared {
    /// The command channel of a pool's manager.
    pub fn pool(&self, name: &str) -> Option<mpsc::Sender<PoolCommand>> {
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The replicas' database link (cut by the db-outage drill), once set up.
    pub(crate) fn db_link(&self) -> Option<crate::db_link::DbLink> {
        self.db_link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Names of the pools.
    pub fn pool_names(&self) -> Vec<String> {
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Forgets a child that was scaled away.
    pub(crate) fn remove(&self, instance: &str) {
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(instance);
    }

    pub(crate) fn update(&self, instance: &str, change: impl FnOnce(&mut ChildStatus)) {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(status) = children.get_mut(instance) {
            change(status);
        }
    }

    /// Publishes watch's API address (it changes when watch is restarted).
    pub(crate) fn set_watch(&self, address: Option<String>) {
        self.addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .watch = address;
    }

    pub(crate) fn set_addresses(&self, addresses: Addresses) {
        *self.addresses.lock().unwrap_or_else(|p| p.into_inner()) = addresses;
    }

    pub(crate) fn insert(&self, status: ChildStatus) {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        children.insert(status.instance.clone(), status);
    }

    /// A snapshot for the ops API.
    pub fn status(&self) -> Status {
        let Addresses {
            public,
            balancer_admin,
            watch,
        } = self
            .addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Status {
            public,
            endpoint: self.endpoint.get().cloned(),
            balancer_admin,
            watch,
            data_dir: self.data_dir.get().cloned(),
            children: self
                .children
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect(),
            events: self.events.recent(),
        }
    }
}

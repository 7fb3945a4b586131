//! `spawn_app` and fixtures shared by the integration tests.

use std::path::PathBuf;
use std::sync::Arc;

use brigade_api::Application;
use brigade_core::config::{CacheSettings, StorageSettings};
use brigade_core::{Settings, Shutdown};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use tempfile::TempDir;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend from each body: `mod sqlite` always runs, `mod postgres`
/// runs when PostgreSQL is configured.
macro_rules! both_backends {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
                        .await
                        .expect("sqlite is always available");
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some($app) =
                        crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await
                    else {
                        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
                        return;
                    };
                    $body
                }
            )*
        }
    };
}

/// A database that disappears with the test.
pub enum TestDb {
    Sqlite(TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A fresh database, or `None` for PostgreSQL when it is not configured.
    pub async fn create(backend: Backend) -> Option<(Self, StorageSettings)> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let storage = StorageSettings {
                    data_dir: dir.path().to_path_buf(),
                    ..StorageSettings::default()
                };
                Some((Self::Sqlite(dir), storage))
            }
            Backend::Postgres => {
                let admin_url = brigade_store::test_support::postgres_url()?;
                let name = format!("brigade_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("BRIGADE_TEST_POSTGRES_URL must point at a reachable PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                let storage = StorageSettings {
                    database_url: Some(database_url(&admin_url, &name)),
                    max_connections: 5,
                    ..StorageSettings::default()
                };
                Some((Self::Postgres { admin_url, name }, storage))
            }
        }
    }

    /// The SQLite data directory (SQLite only).
    pub fn data_dir(&self) -> Option<PathBuf> {
        match self {
            Self::Sqlite(dir) => Some(dir.path().to_path_buf()),
            Self::Postgres { .. } => None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside async context; a short-lived runtime on its own thread does it.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// `admin_url` with its database name replaced by `name`.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host = path_start.map_or(base, |i| &base[..i]);
    format!("{host}/{name}{query}")
}

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub shutdown: Shutdown,
    pub backend: Backend,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub db: Arc<TestDb>,
}

/// Settings for tests: port 0, no drain delay, the given storage and cache.
pub fn test_settings(storage: StorageSettings, cache: CacheSettings) -> Settings {
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.server.drain_delay_ms = 0;
    settings.storage = storage;
    settings.cache = cache;
    // Cheap hashing: the tests check behaviour, not Argon2's cost.
    settings.auth.argon2_memory_kib = 64;
    settings.auth.argon2_iterations = 1;
    // Every test client signs up from 127.0.0.1.
    settings.auth.max_signups_per_address = 10_000;
    settings
}

/// Starts the application on a fresh database with the in-memory cache.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, CacheSettings::default()).await
}

/// Starts the application on a fresh database with the given cache settings.
pub async fn spawn_app_with(backend: Backend, cache: CacheSettings) -> Option<TestApp> {
    let (db, storage) = TestDb::create(backend).await?;
    Some(spawn_on(Arc::new(db), storage, cache, backend).await)
}

/// Starts another application on an existing database (a second replica).
pub async fn spawn_on(
    db: Arc<TestDb>,
    storage: StorageSettings,
    cache: CacheSettings,
    backend: Backend,
) -> TestApp {
    spawn_configured(db, test_settings(storage, cache), backend).await
}

/// Starts an application with exactly these settings on an existing database.
///
/// Its `client` sends an admin's token with every request (tests of other roles pass their own
/// token, or use [`TestApp::anonymous`]); the admin is created on first start.
pub async fn spawn_configured(db: Arc<TestDb>, settings: Settings, backend: Backend) -> TestApp {
    let application = Application::build(settings)
        .await
        .expect("application builds");
    let store = application.store();
    let address = format!("http://{}", application.local_addr());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(application.run_until_stopped(shutdown.clone()));
    let client = admin_client(store.as_ref(), &address).await;
    TestApp {
        address,
        client,
        shutdown,
        backend,
        server: Some(server),
        db,
    }
}

/// A client holding an admin's token, creating the admin on first use.
async fn admin_client(store: &dyn brigade_store::Store, address: &str) -> Client {
    let admin = json!({"email": ADMIN_EMAIL, "password": PASSWORD});
    // A second replica on the same database finds the admin already there.
    let _ = brigade_api::routes::accounts::create_account_with(
        store,
        &brigade_api::auth::Passwords::new(64, 1),
        serde_json::from_value(admin.clone()).unwrap(),
        brigade_domain::Role::Admin,
        None,
        Some(&brigade_domain::Actor::system()),
    )
    .await;
    let session = Client::new()
        .post(format!("{address}/api/v1/sessions"))
        .json(&admin)
        .send()
        .await
        .expect("admin logs in");
    let session: Value = expect_json(session, StatusCode::CREATED).await;
    let token = session["token"].as_str().unwrap().to_owned();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    Client::builder().default_headers(headers).build().unwrap()
}

/// The admin every test app starts with.
pub const ADMIN_EMAIL: &str = "admin@brigade.test";
/// The password of every test account.
pub const PASSWORD: &str = "correct horse battery";

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// A shop with a pizza and a garlic-bread station, and two items on its menu.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub shop: Value,
    pub pizza_station: String,
    pub bread_station: String,
    pub pizza: String,
    pub bread: String,
}

impl Fixture {
    pub fn shop_id(&self) -> String {
        self.shop["id"].as_str().unwrap().to_owned()
    }
}

impl TestApp {
    /// The storage settings of this app's database (for a second replica).
    pub fn storage(&self) -> StorageSettings {
        match self.db.as_ref() {
            TestDb::Sqlite(dir) => StorageSettings {
                data_dir: dir.path().to_path_buf(),
                ..StorageSettings::default()
            },
            TestDb::Postgres { admin_url, name } => StorageSettings {
                database_url: Some(database_url(admin_url, name)),
                max_connections: 5,
                ..StorageSettings::default()
            },
        }
    }

    /// A second replica on this app's database with changed settings (e.g. another payment
    /// provider); its client is an admin's, like this one's.
    /// Tokens verify on every replica, so it reuses this app's admin client.
    pub async fn replica_with(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = test_settings(self.storage(), CacheSettings::default());
        configure(&mut settings);
        let application = Application::build(settings)
            .await
            .expect("application builds");
        let address = format!("http://{}", application.local_addr());
        let shutdown = Shutdown::new();
        let server = tokio::spawn(application.run_until_stopped(shutdown.clone()));
        TestApp {
            address,
            client: self.client.clone(),
            shutdown,
            backend: self.backend,
            server: Some(server),
            db: self.db.clone(),
        }
    }

    /// The audit events matching a query string (e.g. `entity=order&entity_id=…`), newest first.
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let page = expect_json(
            self.get(&format!("/api/v1/admin/audit?limit=100&{query}"))
                .await,
            StatusCode::OK,
        )
        .await;
        page["items"].as_array().unwrap().clone()
    }

    /// The value of one sample of `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .filter_map(|line| line.strip_prefix(series))
            .filter_map(|rest| rest.trim().parse::<f64>().ok())
            .next()
            .unwrap_or(0.0)
    }

    /// Signs up and logs in a customer; returns the token.
    pub async fn log_in_new(&self, email: &str) -> String {
        let credentials = json!({"email": email, "password": PASSWORD});
        let response = self
            .anonymous()
            .post(self.url("/api/v1/accounts"))
            .json(&credentials)
            .send()
            .await
            .expect("POST");
        expect_json(response, StatusCode::ACCEPTED).await;
        self.log_in(email).await
    }

    /// Logs in an existing account; returns the token.
    pub async fn log_in(&self, email: &str) -> String {
        let credentials = json!({"email": email, "password": PASSWORD});
        let response = self
            .anonymous()
            .post(self.url("/api/v1/sessions"))
            .json(&credentials)
            .send()
            .await
            .expect("POST");
        let session = expect_json(response, StatusCode::CREATED).await;
        session["token"].as_str().unwrap().to_owned()
    }

    /// Creates (as admin) a staff or courier account of a shop and logs it in.
    pub async fn log_in_staff(&self, email: &str, role: &str, shop_id: &str) -> String {
        let body = json!({"email": email, "password": PASSWORD, "role": role, "shop_id": shop_id});
        expect_json(
            self.post("/api/v1/admin/accounts", &body).await,
            StatusCode::CREATED,
        )
        .await;
        self.log_in(email).await
    }

    /// A client without credentials.
    pub fn anonymous(&self) -> Client {
        Client::new()
    }

    /// GET with a bearer token.
    pub async fn get_as(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .expect("PUT")
    }

    pub async fn patch(&self, path: &str, body: &Value, if_match: Option<&str>) -> Response {
        let mut request = self.client.patch(self.url(path)).json(body);
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        request.send().await.expect("PATCH")
    }

    /// POST with an empty body (kitchen actions).
    pub async fn act(&self, path: &str) -> Response {
        self.client.post(self.url(path)).send().await.expect("POST")
    }

    /// Creates an item and returns its id.
    pub async fn item(
        &self,
        sku: &str,
        category: &str,
        price_minor: i64,
        currency: &str,
    ) -> String {
        let response = self
            .post(
                "/api/v1/items",
                &json!({"sku": sku, "name": sku, "category": category,
                        "price_minor": price_minor, "currency": currency}),
            )
            .await;
        let body = expect_json(response, StatusCode::CREATED).await;
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a shop at a location.
    pub async fn shop(&self, name: &str, lat: f64, lon: f64) -> Value {
        let response = self
            .post(
                "/api/v1/shops",
                &json!({"name": name, "region": "test", "location": {"lat": lat, "lon": lon}}),
            )
            .await;
        expect_json(response, StatusCode::CREATED).await
    }

    /// Adds a station cooking one category.
    pub async fn station(
        &self,
        shop_id: &str,
        name: &str,
        capacity: i64,
        category: &str,
        seconds: i64,
    ) -> String {
        let response = self
            .post(
                &format!("/api/v1/shops/{shop_id}/stations"),
                &json!({"name": name, "capacity": capacity, "prep_seconds": {category: seconds}}),
            )
            .await;
        expect_json(response, StatusCode::CREATED).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn set_available(&self, shop_id: &str, item_id: &str, available: bool) {
        let response = self
            .put(
                &format!("/api/v1/shops/{shop_id}/items/{item_id}"),
                &json!({"available": available}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    /// Items `pizza` (600 s, 1000 EUR) and `bread` (300 s, 400 EUR), shared by every fixture
    /// shop of this app; created on first use.
    pub async fn catalogue(&self) -> (String, String) {
        let items = expect_json(self.get("/api/v1/items").await, StatusCode::OK).await;
        let find = |sku: &str| {
            items
                .as_array()
                .unwrap()
                .iter()
                .find(|item| item["sku"] == sku)
                .map(|item| item["id"].as_str().unwrap().to_owned())
        };
        let pizza = match find("pizza") {
            Some(id) => id,
            None => self.item("pizza", "pizza", 1000, "EUR").await,
        };
        let bread = match find("bread") {
            Some(id) => id,
            None => self.item("bread", "garlic-bread", 400, "EUR").await,
        };
        (pizza, bread)
    }

    /// A full shop: stations, both items on the menu.
    pub async fn fixture(&self, name: &str, lat: f64, lon: f64) -> Fixture {
        let (pizza, bread) = self.catalogue().await;
        let shop = self.shop(name, lat, lon).await;
        let shop_id = shop["id"].as_str().unwrap().to_owned();
        let pizza_station = self.station(&shop_id, "pizza", 2, "pizza", 600).await;
        let bread_station = self
            .station(&shop_id, "garlic-bread", 1, "garlic-bread", 300)
            .await;
        self.set_available(&shop_id, &pizza, true).await;
        self.set_available(&shop_id, &bread, true).await;
        Fixture {
            shop,
            pizza_station,
            bread_station,
            pizza,
            bread,
        }
    }

    /// Places an order at a shop and returns the created order.
    pub async fn order(&self, shop_id: Option<&str>, items: &[(&str, i64)]) -> Value {
        let response = self
            .post("/api/v1/orders", &order_body(shop_id, items))
            .await;
        expect_json(response, StatusCode::CREATED).await
    }

    /// Moves an order to `status` through the API with the right If-Match.
    pub async fn transition(&self, order: &Value, status: &str) -> Response {
        let tag = format!("\"{}\"", order["version"]);
        self.patch(
            &format!("/api/v1/orders/{}", order["id"].as_str().unwrap()),
            &json!({"status": status}),
            Some(&tag),
        )
        .await
    }

    /// Reads an order.
    pub async fn read_order(&self, id: &str) -> Value {
        expect_json(
            self.get(&format!("/api/v1/orders/{id}")).await,
            StatusCode::OK,
        )
        .await
    }
}

/// Body of `POST /orders` delivering near the fixture shops.
pub fn order_body(shop_id: Option<&str>, items: &[(&str, i64)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(id, quantity)| json!({"item_id": id, "quantity": quantity}))
        .collect();
    let mut body = json!({"items": items, "delivery": {"lat": 52.51, "lon": 13.40}});
    if let Some(shop_id) = shop_id {
        body["shop_id"] = json!(shop_id);
    }
    body
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts a problem+json answer with `status` and returns it.
pub async fn expect_problem(response: Response, status: StatusCode) -> Value {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = expect_json(response, status).await;
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["instance"]
            .as_str()
            .unwrap_or_default()
            .starts_with("urn:brigade:request:"),
        "{body}"
    );
    body
}

/// The field names a problem lists.
pub fn problem_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

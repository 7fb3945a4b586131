//! balance.toml parsing and validation.

use super::*;

const GOOD: &str = r#"
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"

[[pools]]
name = "orders"
algorithm = "consistent_hash"
hash_key = { header = "x-shop-id" }
health = { path = "/health/ready", interval_ms = 500, timeout_ms = 200, rise = 1, fall = 1 }
[[pools.backends]]
address = "127.0.0.1:41001"
[[pools.backends]]
address = "127.0.0.1:41002"
backup = true

[[routes]]
path_prefix = "/api"
pool = "orders"
"#;

#[test]
fn the_documented_example_is_valid() {
    let text = include_str!("../../../../examples/balance.toml");
    let config = Config::parse(text, "examples/balance.toml").unwrap();
    assert_eq!(config.pools.len(), 2);
    assert_eq!(config.routes.last().unwrap().pool, "orders");
}

#[test]
fn parses_a_full_file() {
    let config = Config::parse(GOOD, "balance.toml").unwrap();
    assert_eq!(config.pools[0].algorithm, Algorithm::ConsistentHash);
    assert_eq!(
        config.pools[0].hash_key,
        Some(HashKey::Header("x-shop-id".into()))
    );
    assert!(config.pools[0].backends[1].backup);
    assert_eq!(config.admin.listen.port(), 0);
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let text = GOOD.replace("backup = true", "backup = true\nwieght = 2");
    let error = Config::parse(&text, "balance.toml")
        .unwrap_err()
        .to_string();
    assert!(error.contains("wieght"), "{error}");
    assert!(error.contains("line 15"), "{error}");
}

#[test]
fn semantic_errors_name_the_key() {
    let text = GOOD.replace("pool = \"orders\"", "pool = \"kitchen\"");
    let error = Config::parse(&text, "x").unwrap_err().to_string();
    assert!(error.starts_with("routes[0].pool"), "{error}");
    let text = GOOD.replace("backup = true", "weight = 0");
    let error = Config::parse(&text, "x").unwrap_err().to_string();
    assert!(error.starts_with("pools[0].backends[1].weight"), "{error}");
    let text = GOOD.replace("admin = \"127.0.0.1:0\"", "admin = \"0.0.0.0:0\"");
    let error = Config::parse(&text, "x").unwrap_err().to_string();
    assert!(error.starts_with("admin.token"), "{error}");
    let text = GOOD.replace(
        "admin = \"127.0.0.1:0\"",
        "[admin]\nlisten = \"0.0.0.0:0\"\ntoken = \"t\"\n",
    );
    // A table must come after top-level keys; rebuild the file in that order.
    let text = text.replace("[admin]\nlisten = \"0.0.0.0:0\"\ntoken = \"t\"\n", "");
    let short = format!("admin = {{ listen = \"0.0.0.0:0\", token = \"t\" }}\n{text}");
    let error = Config::parse(&short, "x").unwrap_err().to_string();
    assert!(
        error.starts_with("admin.token: must be at least 16 bytes"),
        "{error}"
    );
    let token = "0123456789abcdef";
    let text = format!("admin = {{ listen = \"0.0.0.0:0\", token = \"{token}\" }}\n{text}");
    let config = Config::parse(&text, "x").unwrap();
    assert_eq!(config.admin.token.as_deref(), Some(token));
    for value in ["nan", "0.5"] {
        let text = GOOD.replace(
            "algorithm = \"consistent_hash\"",
            &format!("algorithm = \"consistent_hash\"\nbounded_load = {value}"),
        );
        let error = Config::parse(&text, "x").unwrap_err().to_string();
        assert!(
            error.starts_with("pools[0].bounded_load"),
            "{value}: {error}"
        );
    }
    let text = format!("{GOOD}\n[limits]\nmax_headers = 4\n");
    let error = Config::parse(&text, "x").unwrap_err().to_string();
    assert!(error.starts_with("limits.max_headers"), "{error}");
}

#[test]
fn the_admin_token_can_come_from_a_file_beside_balance_toml() {
    let folder = tempfile::tempdir().unwrap();
    let token = "a-token-from-a-mounted-secret";
    std::fs::write(folder.path().join("admin-token"), format!("{token}\n")).unwrap();
    let admin = "admin = { listen = \"0.0.0.0:0\", token_file = \"admin-token\" }";
    let path = folder.path().join("balance.toml");
    std::fs::write(&path, GOOD.replace("admin = \"127.0.0.1:0\"", admin)).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(
        config.admin.token.as_deref(),
        Some(token),
        "read and trimmed"
    );
    assert_eq!(
        config.admin.token_file.as_deref(),
        Some(folder.path().join("admin-token").as_path())
    );

    for (file_text, expected) in [
        (None, "admin.token_file: cannot read"),
        (Some("\n"), "admin.token_file:"),
        (Some("short"), "admin.token: must be at least 16 bytes"),
    ] {
        let file = folder.path().join("admin-token");
        match file_text {
            Some(text) => std::fs::write(&file, text).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(error.starts_with(expected), "{error}");
    }
    let both =
        "admin = { listen = \"0.0.0.0:0\", token = \"0123456789abcdef\", token_file = \"x\" }";
    let error = Config::parse(&GOOD.replace("admin = \"127.0.0.1:0\"", both), "x")
        .unwrap_err()
        .to_string();
    assert!(error.contains("not both"), "{error}");
}

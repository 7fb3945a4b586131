//! Loading and validating settings: layers, keys named in errors, defaults.

use super::*;
use figment::Jail;

#[test]
fn layers_apply_in_order() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "brigade.toml",
            "[server]\nlisten = \"127.0.0.1:4000\"\nbody_limit_bytes = 100\n",
        )?;
        jail.set_env("BRIGADE_SERVER__BODY_LIMIT_BYTES", "200");
        jail.set_env("BRIGADE_TEST_POSTGRES_URL", "postgres://ignored");
        jail.set_env("DATABASE_URL", "postgres://db/test");
        jail.set_env("REDIS_URL", "redis://cache");
        let settings = Settings::load(None).expect("settings load");
        assert_eq!(settings.server.listen.port(), 4000);
        assert_eq!(settings.server.body_limit_bytes, 200);
        assert_eq!(
            settings.storage.database_url.as_deref(),
            Some("postgres://db/test")
        );
        assert_eq!(settings.cache.redis_url.as_deref(), Some("redis://cache"));
        let flags = Serialized::default("server.body_limit_bytes", 300);
        let settings =
            Settings::from_figment(Settings::figment(None).unwrap().merge(flags)).unwrap();
        assert_eq!(settings.server.body_limit_bytes, 300);
        Ok(())
    });
}

#[test]
fn bad_values_name_the_key() {
    Jail::expect_with(|jail| {
        jail.set_env("BRIGADE_SERVER__LISTEN", "not-an-address");
        let error = Settings::load(None).unwrap_err().to_string().to_lowercase();
        assert!(error.contains("server.listen"), "{error}");
        assert!(error.contains("brigade_"), "{error}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file("brigade.toml", "[server]\nlisen = \"x\"\n")?;
        let error = Settings::load(None).unwrap_err().to_string();
        assert!(error.contains("lisen"), "{error}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("BRIGADE_STORAGE__MAX_CONNECTIONS", "0");
        let error = Settings::load(None).unwrap_err().to_string();
        assert!(error.contains("storage.max_connections"), "{error}");
        Ok(())
    });
}

#[test]
fn every_section_names_its_bad_key() {
    let key_of = |change: &dyn Fn(&mut Settings)| {
        let mut settings = Settings::default();
        change(&mut settings);
        match settings.validate() {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("not refused: {other:?}"),
        }
    };
    assert!(Settings::default().validate().is_ok());
    assert_eq!(
        key_of(&|s| s.server.idle_timeout_ms = 0),
        "server.idle_timeout_ms"
    );
    assert_eq!(
        key_of(&|s| s.auth.signup_window_secs = 0),
        "auth.signup_window_secs"
    );
    assert_eq!(
        key_of(&|s| s.cache.redis_url = Some("http://x".into())),
        "cache.redis_url"
    );
    assert_eq!(
        key_of(&|s| s.auth.argon2_iterations = 0),
        "auth.argon2_memory_kib"
    );
    assert_eq!(
        key_of(&|s| s.faults.error_ratio = f64::NAN),
        "faults.error_ratio"
    );
    assert_eq!(
        key_of(&|s| s.payments.provider = PaymentProviderKind::Stripe),
        "payments.stripe.secret_key"
    );
    assert_eq!(
        key_of(&|s| s.delivery.courier_speed_kmh = 0.0),
        "delivery.courier_speed_kmh"
    );
}

#[test]
fn a_named_config_file_must_exist() {
    let error = Settings::load(Some(Path::new("/nonexistent/brigade.toml"))).unwrap_err();
    assert!(matches!(error, ConfigError::MissingFile(_)));
}

#[test]
fn sqlite_file_lives_in_the_data_dir() {
    let storage = StorageSettings {
        data_dir: PathBuf::from("/var/lib/brigade"),
        ..StorageSettings::default()
    };
    assert_eq!(
        storage.effective_url(),
        "sqlite:///var/lib/brigade/brigade.db"
    );
}

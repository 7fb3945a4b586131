//! `brigade up` with TLS on its public port, end to end with the real binary: with
//! `--tls-self-signed` the port speaks https to a client trusting the certificate made in the
//! data directory and to no other, plain http gets no API answer, and what talks to the port
//! for `up` (an off-peak job, `brigade status`, a drill in another process) follows it to
//! https; up.toml passes the user's certificate through; TLS flags and up.toml keys that do
//! not go together stop `up` with exit code 2, naming the one at fault.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::{BRIGADE, Running, Up, assert_drill_holds};

/// A client of the public port that trusts `cert` (a PEM file) alone, or the system's roots.
fn client(cert: Option<&Path>) -> reqwest::blocking::Client {
    let builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10));
    let builder = match cert {
        Some(cert) => {
            let pem = std::fs::read(cert).unwrap();
            builder.tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        }
        None => builder,
    };
    builder.build().unwrap()
}

#[test]
fn a_self_signed_up_serves_https_to_whoever_trusts_it_and_its_tools_follow() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let up = Up::start_with(&data, &["--tls-self-signed", "--no-watch"], &[]);
    let status = up.status();
    let url = format!("https://{}", up.public);
    assert_eq!(status["public_url"], url.as_str(), "{status}");
    let cert = data.join("up").join("tls").join("cert.pem");
    assert_eq!(status["public_ca"], cert.to_str().unwrap(), "{status}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(data.join("up").join("tls").join("key.pem")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }

    // Trusting the certificate (the name is checked: it is made for 127.0.0.1 too).
    let shops = client(Some(&cert))
        .get(format!("{url}/api/v1/shops"))
        .send()
        .unwrap();
    assert_eq!(shops.status(), 200);
    let shops: Value = shops.json().unwrap();
    assert!(!shops.as_array().unwrap().is_empty(), "{shops}");
    // Without it the handshake fails.
    let untrusted = client(None)
        .get(format!("{url}/api/v1/shops"))
        .send()
        .unwrap_err();
    assert!(
        format!("{untrusted:?}").contains("InvalidCertificate(UnknownIssuer)"),
        "{untrusted:?}"
    );
    // Plain http on the TLS port gets no answer from the API.
    let plain = client(None)
        .get(format!("http://{}/api/v1/shops", up.public))
        .send();
    assert!(
        !plain.as_ref().is_ok_and(|r| r.status().is_success()),
        "{plain:?}"
    );

    run_daily_report(&up);

    // `brigade status` shows the https URL.
    let shown = Command::new(BRIGADE)
        .args(["status", "--ops", &up.ops])
        .output()
        .unwrap();
    assert!(shown.status.success());
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains(&format!("public {url}")), "{text}");
    assert!(text.contains("serve-orders-2"), "{text}");

    // A drill in another process reads the URL and the certificate from the status.
    let (report, passed) = up.drill("kill-replica", 2, &[]);
    assert_drill_holds("kill-replica", &report, passed, &["no request failed"]);
}

/// Runs `daily-report` through the ops API: the job logs in through the public port.
fn run_daily_report(up: &Up) {
    let report = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .post(format!("http://{}/api/jobs/daily-report/run", up.ops))
        .header("x-brigade-ops-token", common::ops_token(&up.ops))
        .send()
        .unwrap();
    assert_eq!(report.status(), 200, "{}", report.text().unwrap());
}

#[test]
fn up_toml_passes_the_users_certificate_through_and_the_jobs_reach_it_by_address() {
    let dir = tempfile::tempdir().unwrap();
    // A certificate for a name only: brigade's own clients dial 127.0.0.1 all the same.
    let (cert, _) =
        brigade_balance::tls::self_signed(&dir.path().join("mine"), &["shop.test".into()]).unwrap();
    let config = dir.path().join("up.toml");
    let text = "tls_cert = \"mine/cert.pem\"\ntls_key = \"mine/key.pem\"\nwatch = false\n";
    std::fs::write(&config, text).unwrap();
    let data = dir.path().join("data");
    let up = Up::start_with(&data, &["--config", config.to_str().unwrap()], &[]);
    let status = up.status();
    assert_eq!(status["public_ca"], cert.to_str().unwrap(), "{status}");
    assert!(
        !data.join("up").join("tls").exists(),
        "nothing self-signed made"
    );

    // Whoever trusts it reaches the port by its name.
    let address: std::net::SocketAddr = up.public.parse().unwrap();
    let pem = std::fs::read(&cert).unwrap();
    let shops = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .resolve("shop.test", address)
        .build()
        .unwrap()
        .get(format!("https://shop.test:{}/api/v1/shops", address.port()))
        .send()
        .unwrap();
    assert_eq!(shops.status(), 200);
    run_daily_report(&up);
}

/// Runs `brigade up` with `args` from `dir`; it must stop at once with exit code 2 and say
/// each of `expected` on stderr.
fn refused(dir: &Path, args: &[&str], expected: &[&str]) {
    let output = Command::new(BRIGADE)
        .arg("up")
        .args(args)
        .args(["--port", "0", "--ops-port", "0", "--data-dir", "data"])
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    for text in expected {
        assert!(stderr.contains(text), "{args:?}: {stderr}");
    }
    assert!(!dir.join("data").exists(), "{args:?} started: {stderr}");
}

#[test]
fn tls_settings_that_do_not_go_together_exit_2_naming_the_flag_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let pair = |name: &str| {
        let folder = dir.path().join(name);
        brigade_balance::tls::self_signed(&folder, &["localhost".into()]).unwrap()
    };
    let ((cert, _), (_, other_key)) = (pair("a"), pair("b"));
    let (cert, other_key) = (cert.to_str().unwrap(), other_key.to_str().unwrap());

    refused(dir.path(), &["--tls-cert", cert], &["--tls-key"]);
    refused(
        dir.path(),
        &[
            "--tls-self-signed",
            "--tls-cert",
            cert,
            "--tls-key",
            other_key,
        ],
        &["--tls-self-signed"],
    );
    refused(
        dir.path(),
        &["--tls-cert", "missing.pem", "--tls-key", other_key],
        &["--tls-cert", "missing.pem"],
    );
    refused(
        dir.path(),
        &["--tls-cert", cert, "--tls-key", other_key],
        &["--tls-key"],
    );

    // up.toml: paths relative to its folder, the same rules, its name in the message.
    let config = dir.path().join("up.toml");
    for (text, expected) in [
        ("tls_cert = \"a/cert.pem\"\n", "tls_cert: needs tls_key"),
        (
            "tls_self_signed = true\ntls_cert = \"a/cert.pem\"\ntls_key = \"a/key.pem\"\n",
            "tls_self_signed",
        ),
        (
            "tls_cert = \"a/cert.pem\"\ntls_key = \"b/key.pem\"\n",
            "tls_key",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        refused(dir.path(), &[], &[expected, "up.toml"]);
    }
}

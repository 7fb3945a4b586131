//! The first `brigade up` as a newcomer runs it: an empty working directory, the default
//! relative data directory, no variables. The demo passwords are shown (on the terminal, in the
//! central log and in the data directory's accounts file) and work; watch runs and evaluates
//! brigade's rules; the off-peak jobs that need the admin are scheduled; lost passwords are
//! reset without deleting data; a child that cannot start says why; ports still held for a
//! moment by a stopping run are waited for.

mod as_user;
mod common;

use std::time::Duration;

use as_user::{Running, UserUp, brigade, passwords_in, token, wait_until};
use serde_json::Value;

#[test]
fn a_first_run_from_an_empty_directory_shows_working_passwords_and_runs_watch_and_jobs() {
    let cwd = tempfile::tempdir().unwrap();
    let up = UserUp::start(cwd.path(), &["--replicas", "2"]);

    // The passwords were printed for people, one per demo account, and they work.
    let printed = up.printed_passwords();
    for email in [
        "admin@brigade.demo",
        "customer@brigade.demo",
        "staff.mitte@brigade.demo",
        "courier.kreuzberg@brigade.demo",
    ] {
        assert!(
            printed.contains_key(email),
            "{email} not printed:\n{}",
            up.stderr.lock().unwrap()
        );
    }
    assert!(!up.log_in("staff.mitte@brigade.demo").is_empty());

    // The same accounts are in ./brigade-data/demo-accounts.json, readable by the owner only.
    let file = cwd.path().join("brigade-data").join("demo-accounts.json");
    let recorded: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(recorded.len(), printed.len());
    for account in &recorded {
        let email = account["email"].as_str().unwrap();
        assert_eq!(
            account["password"].as_str(),
            printed.get(email).map(String::as_str)
        );
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "demo-accounts.json is private");

    // The central log's first lines carry them too.
    let log = std::fs::read_to_string(cwd.path().join("brigade-data/logs/brigade.log")).unwrap();
    let head: String = log.lines().take(40).collect::<Vec<_>>().join("\n");
    assert!(
        head.contains("admin@brigade.demo"),
        "not in the log's first lines:\n{head}"
    );

    // Watch runs on the default relative data directory and evaluates brigade's rules.
    wait_until("watch to be ready", Duration::from_secs(30), || {
        up.child_status("watch")["state"] == "ready"
    });
    let watch = up.status()["watch"].as_str().unwrap().to_owned();
    let rules: Value = reqwest::blocking::get(format!("http://{watch}/api/v1/rules"))
        .unwrap()
        .json()
        .unwrap();
    assert!(
        rules.to_string().contains("BrigadeReplicaCrashLooping"),
        "rules: {rules}"
    );

    // The admin's jobs are scheduled with the recorded password.
    let jobs: Value = reqwest::blocking::get(format!("http://{}/api/jobs", up.ops))
        .unwrap()
        .json()
        .unwrap();
    let text = jobs.to_string();
    assert!(text.contains("warm-caches"), "jobs: {text}");
    assert!(!text.contains("not scheduled"), "jobs: {text}");

    // `brigade status` from the same directory shows watch reachable.
    let status = brigade(cwd.path())
        .args(["status", "--ops", &up.ops])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(!table.contains("watch not reachable"), "{table}");

    // Lost passwords: new ones, printed and recorded, without deleting any data.
    let reset = brigade(cwd.path())
        .args(["demo-data", "--reset-passwords"])
        .output()
        .unwrap();
    assert!(reset.status.success(), "{reset:?}");
    let new = passwords_in(&String::from_utf8_lossy(&reset.stdout));
    assert_eq!(new.len(), printed.len(), "{reset:?}");
    let admin = "admin@brigade.demo";
    assert!(
        token(&up.url(""), admin, &printed[admin]).is_none(),
        "old password refused"
    );
    assert!(
        token(&up.url(""), admin, &new[admin]).is_some(),
        "new password works"
    );
    let recorded: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        recorded
            .iter()
            .any(|a| a["email"] == admin && a["password"].as_str() == Some(new[admin].as_str()))
    );
}

#[test]
fn a_child_that_cannot_start_shows_its_real_error() {
    let cwd = tempfile::tempdir().unwrap();
    // A relative --alert-rules path that exists but is not a rule file: watch must fail for
    // that reason (and not for a path resolved against the wrong folder).
    std::fs::write(
        cwd.path().join("extra.yml"),
        "groups: [{name: x, rules: 7}]\n",
    )
    .unwrap();
    let up = UserUp::start(
        cwd.path(),
        &["--replicas", "1", "--alert-rules", "extra.yml"],
    );
    wait_until("watch's failure", Duration::from_secs(60), || {
        up.child_status("watch")["last_error"].is_string()
    });
    let cause = up.child_status("watch")["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(cause.contains("extra.yml"), "names the file: {cause}");
    assert!(!cause.contains("listening"), "the real error: {cause}");
    assert!(
        !cause.contains("No such file"),
        "the path was resolved: {cause}"
    );
    let status = brigade(cwd.path())
        .args(["status", "--ops", &up.ops])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table.contains("extra.yml"),
        "brigade status shows it:\n{table}"
    );
}

#[test]
fn ports_still_held_for_a_moment_by_a_stopping_run_are_waited_for() {
    let cwd = tempfile::tempdir().unwrap();
    // Both ports taken, as by the `brigade up` that is still stopping, and freed a moment later.
    let public = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ops = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (public_port, ops_port) = (
        public.local_addr().unwrap().port().to_string(),
        ops.local_addr().unwrap().port().to_string(),
    );
    let freeing = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop((public, ops));
    });
    let up = UserUp::start(
        cwd.path(),
        &[
            "--replicas",
            "1",
            "--no-watch",
            "--port",
            &public_port,
            "--ops-port",
            &ops_port,
        ],
    );
    freeing.join().unwrap();
    assert!(
        up.public.ends_with(&format!(":{public_port}")),
        "{}",
        up.public
    );
    assert!(up.ops.ends_with(&format!(":{ops_port}")), "{}", up.ops);
}

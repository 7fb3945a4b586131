"""The configuration files deploy/compose.yaml mounts are accepted by the real brigade: the
balancer's and the watch's files start their process (addresses moved to loopback, so nothing
leaves this machine), and the watch loads every rule of the shared rule file."""

import http.client
import re
import secrets
import shutil
import socket
import ssl
import subprocess

import pytest

from deploylib import DEPLOY, brigade_env, in_ci, load, read, start_brigade
from test_live import BINARY

pytestmark = pytest.mark.skipif(BINARY is None and not in_ci(), reason="brigade not built (cargo build -p brigade)")


def first_listening_line(command: list[str], cwd) -> dict:
    """Starts brigade, returns its JSON `listening` record, and stops it."""
    process, record = start_brigade(BINARY, command, brigade_env(BRIGADE_LOG__FORMAT="json"), cwd)
    process.kill()
    process.wait()
    return record


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_balance_toml_starts_the_balancer_on_https_with_the_secret_token(tmp_path):
    """As compose runs it: the certificate job first, then the balancer with the mounted secret."""
    compose = load(DEPLOY / "compose.yaml")
    job = compose["services"]["certificate"]["command"]
    folder = job[job.index("--dir") + 1]
    text = read("deploy/compose/balance.toml")
    # The replicas' compose addresses → closed loopback ports (the health checks stay local).
    loopback = text
    for index, address in enumerate(re.findall(r'address = "(172\.30\.0\.\d+:\d+)"', text)):
        loopback = loopback.replace(f'"{address}"', f'"127.0.0.{index + 2}:1"')
    assert "172.30." not in loopback
    # The container's paths → this test's folder.
    token = secrets.token_hex(24)
    (tmp_path / "balance_admin_token").write_text(token + "\n")
    loopback = loopback.replace("/run/secrets/", f"{tmp_path}/").replace(folder, str(tmp_path / "tls"))
    redirect = free_port()
    loopback = loopback.replace('redirect_listen = "0.0.0.0:8080"', f'redirect_listen = "127.0.0.1:{redirect}"')
    (tmp_path / "balance.toml").write_text(loopback)

    made = subprocess.run([str(BINARY), *job[:1], "--dir", str(tmp_path / "tls"), *job[job.index("--dir") + 2 :]], env=brigade_env(), capture_output=True, text=True, check=True)
    assert "made a self-signed certificate" in made.stdout, made.stdout
    process, record = start_brigade(BINARY, ["balance", "--config", "balance.toml", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"], brigade_env(BRIGADE_LOG__FORMAT="json"), tmp_path)
    try:
        port = int(record["address"].rsplit(":", 1)[1])
        trusting = ssl.create_default_context(cafile=str(tmp_path / "tls" / "cert.pem"))
        https = http.client.HTTPSConnection("localhost", port, context=trusting, timeout=10)
        https.request("GET", "/api/v1/shops")
        answer = https.getresponse()
        assert answer.status in (502, 503), "TLS works; the replicas are down"
        assert answer.getheader("Strict-Transport-Security") is None
        plain = http.client.HTTPConnection("127.0.0.1", redirect, timeout=10)
        plain.request("GET", "/api/v1/shops", headers={"Host": "localhost"})
        moved = plain.getresponse()
        assert moved.status == 308 and moved.getheader("Location") == f"https://localhost:{port}/api/v1/shops"
        admin = record["admin_address"]
        for bearer, status in [(None, 401), ("wrong-" + token, 401), (token, 200)]:
            call = http.client.HTTPConnection(*admin.rsplit(":", 1), timeout=10)
            call.request("GET", "/admin/pools", headers={"Authorization": f"Bearer {bearer}"} if bearer else {})
            assert call.getresponse().status == status, bearer
    finally:
        process.kill()
        process.wait()
    # A second start of the job keeps the certificate it made.
    kept = subprocess.run([str(BINARY), "certificate", "--dir", str(tmp_path / "tls")], env=brigade_env(), capture_output=True, text=True, check=True)
    assert "kept the certificate" in kept.stdout, kept.stdout


def test_watch_toml_starts_the_watch_with_every_shared_rule(tmp_path):
    compose = load(DEPLOY / "compose.yaml")["services"]["watch"]
    text = read("deploy/compose/watch.toml")
    loopback = re.sub(r'"[\w-]+:\d+"', '"127.0.0.1:1"', text)
    (tmp_path / "watch.toml").write_text(loopback)
    # The container's layout: rule files beside watch.toml under prometheus/rules.
    rules = tmp_path / "prometheus" / "rules"
    rules.mkdir(parents=True)
    shutil.copy(DEPLOY / "prometheus/rules/brigade.yml", rules / "brigade.yml")
    command = list(compose["command"])
    command[command.index("--config") + 1] = "watch.toml"
    command[command.index("--listen") + 1] = "127.0.0.1:0"
    command[command.index("--data-dir") + 1] = str(tmp_path / "data")
    record = first_listening_line(command, tmp_path)
    shared_rules = read("deploy/prometheus/rules/brigade.yml")
    expected = len(re.findall(r"^\s+- (?:alert|record):", shared_rules, re.M))
    assert record["rules"] == expected
    assert record["targets"] == 4

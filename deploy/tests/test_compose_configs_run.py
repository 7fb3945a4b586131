"""The configuration files deploy/compose.yaml mounts are accepted by the real brigade: the
balancer's and the watch's files start their process (addresses moved to loopback, so nothing
leaves this machine), and the watch loads every rule of the shared rule file."""

import re
import shutil

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


def test_balance_toml_starts_the_balancer(tmp_path):
    text = read("deploy/compose/balance.toml")
    # The replicas' compose addresses → closed loopback ports (the health checks stay local).
    loopback = text
    for index, address in enumerate(re.findall(r'address = "(172\.30\.0\.\d+:\d+)"', text)):
        loopback = loopback.replace(f'"{address}"', f'"127.0.0.{index + 2}:1"')
    assert "172.30." not in loopback
    (tmp_path / "balance.toml").write_text(loopback)
    record = first_listening_line(["balance", "--config", "balance.toml", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"], tmp_path)
    assert record["address"].startswith("127.0.0.1:")


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

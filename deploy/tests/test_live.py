"""The deployment files against a real `brigade serve` process: the Kubernetes ConfigMap's
settings are accepted, every probe path answers, /metrics exports what the HPA and the
ServiceMonitor use, the smoke test passes, SIGTERM drains within the pod's grace period, and
every subcommand and flag the manifests use exists."""

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from deploylib import K8S, ROOT, brigade_env, containers, find, in_ci, load, pod_specs, render, start_brigade


def brigade_binary() -> Path | None:
    candidates = [os.environ.get("BRIGADE_BIN")]
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        candidates.append(os.path.join(target, "debug", "brigade"))
    candidates.append(str(ROOT / "target" / "debug" / "brigade"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


BINARY = brigade_binary()
pytestmark = pytest.mark.skipif(BINARY is None and not in_ci(), reason="brigade not built (cargo build -p brigade)")
RENDERED = render(K8S / "overlays" / "production")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    assert BINARY, "brigade binary not found; set BRIGADE_BIN or CARGO_TARGET_DIR"
    env = brigade_env(**find(RENDERED, "ConfigMap", "brigade-config")["data"])
    # Same settings as the pods, except: loopback with a free port, SQLite, the simulated provider
    # (production's Stripe key lives in a Secret).
    env["BRIGADE_SERVER__LISTEN"] = "127.0.0.1:0"
    env["BRIGADE_STORAGE__DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    env["BRIGADE_PAYMENTS__PROVIDER"] = "simulated"
    process, record = start_brigade(BINARY, ["serve", "--demo"], env)
    address = record["address"]
    yield process, f"http://{address}"
    if process.poll() is None:
        process.kill()
        process.wait()


def test_configmap_settings_start_brigade_and_probe_paths_answer(replica):
    _, base = replica
    container = find(RENDERED, "Deployment", "brigade")["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        status, _ = get(base + container[probe]["httpGet"]["path"])
        assert status == 200, probe


def ingress_routes(paths: list[dict], path: str) -> bool:
    """Whether one of an Ingress rule's paths matches `path` (Kubernetes' Exact and Prefix:
    a prefix matches whole path elements)."""
    for rule in paths:
        wanted = rule["path"]
        if rule["pathType"] == "Exact" and path == wanted:
            return True
        if rule["pathType"] == "Prefix":
            prefix = wanted.rstrip("/")
            if prefix == "" or path == prefix or path.startswith(prefix + "/"):
                return True
    return False


def public_paths_of(base: str) -> set[str]:
    """What a browser and an API client reach on a replica: every local link and asset of the
    ordering page (found in its HTML), an order page, the API, the OpenAPI document, Swagger UI
    and the icon browsers ask for on their own."""
    status, html = get(f"{base}/")
    assert status == 200
    linked = set(re.findall(r'(?:href|src)="(/[^"#?]*)', html))
    assert any(p.startswith("/assets/") for p in linked), html
    return linked | {
        "/orders/01939a4e-0000-7000-8000-000000000000",
        "/api/v1/shops",
        "/openapi.json",
        "/swagger-ui/",
        "/favicon.ico",
    }


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_ingress_routes_every_public_path_a_replica_serves_and_nothing_internal(replica, overlay):
    _, base = replica
    resources = render(K8S / "overlays" / overlay)
    rules = find(resources, "Ingress", "brigade")["spec"]["rules"]
    for path in sorted(public_paths_of(base)):
        status, _ = get(f"{base}{path}")
        assert status == 200, f"{path}: a replica answers {status}"
        for rule in rules:
            assert ingress_routes(rule["http"]["paths"], path), f"{overlay}: {path} is not routed"
    for internal in ("/metrics", "/health/ready", "/health/live"):
        for rule in rules:
            assert not ingress_routes(rule["http"]["paths"], internal), f"{overlay}: {internal} is public"


def test_metrics_export_what_the_hpa_and_service_monitor_use(replica):
    _, base = replica
    get(base + "/api/v1/shops")
    monitor = find(RENDERED, "ServiceMonitor", "brigade")["spec"]["endpoints"][0]
    status, text = get(base + monitor["path"])
    assert status == 200
    hpa = find(RENDERED, "HorizontalPodAutoscaler", "brigade")
    for metric in hpa["spec"]["metrics"]:
        if metric["type"] == "Pods":
            assert f"# TYPE {metric['pods']['metric']['name']} gauge" in text


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_smoke_script_passes_against_a_replica(replica):
    _, base = replica
    result = subprocess.run([str(ROOT / "deploy/k8s/smoke.sh"), base], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_every_subcommand_and_flag_in_the_manifests_exists():
    commands = set()
    for overlay in ("staging", "production"):
        for workload in render(K8S / "overlays" / overlay):
            for container in containers(workload) if pod_specs(workload) else []:
                if container["image"].startswith("ghcr.io/brigade-rs/brigade"):
                    commands.add(tuple(container["args"]))
    compose = load(ROOT / "deploy/compose.yaml")["services"]
    for service in compose.values():
        if service.get("build", {}).get("dockerfile") == "deploy/docker/Dockerfile":
            commands.add(tuple(service["command"]))
    for command in commands:
        help_text = subprocess.run([str(BINARY), command[0], "--help"], capture_output=True, text=True, check=True).stdout
        for flag in command[1:]:
            if flag.startswith("--"):
                assert flag in help_text, f"brigade {command[0]} has no {flag}"


def test_sigterm_drains_within_the_grace_period(replica):
    process, base = replica
    pod = find(RENDERED, "Deployment", "brigade")["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = int(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    # Readiness fails at once while the listener still answers (the drain delay).
    statuses = []
    while time.monotonic() - started < 1.0 and 503 not in statuses:
        statuses.append(get(base + "/health/ready")[0])
    assert statuses[-1] == 503, statuses
    process.wait(timeout=grace - pre_stop)
    assert process.returncode == 0
    assert time.monotonic() - started < grace - pre_stop

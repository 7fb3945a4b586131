"""Each kustomize overlay, rendered, has the properties brigade needs: probes on real health
paths, shutdown timings consistent with brigade's drain settings, a restricted security
context, an HPA on a metric brigade exports, and every reference resolving."""

import re

import pytest

from deploylib import (
    GENERATED_RULE,
    K8S,
    OVERLAYS,
    config_defaults,
    containers,
    env_to_key,
    find,
    kubectl,
    kubectl_render,
    pod_specs,
    prometheus_rule,
    prometheus_rule_text,
    read,
    render,
    settings_keys,
)

RENDERED = {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}
# The Secret is created outside git (docs/deploy.md); these are the keys it must hold.
EXTERNAL_SECRETS = {"brigade-secrets": {"DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL", "STRIPE_SECRET_KEY"}, "brigade-tls": {"tls.crt", "tls.key"}}


def api_paths() -> set[str]:
    """Every path brigade serve routes, from the OpenAPI annotations of brigade-api."""
    paths = set()
    for path in (K8S.parents[1] / "crates/brigade-api/src").rglob("*.rs"):
        paths |= set(re.findall(r'path = "(/[^"]*)"', path.read_text()))
    return paths


def exported_metrics() -> set[str]:
    """Metric names brigade serve registers (brigade-core, brigade-api, brigade-payments)."""
    names = set()
    for crate in ("brigade-core", "brigade-api", "brigade-payments", "brigade-store"):
        for path in (K8S.parents[1] / "crates" / crate / "src").rglob("*.rs"):
            names |= set(re.findall(r'"((?:http_server|brigade)_[a-z_]+)"', path.read_text()))
    return names


def deployment(overlay):
    return find(RENDERED[overlay], "Deployment", "brigade")


def api_container(overlay):
    return deployment(overlay)["spec"]["template"]["spec"]["containers"][0]


def config(overlay):
    return find(RENDERED[overlay], "ConfigMap", "brigade-config")["data"]


def setting_ms(overlay, key):
    name = f"BRIGADE_SERVER__{key.upper()}"
    return int(config(overlay).get(name, config_defaults()[key]))


# The checks below use the test renderer, so they do not need kubectl; where kubectl exists
# (this machine has it) both renderings must be identical.
@pytest.mark.skipif(not kubectl(), reason="kubectl not installed: overlays rendered by deploylib only")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_test_renderer_agrees_with_kubectl_kustomize(overlay):
    ours = {(r["kind"], r["metadata"]["name"]): r for r in RENDERED[overlay]}
    theirs = {(r["kind"], r["metadata"]["name"]): r for r in kubectl_render(K8S / "overlays" / overlay)}
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key] == theirs[key], key


def test_prometheus_rule_is_generated_from_the_shared_rule_file():
    assert GENERATED_RULE.read_text() == prometheus_rule_text(), "run scripts/validate-deploy --write"
    rendered = find(RENDERED["production"], "PrometheusRule", "brigade")
    assert rendered["spec"] == prometheus_rule()["spec"]
    assert rendered["spec"]["groups"], "the rule file has no groups"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rolling_update_keeps_every_replica(overlay):
    spec = deployment(overlay)["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_point_at_brigade_health_endpoints_on_its_port(overlay):
    container = api_container(overlay)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    listen_port = int(config(overlay)["BRIGADE_SERVER__LISTEN"].rsplit(":", 1)[1])
    assert config(overlay)["BRIGADE_SERVER__LISTEN"].startswith("0.0.0.0:")
    assert ports["http"] == listen_port
    expected = {"startupProbe": "/health/startup", "readinessProbe": "/health/ready", "livenessProbe": "/health/live"}
    real = api_paths()
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path and path in real, (probe, get)
        assert get["port"] in ports
    # The startup probe allows for migrations at start.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shutdown_timings_fit_brigade_drain(overlay):
    container = api_container(overlay)
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    sleep_s = int(pre_stop[1])
    # Notice time of whatever balances in front: the readiness probe's period × failures, and
    # brigade balance's default health check (interval_ms × fall) for a balancer in the path.
    readiness = container["readinessProbe"]
    balance_health = read("crates/brigade-balance/src/config.rs")
    interval_ms = int(re.search(r"interval_ms: ([\d_]+),", balance_health).group(1).replace("_", ""))
    fall = int(re.search(r"fall: (\d+),", balance_health).group(1))
    notice_s = max(readiness["periodSeconds"] * readiness["failureThreshold"], interval_ms * fall / 1000)
    assert sleep_s > notice_s
    drain_s = setting_ms(overlay, "drain_delay_ms") / 1000
    shutdown_s = setting_ms(overlay, "shutdown_timeout_ms") / 1000
    grace = deployment(overlay)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > sleep_s + drain_s + shutdown_s
    # A request may run request_timeout_ms; it must fit the shutdown window too.
    assert setting_ms(overlay, "request_timeout_ms") <= setting_ms(overlay, "shutdown_timeout_ms")


def assert_restricted(workload: dict, resources: list[dict]) -> None:
    """The restricted Pod Security profile and more: non-root, no privilege, read-only root, a
    writable /tmp, limits, no API token; writable only emptyDirs, configuration mounted read-only."""
    (pod,) = pod_specs(workload)
    name = workload["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True, name
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
    mounts_tmp = False
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for container in containers(workload):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, (name, container["name"])
        assert context["allowPrivilegeEscalation"] is False, (name, container["name"])
        assert context["capabilities"]["drop"] == ["ALL"], (name, container["name"])
        assert "requests" in container["resources"] and "limits" in container["resources"]
        mounts_tmp |= any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", []))
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "emptyDir" not in volume:
                assert {"configMap", "secret"} & set(volume) and mount.get("readOnly") is True, (name, mount)
    assert mounts_tmp, f"{name} has no writable /tmp"
    account = find(resources, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_restricted(overlay):
    workloads = [r for r in RENDERED[overlay] if pod_specs(r)]
    assert {r["kind"] for r in workloads} == {"Deployment", "Job", "CronJob"}
    for workload in workloads:
        assert_restricted(workload, RENDERED[overlay])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned_and_brigade_runs_real_subcommands(overlay):
    for workload in (r for r in RENDERED[overlay] if pod_specs(r)):
        for container in containers(workload):
            image = container["image"]
            assert "@sha256:" in image or re.search(r":[\w.-]+$", image.rsplit("/", 1)[-1]), image
            if image.startswith("ghcr.io/brigade-rs/brigade"):
                assert container["args"][0] in {"serve", "migrate"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_and_secret_references_resolve(overlay):
    resources = RENDERED[overlay]
    assert not [r for r in resources if r["kind"] == "Secret"], "no Secret belongs in git"
    keys = settings_keys()
    for name in config(overlay):
        assert name.startswith("BRIGADE_") and env_to_key(name) in keys, name
    for workload in (r for r in resources if pod_specs(r)):
        for container in containers(workload):
            for source in container.get("envFrom", []):
                find(resources, "ConfigMap", source["configMapRef"]["name"])
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    data = find(resources, "ConfigMap", ref["configMapKeyRef"]["name"])["data"]
                    assert ref["configMapKeyRef"]["key"] in data
                if "secretKeyRef" in ref:
                    secret = ref["secretKeyRef"]
                    assert secret["key"] in EXTERNAL_SECRETS[secret["name"]], secret
                if variable["name"].startswith("BRIGADE_"):
                    assert env_to_key(variable["name"]) in keys, variable["name"]
    ingress = find(resources, "Ingress", "brigade")
    for tls in ingress["spec"]["tls"]:
        assert tls["secretName"] in EXTERNAL_SECRETS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_replicas_name_clients_behind_the_ingress_and_only_it_may_forward(overlay):
    """The log-in limits key on the client's address: the replicas believe X-Forwarded-For
    from the pod networks, and the NetworkPolicy lets only the ingress controller and
    Prometheus reach them, so no other pod can claim an address."""
    import ipaddress
    import json

    trusted = json.loads(config(overlay)["BRIGADE_SERVER__TRUSTED_PROXIES"])
    networks = [ipaddress.ip_network(block) for block in trusted]
    assert all(network.is_private for network in networks), networks
    policies = [r for r in RENDERED[overlay] if r["kind"] == "NetworkPolicy"]
    api = [p for p in policies if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") == "api"]
    assert api, "a NetworkPolicy selects the api pods"
    peers = [peer for policy in api for rule in policy["spec"].get("ingress", []) for peer in rule.get("from", [])]
    allowed = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in peers}
    assert allowed == {"ingress-nginx", "monitoring"}, allowed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_ingress_and_monitoring_select_the_pods(overlay):
    resources = RENDERED[overlay]
    pod_labels = deployment(overlay)["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in api_container(overlay)["ports"]}
    service = find(resources, "Service", "brigade")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    real = api_paths()
    for rule in find(resources, "Ingress", "brigade")["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "brigade" and backend["port"]["name"] in service_ports
            # What must be routed is checked against a real replica in test_live.py.
            assert not path["path"].startswith(("/metrics", "/health"))
    monitor = find(resources, "ServiceMonitor", "brigade")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in service_ports and endpoint["path"] == "/metrics" and "/metrics" in real
    pdb = find(resources, "PodDisruptionBudget", "brigade")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaler_uses_cpu_and_in_flight_requests_brigade_exports(overlay):
    hpa = find(RENDERED[overlay], "HorizontalPodAutoscaler", "brigade")
    target = hpa["spec"]["scaleTargetRef"]
    find(RENDERED[overlay], target["kind"], target["name"])
    assert hpa["spec"]["minReplicas"] >= 3 > 0
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    name = metrics["Pods"]["pods"]["metric"]["name"]
    assert name == "http_server_active_requests" and name in exported_metrics()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_open_only_brigade_flows(overlay):
    policies = {r["metadata"]["name"]: r["spec"] for r in RENDERED[overlay] if r["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    port_names = {p["name"] for p in api_container(overlay)["ports"]}
    for rule in policies["brigade-api-ingress"]["ingress"]:
        assert all(p["port"] in port_names for p in rule["ports"])
    egress_ports = {p["port"] for rule in policies["brigade-egress"]["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 5432, 6379, 443}
    variables = read("deploy/terraform/variables.tf")
    vpc_cidr = re.search(r'variable "vpc_cidr" \{.*?default\s+=\s+"([^"]+)"', variables, re.S).group(1)
    database_rule = next(r for r in policies["brigade-egress"]["egress"] if {p["port"] for p in r["ports"]} == {5432, 6379})
    assert database_rule["to"][0]["ipBlock"]["cidr"] == vpc_cidr


def test_production_charges_through_stripe_with_the_key_from_the_secret():
    assert config("production")["BRIGADE_PAYMENTS__PROVIDER"] == "stripe"
    env = {v["name"]: v for v in api_container("production")["env"]}
    assert env["BRIGADE_PAYMENTS__STRIPE__SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "brigade-secrets"
    assert "STRIPE" not in " ".join(config("production"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_name_their_own_namespace_bucket_and_role(overlay):
    for resource in RENDERED[overlay]:
        assert resource["metadata"]["namespace"] == f"brigade-{overlay}"
    bucket = find(RENDERED[overlay], "ConfigMap", "brigade-backup")["data"]["BACKUP_BUCKET"]
    assert overlay in bucket
    role = find(RENDERED[overlay], "ServiceAccount", "brigade-backup")["metadata"]["annotations"]
    assert role["eks.amazonaws.com/role-arn"].endswith(f"brigade-{overlay}-backup")
    # deploy/terraform's backup role trusts exactly this namespace and ServiceAccount.
    assert "system:serviceaccount:brigade-${var.environment}:brigade-backup" in read("deploy/terraform/eks.tf")

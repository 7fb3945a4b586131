"""Traces on Kubernetes: the api pods export with variables brigade reads to a collector that
exists (staging: components/otel-collector in the namespace; production: the cluster's own),
the network policies let exactly that flow through, and the component's collector samples like
deploy/compose's (and so like brigade watch)."""

import re
from urllib.parse import urlparse

import pytest
import yaml

from deploylib import DEPLOY, OVERLAYS, containers, find, load, otel_variables
from test_k8s import RENDERED, api_container

COMPOSE_COLLECTOR = load(DEPLOY / "compose/otel-collector.yaml")


def tracing(overlay) -> dict:
    return find(RENDERED[overlay], "ConfigMap", "brigade-tracing")["data"]


def collector_config(overlay) -> dict:
    return yaml.safe_load(find(RENDERED[overlay], "ConfigMap", "otel-collector")["data"]["config.yaml"])


def has_collector(overlay) -> bool:
    return any(r["kind"] == "Deployment" and r["metadata"]["name"] == "otel-collector" for r in RENDERED[overlay])


def test_staging_runs_the_collector_and_production_uses_the_clusters():
    assert has_collector("staging") and not has_collector("production")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_pods_export_with_variables_brigade_reads(overlay):
    container = api_container(overlay)
    assert {"configMapRef": {"name": "brigade-tracing"}} in container["envFrom"]
    assert set(tracing(overlay)) <= otel_variables()
    assert tracing(overlay)["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert float(tracing(overlay)["OTEL_TRACES_SAMPLER_ARG"]) == 1.0
    env = [v["name"] for v in container["env"]]
    values = {v["name"]: v for v in container["env"]}
    assert values["OTEL_SERVICE_NAME"]["value"] == "brigade-serve"
    attributes = values["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    assert "service.instance.id=$(POD_NAME)" in attributes
    # $(VAR) expands only variables defined before it.
    for used in re.findall(r"\$\((\w+)\)", attributes):
        assert env.index(used) < env.index("OTEL_RESOURCE_ATTRIBUTES")
        assert "fieldRef" in values[used]["valueFrom"]
    for name in env:
        assert not name.startswith("OTEL_") or name in otel_variables(), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_endpoint_names_a_collector_the_egress_policy_admits(overlay):
    endpoint = urlparse(tracing(overlay)["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.scheme == "http" and endpoint.port == 4318 and endpoint.path in ("", "/")
    policy = find(RENDERED[overlay], "NetworkPolicy", "brigade-traces-egress")["spec"]
    api_labels = find(RENDERED[overlay], "Deployment", "brigade")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= api_labels.items()
    (rule,) = policy["egress"]
    assert [p["port"] for p in rule["ports"]] == [endpoint.port]
    (peer,) = rule["to"]
    if has_collector(overlay):
        assert endpoint.hostname == "otel-collector"
        service = find(RENDERED[overlay], "Service", endpoint.hostname)
        (port,) = [p for p in service["spec"]["ports"] if p["port"] == endpoint.port]
        collector = find(RENDERED[overlay], "Deployment", "otel-collector")
        pod_labels = collector["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert peer["podSelector"]["matchLabels"].items() <= pod_labels.items()
        (container,) = containers(collector)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        receiver = collector_config(overlay)["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        assert ports[port["targetPort"]] == int(receiver.rsplit(":", 1)[1])
    else:
        # Another namespace's collector, by its cluster DNS name.
        assert endpoint.hostname.endswith(".svc.cluster.local"), endpoint.hostname
        assert peer["namespaceSelector"] == {}
        assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "opentelemetry-collector"}


def test_the_collector_admits_only_the_api_pods_spans_and_reaches_only_dns_and_the_store():
    policy = find(RENDERED["staging"], "NetworkPolicy", "otel-collector")["spec"]
    collector = find(RENDERED["staging"], "Deployment", "otel-collector")
    assert policy["podSelector"]["matchLabels"].items() <= collector["spec"]["template"]["metadata"]["labels"].items()
    api_labels = find(RENDERED["staging"], "Deployment", "brigade")["spec"]["template"]["metadata"]["labels"]
    spans = next(r for r in policy["ingress"] if any(p["port"] == "otlp-http" for p in r["ports"]))
    (peer,) = spans["from"]
    assert peer["podSelector"]["matchLabels"].items() <= api_labels.items() and "namespaceSelector" not in peer
    store = find(RENDERED["staging"], "ConfigMap", "otel-collector-backend")["data"]["TRACES_BACKEND_ENDPOINT"]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {53, int(store.rsplit(":", 1)[1])}


def test_the_collector_samples_like_the_compose_one():
    config = collector_config("staging")
    assert config["processors"] == COMPOSE_COLLECTOR["processors"]
    assert config["receivers"] == COMPOSE_COLLECTOR["receivers"]
    (pipeline,) = config["service"]["pipelines"].values()
    (compose_pipeline,) = COMPOSE_COLLECTOR["service"]["pipelines"].values()
    assert pipeline["processors"] == compose_pipeline["processors"]
    (exporter,) = config["exporters"].values()
    assert exporter["endpoint"] == "${env:TRACES_BACKEND_ENDPOINT}"
    collector = find(RENDERED["staging"], "Deployment", "otel-collector")
    (container,) = containers(collector)
    backend = find(RENDERED["staging"], "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])["data"]
    assert {"TRACES_BACKEND_ENDPOINT", "TRACES_BACKEND_INSECURE"} <= set(backend)


def test_one_collector_holds_whole_traces_within_its_memory():
    collector = find(RENDERED["staging"], "Deployment", "otel-collector")
    # Tail sampling needs every span of a trace in one process.
    assert collector["spec"]["replicas"] == 1
    (container,) = containers(collector)
    assert container["image"].startswith("otel/opentelemetry-collector-contrib:")
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    limiter = collector_config("staging")["processors"]["memory_limiter"]
    gomemlimit = next(v["value"] for v in container["env"] if v["name"] == "GOMEMLIMIT")
    assert limiter["limit_mib"] == int(gomemlimit.removesuffix("MiB")) < int(limit.removesuffix("Mi"))
    health = {p["name"]: p["containerPort"] for p in container["ports"]}["health"]
    assert collector_config("staging")["extensions"]["health_check"]["endpoint"].endswith(f":{health}")
    assert container["readinessProbe"]["httpGet"]["port"] == "health"

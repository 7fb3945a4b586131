"""Traces in deploy/compose.yaml: every brigade process exports to the OpenTelemetry Collector
with variables brigade reads, the collector keeps whole traces by brigade watch's rule (errors,
slow ones, a share of the rest) and hands them to Tempo, and Grafana reads Tempo."""

import re
from urllib.parse import urlparse

from deploylib import DEPLOY, load, otel_variables, read
from test_compose import SERVICES, brigade_services

COLLECTOR = load(DEPLOY / "compose/otel-collector.yaml")
TEMPO = load(DEPLOY / "compose/tempo.yaml")


def long_running_brigade():
    return {name: s for name, s in brigade_services().items() if s.get("network_mode") != "none"}


def watch_slow_ms() -> float:
    """The duration from which brigade watch counts a trace as slow (TraceLimits::default)."""
    source = read("crates/brigade-watch/src/traces.rs")
    block = source[source.index("impl Default for TraceLimits") :]
    return float(re.search(r"slow_ms: ([\d_.]+),", block).group(1).replace("_", ""))


def test_every_networked_brigade_process_exports_to_the_collector_under_its_own_name():
    receiver = COLLECTOR["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    port = receiver.rsplit(":", 1)[1]
    names = {}
    for name, service in long_running_brigade().items():
        env = service["environment"]
        assert set(k for k in env if k.startswith("OTEL_")) <= otel_variables(), name
        endpoint = urlparse(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert endpoint.scheme == "http" and endpoint.hostname == "otel-collector", name
        assert str(endpoint.port) == port == "4318", "OTLP/HTTP, the protocol brigade exports with"
        assert env["OTEL_SERVICE_NAME"] == f"brigade-{service['command'][0]}", name
        names.setdefault(env["OTEL_SERVICE_NAME"], []).append(name)
    assert set(names) == {"brigade-serve", "brigade-balance", "brigade-watch", "brigade-migrate", "brigade-demo-data"}
    # The replicas share a service name and tell themselves apart by their instance id.
    instances = {SERVICES[r]["environment"]["OTEL_RESOURCE_ATTRIBUTES"] for r in names["brigade-serve"]}
    assert instances == {f"service.instance.id={r}" for r in names["brigade-serve"]}


def test_head_sampling_follows_the_parent_and_passes_every_root_to_the_tail_sampler():
    for name, service in long_running_brigade().items():
        env = service["environment"]
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio", name
        # Below 1.0 the collector would never see the errors of the traces dropped at the head.
        assert float(env["OTEL_TRACES_SAMPLER_ARG"]) == 1.0, name


def test_no_brigade_process_waits_for_the_collector():
    """Export never holds up brigade (spans are dropped and counted), so neither does start-up."""
    for name, service in SERVICES.items():
        assert "otel-collector" not in service.get("depends_on", {}), name
    collector = SERVICES["otel-collector"]
    assert "healthcheck" not in collector
    health = COLLECTOR["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1]
    assert f"127.0.0.1:{health}:{health}" in collector["ports"]


def test_the_pipeline_limits_memory_first_samples_whole_traces_and_batches_last():
    (pipeline,) = COLLECTOR["service"]["pipelines"].values()
    assert pipeline["receivers"] == ["otlp"]
    assert pipeline["processors"] == ["memory_limiter", "tail_sampling", "batch"]
    assert set(pipeline["processors"]) <= set(COLLECTOR["processors"])
    assert set(pipeline["exporters"]) <= set(COLLECTOR["exporters"])
    assert COLLECTOR["service"]["extensions"] == list(COLLECTOR["extensions"])
    limiter = COLLECTOR["processors"]["memory_limiter"]
    assert 0 < limiter["spike_limit_mib"] < limiter["limit_mib"]


def test_tail_sampling_keeps_errors_slow_traces_and_a_share_of_the_rest_like_watch():
    sampling = COLLECTOR["processors"]["tail_sampling"]
    policies = {p["type"]: p for p in sampling["policies"]}
    assert set(policies) == {"status_code", "latency", "probabilistic"}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] == watch_slow_ms()
    share = policies["probabilistic"]["probabilistic"]["sampling_percentage"]
    assert 0 < share < 100
    # The decision waits for the slowest trace worth keeping to finish.
    assert int(sampling["decision_wait"].removesuffix("s")) * 1000 > watch_slow_ms()


def test_kept_traces_go_to_tempo_which_grafana_reads():
    (exporter,) = COLLECTOR["exporters"].values()
    host, port = exporter["endpoint"].rsplit(":", 1)
    tempo_grpc = TEMPO["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert host == "tempo" and port == tempo_grpc.rsplit(":", 1)[1]
    assert SERVICES["otel-collector"]["depends_on"]["tempo"]["condition"] == "service_healthy"
    http_port = TEMPO["server"]["http_listen_port"]
    tempo = SERVICES["tempo"]
    assert tempo["healthcheck"]["test"][-1] == f"http://127.0.0.1:{http_port}/ready"
    assert f"127.0.0.1:{http_port}:{http_port}" in tempo["ports"]
    volume = next(v for v in tempo["volumes"] if v.startswith("tempo-data:"))
    data_dir = volume.split(":")[1]
    storage = TEMPO["storage"]["trace"]
    assert storage["wal"]["path"].startswith(data_dir) and storage["local"]["path"].startswith(data_dir)
    assert f"tempo-data:{data_dir}" in SERVICES["tempo-init"]["volumes"]
    (source,) = load(DEPLOY / "compose/grafana-tempo.yml")["datasources"]
    assert source["type"] == "tempo" and source["url"] == f"http://tempo:{http_port}"
    assert "./compose/grafana-tempo.yml:/etc/grafana/provisioning/datasources/tempo.yml:ro" in SERVICES["grafana"]["volumes"]
    (loki,) = load(DEPLOY / "compose/grafana-loki.yml")["datasources"]
    assert source["jsonData"]["tracesToLogsV2"]["datasourceUid"] == loki["uid"]
    (link,) = loki["jsonData"]["derivedFields"]
    assert link["datasourceUid"] == source["uid"] and "trace_id" in link["matcherRegex"]


def test_tracing_images_are_pinned():
    for name in ("otel-collector", "tempo", "tempo-init"):
        image = SERVICES[name]["image"]
        assert re.search(r":\d+\.\d+\.\d+$", image), image
    assert SERVICES["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    config = SERVICES["otel-collector"]["command"][0].split("=", 1)[1]
    assert f"./compose/otel-collector.yaml:{config}:ro" in SERVICES["otel-collector"]["volumes"]

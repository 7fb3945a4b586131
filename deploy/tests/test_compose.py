"""deploy/compose.yaml matches what brigade really exposes: commands and flags, settings,
ports, health endpoints, the balancer's backends and the monitoring stack's targets."""

import re
import tomllib

import pytest

from deploylib import DEPLOY, env_to_key, load, otel_variables, read, settings_keys

COMPOSE = load(DEPLOY / "compose.yaml")
SERVICES = COMPOSE["services"]
REPLICAS = ["brigade-1", "brigade-2", "brigade-3"]
BALANCE = tomllib.loads(read("deploy/compose/balance.toml"))
WATCH = tomllib.loads(read("deploy/compose/watch.toml"))
CLI = read("crates/brigade/src/cli.rs")
HEALTH_PATHS = {"/health/live", "/health/ready", "/health/startup"}


def brigade_services():
    return {name: s for name, s in SERVICES.items() if s.get("build", {}).get("dockerfile") == "deploy/docker/Dockerfile"}


def healthcheck_url(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return next(part for part in test if isinstance(part, str) and part.startswith("http"))


def test_the_full_environment_is_there():
    for needed in ["postgres", "redis", *REPLICAS, "balance", "watch", "prometheus", "alertmanager", "grafana", "loki", "vector",
                   "otel-collector", "tempo", "minio", "pg-backup"]:
        assert needed in SERVICES, needed


def test_every_long_running_service_has_a_health_check_and_waits_for_healthy_dependencies():
    one_shot = {name for name, s in SERVICES.items() if s.get("restart") == "no"}
    assert one_shot == {"migrate", "demo-data", "certificate", "minio-certificate", "minio-bucket", "pg-backup", "tempo-init"}
    # The collector's image is a lone binary (no shell, no HTTP client), so nothing can probe it
    # from inside; no service waits for it (test_compose_traces.py checks both).
    unprobed = {"otel-collector"}
    for name, service in SERVICES.items():
        if name not in one_shot | unprobed:
            assert "healthcheck" in service, f"{name} has no health check"
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            if dependency in one_shot:
                assert how["condition"] == "service_completed_successfully", (name, dependency)
            else:
                assert how["condition"] == "service_healthy", (name, dependency)


def test_brigade_commands_and_flags_exist():
    subcommands = {"serve", "balance", "watch", "migrate", "demo-data", "certificate"}
    for name, service in brigade_services().items():
        command = service["command"]
        assert command[0] in subcommands, f"{name}: unknown subcommand {command[0]}"
        for flag in command[1:]:
            if flag.startswith("--"):
                field = flag[2:].replace("-", "_")
                assert re.search(rf"pub {field}: ", CLI), f"{name}: brigade has no flag {flag}"


def test_environment_names_real_settings():
    keys = settings_keys()
    otel = otel_variables()
    for name, service in brigade_services().items():
        for variable in service.get("environment", {}):
            if variable.startswith("BRIGADE_") and variable != "BRIGADE_DEMO_PASSWORD":
                assert env_to_key(variable) in keys, f"{name}: {variable} is not a brigade setting"
            elif variable.startswith("OTEL_"):
                assert variable in otel, f"{name}: brigade does not read {variable}"
            else:
                assert variable in {"DATABASE_URL", "REDIS_URL", "BRIGADE_DEMO_PASSWORD"}, variable
    postgres = SERVICES["postgres"]["environment"]
    url = SERVICES["brigade-1"]["environment"]["DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in url
    assert url == f"postgres://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/{postgres['POSTGRES_DB']}"
    assert SERVICES["brigade-1"]["environment"]["REDIS_URL"] == "redis://redis:6379"


@pytest.mark.parametrize("replica", REPLICAS)
def test_replicas_listen_where_checks_and_the_balancer_look(replica):
    service = SERVICES[replica]
    assert service["command"] == ["serve"]
    listen = service["environment"]["BRIGADE_SERVER__LISTEN"]
    host, port = listen.rsplit(":", 1)
    assert host == "0.0.0.0"
    url = healthcheck_url(service)
    assert url == f"http://127.0.0.1:{port}/health/ready"
    address = service["networks"]["brigade"]["ipv4_address"]
    backends = [b["address"] for pool in BALANCE["pools"] for b in pool["backends"]]
    assert f"{address}:{port}" in backends
    assert service["read_only"] is True and "/tmp" in service["tmpfs"]


def test_balancer_pool_is_exactly_the_replicas():
    addresses = {f"{SERVICES[r]['networks']['brigade']['ipv4_address']}:3000" for r in REPLICAS}
    (pool,) = BALANCE["pools"]
    assert {b["address"] for b in pool["backends"]} == addresses
    assert pool["health"]["path"] in HEALTH_PATHS
    subnet = COMPOSE["networks"]["brigade"]["ipam"]["config"][0]["subnet"]
    prefix = subnet.rsplit(".", 1)[0] + "."
    assert all(a.startswith(prefix) for a in addresses)


def test_balancer_ports_and_health_check():
    balance = SERVICES["balance"]
    public = BALANCE["listen"].rsplit(":", 1)[1]
    admin = BALANCE["admin"]["listen"].rsplit(":", 1)[1]
    assert f"{public}:{public}" in balance["ports"]
    assert healthcheck_url(balance) == f"http://127.0.0.1:{admin}/health/ready"
    assert f"127.0.0.1:{admin}:{admin}" in balance["ports"], "the admin API stays on the host's loopback"
    assert "./compose/balance.toml:/etc/brigade/balance.toml:ro" in balance["volumes"]
    assert balance["command"][-1] == "/etc/brigade/balance.toml"


def test_the_admin_token_is_a_secret_from_the_env_file_not_written_anywhere():
    # Off loopback brigade balance refuses to start without an admin token.
    assert not BALANCE["admin"]["listen"].startswith("127.")
    assert "token" not in BALANCE["admin"], "no token written in balance.toml"
    token_file = BALANCE["admin"]["token_file"]
    name = token_file.removeprefix("/run/secrets/")
    assert name in SERVICES["balance"]["secrets"]
    variable = COMPOSE["secrets"][name]["environment"]
    example = read("deploy/.env.example")
    assert re.search(rf"^{variable}=$", example, re.M), f"{variable} is not in deploy/.env.example"


def mount_target(volume: str) -> str:
    """The container path of a short-syntax volume, whose source may be `${VAR:-default}`."""
    return re.fullmatch(r"(\$\{[^}]*\}|[^:]+):([^:]+)(:ro)?", volume).group(2)


def test_the_public_port_is_https_with_a_certificate_made_or_mounted():
    tls = BALANCE["tls"]
    balance = SERVICES["balance"]
    certificate = SERVICES["certificate"]
    folder = certificate["command"][certificate["command"].index("--dir") + 1]
    assert tls["cert"] == f"{folder}/cert.pem" and tls["key"] == f"{folder}/key.pem"
    # The same volume (or the user's folder) is written by the job and read by the balancer.
    (written,) = [v for v in certificate["volumes"] if mount_target(v) == folder]
    (read_only,) = [v for v in balance["volumes"] if mount_target(v) == folder]
    assert read_only == f"{written}:ro"
    assert written.startswith("${BRIGADE_TLS_DIR:-") and "tls" in COMPOSE["volumes"]
    assert balance["depends_on"]["certificate"]["condition"] == "service_completed_successfully"
    # Plain HTTP only redirects; no HSTS for a localhost certificate.
    redirect = tls["redirect_listen"].rsplit(":", 1)[1]
    assert f"{redirect}:{redirect}" in balance["ports"]
    assert tls["hsts_max_age_secs"] == 0
    # The image makes the folder for uid 10001, so a fresh named volume is writable by the job.
    assert f"/var/lib/brigade {folder}" in read("deploy/docker/Dockerfile")


def test_watch_reads_the_shared_rule_file_and_listens_where_checked():
    watch = SERVICES["watch"]
    listen = watch["command"][watch["command"].index("--listen") + 1]
    assert listen == WATCH["listen"]
    port = listen.rsplit(":", 1)[1]
    assert healthcheck_url(watch) == f"http://127.0.0.1:{port}/health/ready"
    config = watch["command"][watch["command"].index("--config") + 1]
    config_dir = config.rsplit("/", 1)[0]
    mounts = {target: source for source, target in (v.split(":")[:2] for v in watch["volumes"] if v.startswith("./"))}
    for rule_file in WATCH["rule_files"]:
        target = f"{config_dir}/{rule_file}"
        source = next(src + target[len(t) :] for t, src in mounts.items() if target.startswith(t))
        assert (DEPLOY / source).resolve() == (DEPLOY / "prometheus/rules/brigade.yml").resolve()
    jobs = {c["job"]: c["targets"] for c in WATCH["scrape"]["static_configs"]}
    assert jobs["orders"] == [f"{r}:3000" for r in REPLICAS]
    assert jobs["balance"] == [f"balance:{BALANCE['admin']['listen'].rsplit(':', 1)[1]}"]


def test_prometheus_scrapes_every_brigade_process_with_the_shared_rules():
    config = load(DEPLOY / "compose/prometheus.yml")
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets["orders"] == [f"{r}:3000" for r in REPLICAS]
    assert targets["balance"] == ["balance:8082"]
    watch_port = WATCH["listen"].rsplit(":", 1)[1]
    assert targets["watch"] == [f"watch:{watch_port}"]
    assert config["rule_files"] == ["rules/brigade.yml"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in SERVICES["prometheus"]["volumes"]
    am = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["alertmanager:9093"]
    # The job names are the ones the shared rules and dashboards expect.
    assert set(targets) == {j["job_name"] for j in load(DEPLOY / "prometheus/prometheus.yml")["scrape_configs"]}


def test_every_mounted_file_exists():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"


def test_alertmanager_secret_files_are_provided():
    config = read("deploy/alertmanager/alertmanager.yml")
    for path in re.findall(r"_file: (/etc/alertmanager/secrets/\w+)", config):
        assert (DEPLOY / "compose/secrets" / path.rsplit("/", 1)[1]).exists(), path


def test_grafana_gets_the_dashboards_and_both_data_sources():
    volumes = SERVICES["grafana"]["volumes"]
    provider = load(DEPLOY / "grafana/provisioning/dashboards/brigade.yml")
    path = provider["providers"][0]["options"]["path"]
    assert f"./grafana/dashboards:{path}:ro" in volumes
    loki = load(DEPLOY / "compose/grafana-loki.yml")["datasources"][0]
    assert loki["url"] == "http://loki:3100"


def test_log_pipeline_reads_brigade_containers_json_lines():
    vector = load(DEPLOY / "compose/vector.yaml")
    label = vector["sources"]["brigade_containers"]["include_labels"][0]
    key, value = label.split("=")
    for name, service in brigade_services().items():
        if service.get("restart") != "no":
            assert service["labels"][key] == value, f"{name}'s logs are not collected"
            assert service["environment"]["BRIGADE_LOG__FORMAT"] == "json"
    assert "parse_json(.message)" in vector["transforms"]["brigade_json"]["source"]
    assert vector["sinks"]["loki"]["endpoint"] == "http://loki:3100"


def secret_values():
    for name, service in SERVICES.items():
        for variable, value in (service.get("environment") or {}).items():
            if any(word in variable for word in ("PASSWORD", "SECRET", "S3_KEY")) or variable == "DATABASE_URL":
                yield name, variable, str(value)


def test_the_edge_limits_every_client_and_log_ins_most_tightly():
    rules = {rule["name"]: rule for rule in BALANCE.get("rate_limits", [])}
    assert {"sessions", "accounts", "orders", "writes", "reads"} <= set(rules), rules
    per_second = {name: rule["requests"] / rule["per_seconds"] for name, rule in rules.items()}
    assert per_second["sessions"] < per_second["orders"] < per_second["writes"] < per_second["reads"]
    assert rules["accounts"]["methods"] == ["POST"] and rules["sessions"]["methods"] == ["POST"]
    # Keyed by the client's address: the balancer is the first hop, so no trusted proxies.
    assert all(rule.get("key", "client") == "client" for rule in rules.values())
    assert not BALANCE.get("trusted_proxies")


def test_no_password_is_written_in_the_file():
    """Every secret comes from deploy/.env (not committed): required, never defaulted."""
    secrets = list(secret_values())
    assert len(secrets) >= 4, secrets
    for name, variable, value in secrets:
        assert ":?" in value, f"{name}: {variable} must come from deploy/.env, not from the file"
        assert ":-" not in value, f"{name}: {variable} has a default"
    example = read("deploy/.env.example")
    for needed in ["POSTGRES_PASSWORD=", "BRIGADE_DEMO_PASSWORD=", "GRAFANA_ADMIN_PASSWORD=", "MINIO_ROOT_USER=",
                   "MINIO_ROOT_PASSWORD=", "PGBACKREST_S3_KEY=", "PGBACKREST_S3_SECRET="]:
        assert f"\n{needed}\n" in f"\n{example}", f"deploy/.env.example lists {needed} without a value"
    assert "/deploy/.env" in read(".gitignore").splitlines()


def test_replicas_trust_only_the_balancer_for_the_client_address():
    balancer = SERVICES["balance"]["networks"]["brigade"]["ipv4_address"]
    for replica in REPLICAS:
        trusted = SERVICES[replica]["environment"]["BRIGADE_SERVER__TRUSTED_PROXIES"]
        assert trusted == f'["{balancer}/32"]', (replica, trusted)

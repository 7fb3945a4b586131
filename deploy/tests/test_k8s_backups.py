"""Backups on Kubernetes beyond the pg_dump CronJob: the optional pgbackrest component (base
backups of a self-managed PostgreSQL into the WAL archive bucket, rendered on top of
production) and Velero's schedule of brigade's own resources. Both renderers must agree, the
real pgBackRest must accept the configuration, and every name must meet its counterpart."""

import configparser
import re
import shutil
import subprocess

import pytest

from deploylib import K8S, OVERLAYS, containers, find, in_ci, kubectl, kubectl_render, pod_specs, read, render, with_components
from test_k8s import RENDERED, assert_restricted

# The Secret holding the CronJob's client certificate for the database host's pgBackRest server,
# created outside git like brigade-secrets.
PGBACKREST_TLS_KEYS = {"tls.crt", "tls.key", "ca.crt"}


@pytest.fixture(scope="module")
def with_pgbackrest(tmp_path_factory):
    return with_components(tmp_path_factory.mktemp("pgbackrest"), "production", ["pgbackrest"])


@pytest.fixture(scope="module")
def pgbackrest(with_pgbackrest):
    return render(with_pgbackrest)


def cronjob(resources):
    return find(resources, "CronJob", "brigade-pgbackrest")


def conf(resources) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(find(resources, "ConfigMap", "brigade-pgbackrest")["data"]["pgbackrest.conf"])
    return parser


def target(resources) -> dict:
    return find(resources, "ConfigMap", "brigade-pgbackrest-target")["data"]


def tfvar(environment: str, name: str) -> str:
    text = read(f"deploy/terraform/environments/{environment}.tfvars")
    return re.search(rf"^{name}\s*=\s*(\S+)", text, re.M).group(1)


@pytest.mark.skipif(not kubectl(), reason="kubectl not installed: rendered by deploylib only")
def test_renderers_agree_on_the_component_and_the_velero_schedules(with_pgbackrest):
    for directory in (with_pgbackrest, K8S / "velero/staging", K8S / "velero/production"):
        ours = {(r["kind"], r["metadata"]["name"]): r for r in render(directory)}
        theirs = {(r["kind"], r["metadata"]["name"]): r for r in kubectl_render(directory)}
        assert ours == theirs, directory


def test_no_overlay_runs_pgbackrest_because_both_use_rds():
    for overlay in OVERLAYS:
        assert not [r for r in RENDERED[overlay] if r["metadata"]["name"].startswith("brigade-pgbackrest")]
    assert 'engine                          = "postgres"' in read("deploy/terraform/data.tf")


def test_the_backup_job_runs_restricted_with_its_own_account(pgbackrest):
    job = cronjob(pgbackrest)
    assert_restricted(job, pgbackrest)
    (pod,) = pod_specs(job)
    assert pod["serviceAccountName"] == "brigade-pgbackrest"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "brigade-pgbackrest-tls"
    assert not [r for r in pgbackrest if r["kind"] == "Secret"], "no Secret belongs in git"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    dump = find(pgbackrest, "CronJob", "brigade-backup")
    assert job["spec"]["schedule"] != dump["spec"]["schedule"], "not at the same minute as pg_dump"


def test_the_repository_is_s3_through_the_pods_role_with_a_time_window(pgbackrest):
    parsed = conf(pgbackrest)
    glob = parsed["global"]
    assert glob["repo1-type"] == "s3"
    assert glob["repo1-s3-key-type"] == "web-id", "IRSA: no S3 key in any Secret"
    assert not [k for k in glob if k.startswith("repo1-s3-key") and k != "repo1-s3-key-type"]
    assert glob["repo1-retention-full-type"] == "time"
    data = target(pgbackrest)
    assert int(data["PGBACKREST_REPO1_RETENTION_FULL"]) >= 7
    for name in data:
        assert name.startswith("PGBACKREST_"), name
        assert name.removeprefix("PGBACKREST_").lower().replace("_", "-") not in glob, f"{name} is set twice"
    # Written where the read-only root allows: the /tmp emptyDir.
    for key in ("lock-path", "log-path"):
        assert glob[key].startswith("/tmp/")


def test_the_job_reaches_the_database_hosts_pgbackrest_server_over_tls(pgbackrest):
    parsed = conf(pgbackrest)
    (stanza,) = [s for s in parsed.sections() if s != "global"]
    section = parsed[stanza]
    assert section["pg1-host-type"] == "tls"
    (container,) = containers(cronjob(pgbackrest))
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    files = {section[k] for k in ("pg1-host-cert-file", "pg1-host-key-file", "pg1-host-ca-file")}
    assert {f.rsplit("/", 1)[0] for f in files} == {mounts["tls"]}
    assert {f.rsplit("/", 1)[1] for f in files} == PGBACKREST_TLS_KEYS
    script = container["command"][-1]
    for step in ("stanza-create", "check", "backup --type=", "info"):
        assert f"pgbackrest --stanza={stanza} {step}" in script, step
    policy = find(pgbackrest, "NetworkPolicy", "brigade-pgbackrest-egress")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= cronjob(pgbackrest)["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].items()
    (rule,) = policy["egress"]
    assert [p["port"] for p in rule["ports"]] == [int(section["pg1-host-port"])]
    assert rule["to"][0]["ipBlock"]["cidr"] == tfvar("production", "vpc_cidr").strip('"')
    assert mounts["config"] == "/etc/pgbackrest/pgbackrest.conf", "pgBackRest's default path"


@pytest.mark.skipif(shutil.which("pgbackrest") is None and not in_ci(), reason="pgbackrest not installed")
def test_pgbackrest_accepts_the_configuration_and_the_environment(pgbackrest, tmp_path):
    """The real pgBackRest with the ConfigMap's file and variables: no unknown option or bad
    value; it gets as far as asking STS for the role's credentials."""
    text = find(pgbackrest, "ConfigMap", "brigade-pgbackrest")["data"]["pgbackrest.conf"]
    (tmp_path / "tls").mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=pgbackrest",
         "-keyout", str(tmp_path / "tls/tls.key"), "-out", str(tmp_path / "tls/tls.crt")],
        check=True, capture_output=True,
    )
    shutil.copy(tmp_path / "tls/tls.crt", tmp_path / "tls/ca.crt")
    local = text.replace("/etc/pgbackrest/tls", str(tmp_path / "tls")).replace("/tmp/pgbackrest", str(tmp_path / "run"))
    (tmp_path / "pgbackrest.conf").write_text(local)
    (tmp_path / "token").write_text("token")
    env = {"PATH": "/usr/bin:/bin", **target(pgbackrest), "PGBACKREST_REPO1_S3_ENDPOINT": "127.0.0.1",
           "AWS_ROLE_ARN": "arn:aws:iam::222222222222:role/brigade-production-pgbackrest",
           "AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "token")}
    done = subprocess.run(
        ["pgbackrest", f"--config={tmp_path / 'pgbackrest.conf'}", "--stanza=brigade", "--io-timeout=1", "info"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    output = done.stdout + done.stderr
    assert "invalid option" not in output and "ERROR" not in output, output
    assert "sts." in output, output


@pytest.mark.parametrize("environment", OVERLAYS)
def test_velero_keeps_the_environments_namespace_for_its_retention(environment):
    (schedule,) = render(K8S / "velero" / environment)
    assert schedule["apiVersion"] == "velero.io/v1" and schedule["kind"] == "Schedule"
    assert schedule["metadata"]["namespace"] == "velero"
    spec = schedule["spec"]
    template = spec["template"]
    namespaces = {r["metadata"]["namespace"] for r in RENDERED[environment]}
    assert template["includedNamespaces"] == sorted(namespaces) == [f"brigade-{environment}"]
    assert template["includeClusterResources"] is False
    assert {"pods", "replicasets.apps", "jobs.batch", "events"} <= set(template["excludedResources"])
    # Nothing to snapshot: brigade's pods have only emptyDirs.
    assert template["snapshotVolumes"] is False and template["defaultVolumesToFsBackup"] is False
    assert not [r for r in RENDERED[environment] if r["kind"] in ("PersistentVolumeClaim", "StatefulSet")]
    assert spec["useOwnerReferencesInBackup"] is False
    days = int(tfvar(environment, "backup_retention_days"))
    assert template["ttl"] == f"{days * 24}h0m0s"
    minute, hour, *rest = spec["schedule"].split()
    assert rest == ["*", "*", "*"]
    dump = find(RENDERED[environment], "CronJob", "brigade-backup")["spec"]["schedule"].split()
    assert (int(hour), int(minute)) > (int(dump[1]), int(dump[0])), "after the night's database dump"


def test_the_components_window_defaults_to_terraforms(pgbackrest):
    text = read("deploy/terraform/variables.tf")
    default = re.search(r'variable "pitr_retention_days" \{.*?default\s+=\s+(\d+)', text, re.S).group(1)
    assert target(pgbackrest)["PGBACKREST_REPO1_RETENTION_FULL"] == default

"""Continuous archiving in deploy/compose.yaml: PostgreSQL (built with pgBackRest) ships its
WAL into a MinIO bucket at least every minute, the pg-backup job takes base backups there, and
every name in deploy/compose/pgbackrest.conf matches the service, volume or bucket it means.
The real pgBackRest reads the file without complaint where it is installed."""

import configparser
import re
import shutil
import subprocess

import pytest

from deploylib import DEPLOY, in_ci, read
from test_compose import SERVICES, mount_target

CONF_PATH = "/etc/pgbackrest/pgbackrest.conf"
CONF_TEXT = read("deploy/compose/pgbackrest.conf")
CONF = configparser.ConfigParser(interpolation=None)
CONF.read_string(CONF_TEXT)
GLOBAL = CONF["global"]
DOCKERFILE = read("deploy/docker/postgres.Dockerfile")


def server_settings() -> dict[str, str]:
    command = SERVICES["postgres"]["command"]
    assert command[0] == "postgres"
    pairs = [command[i + 1] for i, word in enumerate(command) if word == "-c"]
    return dict(pair.split("=", 1) for pair in pairs)


def volume_of(service: str, target: str) -> str:
    (volume,) = [v for v in SERVICES[service]["volumes"] if mount_target(v) == target]
    return volume.split(":")[0]


def stanza() -> str:
    (name,) = [s for s in CONF.sections() if not s.startswith("global")]
    return name


def test_postgres_and_the_jobs_use_the_image_built_with_pgbackrest():
    base = re.search(r"^FROM (\S+)$", DOCKERFILE, re.M).group(1)
    assert re.fullmatch(r"postgres:16\.\d+-bookworm", base), "a pinned Debian PostgreSQL 16"
    assert re.search(r"apt-get install -y --no-install-recommends pgbackrest openssl", DOCKERFILE)
    assert "rm -rf /var/lib/apt/lists/*" in DOCKERFILE
    for name in ("postgres", "pg-backup", "minio-certificate"):
        service = SERVICES[name]
        assert service["build"] == {"context": "docker", "dockerfile": "postgres.Dockerfile"}, name
        assert service["image"] == "brigade-postgres:local" and service["pull_policy"] == "build", name
    assert (DEPLOY / "docker/postgres.Dockerfile").exists()


def test_the_server_archives_every_segment_within_a_minute():
    settings = server_settings()
    assert settings["archive_mode"] == "on"
    assert settings["wal_level"] in ("replica", "logical")
    # brigade backup allows 1–60 s (docs/operations.md); compose uses the same bound.
    assert 1 <= int(settings["archive_timeout"]) <= 60
    assert settings["archive_command"] == f"pgbackrest --stanza={stanza()} archive-push %p"
    # The server finds the configuration at pgBackRest's default path and the CA beside it.
    assert f"./compose/pgbackrest.conf:{CONF_PATH}:ro" in SERVICES["postgres"]["volumes"]


def test_the_repository_is_the_minio_bucket_over_tls_with_path_style():
    assert GLOBAL["repo1-type"] == "s3"
    assert GLOBAL["repo1-s3-uri-style"] == "path"
    assert GLOBAL["repo1-s3-endpoint"] == "minio" and "minio" in SERVICES
    address = SERVICES["minio"]["command"][SERVICES["minio"]["command"].index("--address") + 1]
    assert GLOBAL["repo1-storage-port"] == address.rsplit(":", 1)[1]
    made = " ".join(SERVICES["minio-bucket"]["entrypoint"])
    assert f"mc mb --ignore-existing brigade/{GLOBAL['repo1-s3-bucket']};" in made
    # The CA file is the certificate the minio-certificate job makes, in the volume MinIO serves.
    ca = GLOBAL["repo1-storage-ca-file"]
    folder, file = ca.rsplit("/", 1)
    job = " ".join(SERVICES["minio-certificate"]["command"])
    assert f"-out /certs/{file}" in job and "DNS:minio" in job
    assert volume_of("minio-certificate", "/certs") == volume_of("minio", "/certs") == "minio-tls"
    for name in ("postgres", "pg-backup"):
        assert f"minio-tls:{folder}:ro" in SERVICES[name]["volumes"], name
    assert GLOBAL.get("repo1-storage-verify-tls", "y") == "y"


def test_retention_keeps_full_backups_and_their_wal():
    assert GLOBAL["repo1-retention-full-type"] == "count"
    assert int(GLOBAL["repo1-retention-full"]) >= 2
    assert "repo1-retention-archive" not in GLOBAL, "WAL expires with the backups that need it"


def test_the_stanza_points_at_the_servers_data_socket_and_role():
    section = CONF[stanza()]
    postgres = SERVICES["postgres"]
    data = section["pg1-path"]
    socket = section["pg1-socket-path"]
    assert volume_of("postgres", data) == volume_of("pg-backup", data) == "postgres-data"
    assert volume_of("postgres", socket) == volume_of("pg-backup", socket) == "postgres-run"
    assert section["pg1-user"] == postgres["environment"]["POSTGRES_USER"]
    assert section["pg1-database"] == postgres["environment"]["POSTGRES_DB"]
    assert section["pg1-port"] == "5432"


def test_credentials_come_from_the_env_file_not_the_conf():
    assert not re.search(r"^repo1-s3-key", CONF_TEXT, re.M), "no S3 key in pgbackrest.conf"
    for name in ("postgres", "pg-backup"):
        env = SERVICES[name]["environment"]
        assert env["PGBACKREST_REPO1_S3_KEY"].startswith("${PGBACKREST_S3_KEY:?"), name
        assert env["PGBACKREST_REPO1_S3_KEY_SECRET"].startswith("${PGBACKREST_S3_SECRET:?"), name
    bucket_job = SERVICES["minio-bucket"]
    assert set(bucket_job["environment"]) == {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "PGBACKREST_S3_KEY", "PGBACKREST_S3_SECRET"}
    made = " ".join(bucket_job["entrypoint"])
    assert 'mc admin user add brigade "$$PGBACKREST_S3_KEY" "$$PGBACKREST_S3_SECRET"' in made
    assert "mc admin policy attach brigade readwrite" in made, "pgBackRest's user is no admin"


def test_the_backup_job_runs_beside_the_data_after_the_bucket_exists():
    job = SERVICES["pg-backup"]
    assert job["restart"] == "no" and job["user"] == "postgres"
    steps = job["command"][-1].split(" && ")
    name = stanza()
    assert steps == [f"pgbackrest --stanza={name} stanza-create", f"pgbackrest --stanza={name} check", f"pgbackrest --stanza={name} backup"]
    assert job["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert job["depends_on"]["minio-bucket"]["condition"] == "service_completed_successfully"
    assert f"./compose/pgbackrest.conf:{CONF_PATH}:ro" in job["volumes"]
    assert SERVICES["minio-bucket"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_object_store_images_are_pinned_releases():
    assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", SERVICES["minio"]["image"])
    assert re.fullmatch(r"minio/mc:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", SERVICES["minio-bucket"]["image"])
    assert all(not p.startswith(("9000", "0.0.0.0")) for p in SERVICES["minio"]["ports"]), "S3 stays inside"


@pytest.mark.skipif(shutil.which("pgbackrest") is None and not in_ci(), reason="pgbackrest not installed")
def test_pgbackrest_accepts_every_option_and_reaches_for_the_bucket(tmp_path):
    """The real pgBackRest (scripts/test installs it) reads the file: no unknown option, no bad
    value, nothing missing; with the endpoint moved to a closed loopback port it gets as far as
    connecting to S3."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=minio",
         "-keyout", str(tmp_path / "private.key"), "-out", str(tmp_path / "public.crt")],
        check=True, capture_output=True,
    )
    local = (CONF_TEXT.replace(GLOBAL["repo1-storage-ca-file"], str(tmp_path / "public.crt"))
             .replace("repo1-s3-endpoint=minio", "repo1-s3-endpoint=127.0.0.1")
             .replace(f"repo1-storage-port={GLOBAL['repo1-storage-port']}", "repo1-storage-port=1"))
    (tmp_path / "pgbackrest.conf").write_text(local)
    env = {"PATH": "/usr/bin:/bin", "PGBACKREST_REPO1_S3_KEY": "key", "PGBACKREST_REPO1_S3_KEY_SECRET": "secret"}
    done = subprocess.run(
        ["pgbackrest", f"--config={tmp_path / 'pgbackrest.conf'}", f"--stanza={stanza()}", "--io-timeout=1", "info"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    output = done.stdout + done.stderr
    assert "invalid option" not in output and "ERROR" not in output, output
    assert "unable to connect to '127.0.0.1:1'" in output, output

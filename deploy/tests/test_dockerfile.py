"""The container image's Dockerfile and .dockerignore have the properties brigade needs
(hadolint cannot be installed here, so these are checked directly)."""

import re

import pytest

from deploylib import ROOT, config_defaults, env_to_key, read, settings_keys

DOCKERFILE = read("deploy/docker/Dockerfile")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def args(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def test_multi_stage_with_a_cached_dependency_layer():
    stages = [re.search(r"\bAS (\w+)", rest, re.I).group(1) for rest in args("FROM")]
    assert stages == ["chef", "planner", "builder", "runtime"]
    text = [f"{w} {r}" for w, r in instructions()]
    builder = text[text.index(next(t for t in text if t.startswith("FROM chef AS builder"))) :]
    cook = next(i for i, t in enumerate(builder) if "cargo chef cook --release" in t)
    copy_sources = next(i for i, t in enumerate(builder) if t == "COPY . .")
    build = next(i for i, t in enumerate(builder) if "cargo build --release --locked" in t)
    assert cook < copy_sources < build, "dependencies must be cooked before the sources are copied"
    for rest in args("COPY"):
        if rest.startswith("--from="):
            assert rest.split()[0][len("--from=") :] in stages


def test_rust_version_matches_the_toolchain():
    assert re.search(r"^ARG RUST_VERSION=1\.95$", DOCKERFILE, re.M)


def test_minimal_runtime_as_non_root():
    runtime = args("FROM")[-1]
    assert re.match(r"(debian:\$\{DEBIAN_RELEASE\}-slim|gcr\.io/distroless/)", runtime), runtime
    user = args("USER")[-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "USER must be a numeric non-root uid (runAsNonRoot)"
    assert "--uid " + uid in DOCKERFILE


def test_environment_names_real_settings_and_only_writes_to_the_volume():
    env = dict(re.findall(r"(BRIGADE_\w+)=(\S+)", " ".join(args("ENV"))))
    keys = settings_keys()
    for name in env:
        assert env_to_key(name) in keys, f"{name} is not a brigade setting"
    assert env["BRIGADE_LOG__FORMAT"] == "json"
    assert env["BRIGADE_STORAGE__DATA_DIR"] == "/var/lib/brigade"
    assert '"/var/lib/brigade"' in args("VOLUME")[0]


def test_healthcheck_probes_liveness_on_the_listening_port():
    env = dict(re.findall(r"(BRIGADE_\w+)=(\S+)", " ".join(args("ENV"))))
    port = env["BRIGADE_SERVER__LISTEN"].rsplit(":", 1)[1]
    (check,) = args("HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/health/live" in check
    assert args("EXPOSE") == [port]
    # brigade's default would be loopback only: unreachable from outside the container.
    assert env["BRIGADE_SERVER__LISTEN"].startswith("0.0.0.0:")
    assert config_defaults()["drain_delay_ms"] >= 0


def test_oci_labels():
    labels = " ".join(args("LABEL"))
    for key in ("title", "description", "source", "licenses", "version", "revision", "created"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    licence = re.search(r'^license = "([^"]+)"', read("Cargo.toml"), re.M).group(1)
    assert f'org.opencontainers.image.licenses="{licence}"' in labels


def test_entrypoint_is_the_binary():
    assert args("ENTRYPOINT") == ['["/usr/local/bin/brigade"]']
    assert args("CMD") == ['["serve"]']
    assert not args("ADD"), "ADD can download; use COPY"


@pytest.mark.parametrize("needed", ["Cargo.toml", "Cargo.lock", "crates/brigade/src/main.rs", "examples/balance.toml"])
def test_dockerignore_keeps_the_sources(needed):
    patterns = [p for p in read(".dockerignore").splitlines() if p and not p.startswith("#")]
    assert (ROOT / needed).exists()
    top = needed.split("/")[0]
    assert not any(p.rstrip("/") in (needed, top) for p in patterns if not p.startswith("!")), needed


def test_dockerignore_drops_build_output_and_history():
    patterns = read(".dockerignore").splitlines()
    for excluded in ("target/", ".git/", "brigade-data/"):
        assert excluded in patterns

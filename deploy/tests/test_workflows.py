"""The CI/CD workflows run what brigade's pipeline needs, in order, and every script and file
they name exists (their schema is checked by check-jsonschema in scripts/validate-deploy)."""

import re
import shutil
import subprocess

import pytest
import yaml

from deploylib import ROOT, containers, in_ci, load, read, render

CI = load(ROOT / ".github/workflows/ci.yml")
DEPLOY = load(ROOT / ".github/workflows/deploy.yml")


def runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def uses(job: dict) -> list[str]:
    return [step["uses"] for step in job["steps"] if "uses" in step]


def triggers(workflow: dict) -> dict:
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    return workflow.get("on", workflow.get(True))


def test_ci_runs_on_every_push_the_checks_of_ci_run():
    assert "push" in triggers(CI)
    jobs = CI["jobs"]
    assert "cargo fmt --all --check" in runs(jobs["lint"])
    assert "cargo clippy --workspace --all-targets --locked -- -D warnings" in runs(jobs["lint"])
    test = jobs["test"]
    assert {"postgres", "redis"} <= set(test["services"])
    assert test["env"]["BRIGADE_TEST_POSTGRES_URL"].startswith("postgres://postgres@127.0.0.1:5432/")
    assert test["env"]["REDIS_URL"] == "redis://127.0.0.1:6379"
    assert "./scripts/test" in runs(test)
    for check in ("promtool check rules", "promtool test rules", "amtool check-config"):
        assert check in runs(test), check
    assert any(u.startswith("EmbarkStudios/cargo-deny-action") for u in uses(jobs["deny"]))
    assert "./scripts/validate-deploy" in runs(jobs["manifests"])
    assert "terraform validate" in runs(jobs["manifests"])


def test_toolchain_matches_the_workspace():
    for job in CI["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("dtolnay/rust-toolchain"):
                assert step["with"]["toolchain"] == "1.95"


def test_deploy_pipeline_builds_scans_stages_and_promotes_with_approval():
    assert triggers(DEPLOY)["push"]["branches"] == ["main"]
    jobs = DEPLOY["jobs"]
    build = next(s for s in jobs["image"]["steps"] if s.get("uses", "").startswith("docker/build-push-action"))
    assert build["with"]["file"] == "deploy/docker/Dockerfile" and build["with"]["push"] is True
    assert (ROOT / build["with"]["file"]).exists()
    assert any(u.startswith("aquasecurity/trivy-action") for u in uses(jobs["scan"]))
    assert set(jobs["staging"]["needs"]) >= {"image", "scan"}
    assert "staging" in jobs["production"]["needs"]
    assert jobs["production"]["environment"]["name"] == "production"
    for environment in ("staging", "production"):
        script = runs(jobs[environment])
        assert f"deploy/k8s/deploy.sh {environment}" in script
        assert "deploy/k8s/smoke.sh" in script
        assert (ROOT / "deploy/k8s/overlays" / environment / "kustomization.yaml").exists()


def test_the_pgbackrest_image_the_backup_component_runs_is_built_from_its_dockerfile():
    build = next(
        s for s in DEPLOY["jobs"]["postgres-image"]["steps"] if s.get("uses", "").startswith("docker/build-push-action")
    )
    assert build["with"]["push"] is True
    assert (ROOT / build["with"]["file"]).exists()
    dockerfile = read(ROOT / build["with"]["file"])
    assert "pgbackrest" in dockerfile
    tags = build["with"]["tags"].split()
    base = read(ROOT / "deploy/docker/postgres.Dockerfile").split("FROM postgres:", 1)[1].split()[0]
    assert any(tag.endswith(f"-postgres:{base}") for tag in tags), tags
    cronjob = read(ROOT / "deploy/k8s/components/pgbackrest/cronjob.yaml")
    assert f"brigade-postgres:{base}" in cronjob, "the CronJob runs the tag the workflow pushes"


def test_named_scripts_and_configs_exist():
    text = read(".github/workflows/ci.yml") + read(".github/workflows/deploy.yml")
    for path in set(re.findall(r"(?:\./)?((?:scripts|deploy)/[\w./-]+)", text)):
        assert (ROOT / path.rstrip(".")).exists(), path
    assert (ROOT / ".github/deny.toml").exists()
    deploy_script = read("deploy/k8s/deploy.sh")
    assert "ghcr.io/brigade-rs/brigade" in deploy_script
    assert "kubectl -n \"$namespace\" wait --for=condition=complete job/brigade-migrate" in deploy_script
    assert "rollout undo" in deploy_script


@pytest.mark.skipif(shutil.which("kubectl") is None and not in_ci(), reason="kubectl not installed")
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_deploy_script_renders_the_overlay_with_the_image_digest(environment):
    """deploy.sh's rendering, without a cluster: the overlay through kubectl kustomize with every
    brigade container pinned to the digest the pipeline built."""
    image = "ghcr.io/brigade-rs/brigade@sha256:" + "ab" * 32
    out = subprocess.run(
        [str(ROOT / "deploy/k8s/deploy.sh"), "--render", environment, image],
        check=True, capture_output=True, text=True,
    ).stdout
    resources = [doc for doc in yaml.safe_load_all(out) if doc]
    expected = render(ROOT / "deploy/k8s/overlays" / environment)
    assert {(r["kind"], r["metadata"]["name"]) for r in resources} == {(r["kind"], r["metadata"]["name"]) for r in expected}
    brigade = [c for r in resources for c in containers(r) if "brigade-rs/brigade" in c["image"]]
    assert {c["image"] for c in brigade} == {image}
    assert len(brigade) == 2, "the api Deployment and the migrate Job"

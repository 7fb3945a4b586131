"""Shared helpers of brigade's deployment checks: file locations, YAML loading, the
PrometheusRule generated from the rule file, and a small kustomize renderer.

The renderer covers what deploy/k8s uses (resources, components, namespace, labels, images,
replicas, strategic-merge patches by file), so the overlays are checked without kubectl; where
kubectl is present, test_k8s.py and test_k8s_backups.py check that both renderings agree.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("staging", "production")
RULE_FILE = DEPLOY / "prometheus" / "rules" / "brigade.yml"
GENERATED_RULE = K8S / "base" / "prometheusrule.yaml"


def in_ci() -> bool:
    """CI=true turns a missing tool into a failure instead of a skip."""
    return os.environ.get("CI") == "true"


def load_docs(path: Path) -> list[dict]:
    """Every non-empty YAML document of a file."""
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def load(path: Path) -> dict:
    """The single YAML document of a file."""
    docs = load_docs(path)
    assert len(docs) == 1, f"{path}: expected one YAML document, found {len(docs)}"
    return docs[0]


# --- PrometheusRule from the rule file ------------------------------------------------------


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL expressions) as literal blocks, as in the rule file."""


def _str_presenter(dumper: yaml.SafeDumper, data: str):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralDumper.add_representer(str, _str_presenter)


def prometheus_rule() -> dict:
    """The Prometheus Operator resource holding exactly the groups of the rule file."""
    rules = load(RULE_FILE)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "brigade",
            "labels": {"app.kubernetes.io/name": "brigade", "role": "alert-rules"},
        },
        "spec": {"groups": rules["groups"]},
    }


def prometheus_rule_text() -> str:
    """The text of deploy/k8s/base/prometheusrule.yaml."""
    header = (
        "# GENERATED from deploy/prometheus/rules/brigade.yml by `scripts/validate-deploy --write`;\n"
        "# do not edit. deploy/tests/test_k8s.py fails when this file is out of date.\n"
    )
    body = yaml.dump(
        prometheus_rule(), Dumper=_LiteralDumper, sort_keys=False, width=4096, allow_unicode=True
    )
    return header + body


# --- kustomize, the parts deploy/k8s uses ---------------------------------------------------

# Lists merged element by element in a strategic-merge patch, and the key naming an element.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
}
_SUPPORTED = {"apiVersion", "kind", "resources", "components", "namespace", "labels", "images", "replicas", "patches"}
_COMPONENT = {"apiVersion", "kind", "resources", "patches"}


def strategic_merge(base, patch, field: str | None = None):
    """Applies a strategic-merge patch: maps merge, keyed lists merge by key, other lists and
    scalars are replaced, `null` deletes."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and field in _MERGE_KEYS:
        keys = _MERGE_KEYS[field]
        keys = keys if isinstance(keys, tuple) else (keys,)
        merged = copy.deepcopy(base)
        for item in patch:
            for index, existing in enumerate(merged):
                if all(existing.get(key) == item.get(key) for key in keys):
                    merged[index] = strategic_merge(existing, item)
                    break
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def pod_specs(resource: dict) -> list[dict]:
    """The pod specs inside a workload (Deployment, Job, CronJob), or none."""
    kind = resource.get("kind")
    spec = resource.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return [spec["template"]["spec"]]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def containers(resource: dict) -> list[dict]:
    """Every container and init container of a workload."""
    found = []
    for pod in pod_specs(resource):
        found += pod.get("initContainers", []) + pod.get("containers", [])
    return found


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def render(directory: Path) -> list[dict]:
    """Renders a kustomization directory like `kubectl kustomize` for the features above."""
    kustomization = load(directory / "kustomization.yaml")
    unknown = set(kustomization) - _SUPPORTED
    assert not unknown, f"{directory}: kustomization uses {sorted(unknown)}, which the test renderer lacks"
    resources = _load_resources(directory, kustomization)
    # A component adds its resources and patches to what the kustomization has so far, before
    # the kustomization's own patches and transformers (kustomize's order).
    for entry in kustomization.get("components", []):
        component_dir = (directory / entry).resolve()
        component = load(component_dir / "kustomization.yaml")
        assert component["kind"] == "Component", f"{component_dir} is not a Component"
        unknown = set(component) - _COMPONENT
        assert not unknown, f"{component_dir}: component uses {sorted(unknown)}, which the test renderer lacks"
        resources += _load_resources(component_dir, component)
        _apply_patches(component_dir, component, resources)
    _apply_patches(directory, kustomization, resources)
    for replicas in kustomization.get("replicas", []):
        find(resources, "Deployment", replicas["name"])["spec"]["replicas"] = replicas["count"]
    if "namespace" in kustomization:
        for resource in resources:
            resource["metadata"]["namespace"] = kustomization["namespace"]
    for label_set in kustomization.get("labels", []):
        assert set(label_set) <= {"pairs"}, f"{directory}: labels options {label_set} unsupported"
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(label_set["pairs"])
    for image in kustomization.get("images", []):
        for resource in resources:
            for container in containers(resource):
                if _image_name(container["image"]) == image["name"]:
                    name = image.get("newName", image["name"])
                    tag = image.get("newTag")
                    container["image"] = f"{name}:{tag}" if tag else name
    return resources


def _load_resources(directory: Path, kustomization: dict) -> list[dict]:
    resources: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += render(path) if path.is_dir() else load_docs(path)
    return resources


def _apply_patches(directory: Path, kustomization: dict, resources: list[dict]) -> None:
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path"}, f"{directory}: only file patches are supported: {patch}"
        for doc in load_docs(directory / patch["path"]):
            target = find(resources, doc["kind"], doc["metadata"]["name"])
            resources[resources.index(target)] = strategic_merge(target, doc)


def with_components(directory, overlay: str, components: list[str]) -> Path:
    """Writes into `directory` a kustomization of an overlay plus optional components of
    deploy/k8s/components, in the overlay's namespace, and returns the folder. kustomize takes
    only relative paths, hence os.path.relpath."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    up = os.path.relpath(K8S, folder.resolve())
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": f"brigade-{overlay}",
        "resources": [f"{up}/overlays/{overlay}"],
        "components": [f"{up}/components/{name}" for name in components],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return folder


def find(resources: list[dict], kind: str, name: str) -> dict:
    """The one resource of a kind and name."""
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def kubectl() -> str | None:
    """kubectl's path when it is installed (it renders kustomizations on its own)."""
    return shutil.which("kubectl")


def kubectl_render(directory: Path) -> list[dict]:
    """`kubectl kustomize DIR`, parsed."""
    out = subprocess.run(
        [kubectl(), "kustomize", str(directory)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc is not None]


# --- brigade's own facts, read from its sources ---------------------------------------------


def read(path: str) -> str:
    """A file of the repository, as text."""
    return (ROOT / path).read_text(encoding="utf-8")


def config_source() -> str:
    """brigade-core's settings code: config.rs and the files of its sections under config/."""
    folder = ROOT / "crates/brigade-core/src/config"
    parts = [read("crates/brigade-core/src/config.rs")]
    parts += [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.rs"))]
    return "\n".join(parts)


def config_defaults() -> dict[str, str]:
    """Default values of brigade's server settings, read from brigade-core's config code."""
    source = config_source()
    block = source[source.index("impl Default for ServerSettings") :]
    block = block[: block.index("\n}\n")]
    values = dict(re.findall(r"(\w+): ([\d_]+),", block))
    return {key: int(value.replace("_", "")) for key, value in values.items()}


def settings_keys() -> set[str]:
    """Every `section.key` brigade.toml accepts (from the settings structs in config.rs), so an
    environment variable BRIGADE_SECTION__KEY can be checked to name a real setting."""
    source = config_source()
    sections = {
        "server": "ServerSettings",
        "storage": "StorageSettings",
        "cache": "CacheSettings",
        "log": "LogSettings",
        "delivery": "DeliverySettings",
        "auth": "AuthSettings",
        "payments": "PaymentSettings",
        "faults": "FaultSettings",
        "payments.simulated": "SimulatedPaymentSettings",
        "payments.stripe": "StripeSettings",
    }
    keys = set()
    for section, struct in sections.items():
        start = source.index(f"pub struct {struct} {{")
        body = source[start : source.index("\n}\n", start)]
        for field in re.findall(r"\n    pub (\w+):", body):
            keys.add(f"{section}.{field}")
    return keys


def otel_variables() -> set[str]:
    """The OTEL_* variables brigade reads, from the table in brigade-core's traces.rs."""
    table = read("crates/brigade-core/src/traces.rs").split("//! | variable | effect |", 1)[1]
    table = table.split("\n\n", 1)[0]
    return set(re.findall(r"`(OTEL_[A-Z_]+)", table))


def env_to_key(name: str) -> str:
    """BRIGADE_PAYMENTS__STRIPE__SECRET_KEY → payments.stripe.secret_key."""
    return name[len("BRIGADE_") :].lower().replace("__", ".")


# --- running brigade ------------------------------------------------------------------------


def brigade_env(**settings: str) -> dict[str, str]:
    """This process's environment without brigade settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIGADE_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(settings)
    return env


def start_brigade(binary, args: list[str], env: dict[str, str], cwd=None) -> tuple[subprocess.Popen, dict]:
    """Starts brigade and returns the process with its JSON `listening` record (the readiness
    signal every brigade command logs); fails with the output when the line never comes."""
    process = subprocess.Popen(
        [str(binary), *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("message") == "listening":
            return process, record
    process.kill()
    process.wait()
    raise AssertionError(f"brigade {args[0]} did not log its listening line:\n" + "".join(lines))

"""deploy/terraform parses (python-hcl2), every reference resolves, each environment sets the
variables it needs, and the security-relevant settings hold. `terraform validate` is not
available here; CI's manifests job runs it where terraform is installed."""

import re
from pathlib import Path

import hcl2
import pytest

from deploylib import DEPLOY

TF = DEPLOY / "terraform"
FILES = sorted(TF.glob("*.tf"))
ENVIRONMENTS = ("staging", "production")


def unquote(value):
    """python-hcl2 keeps the quotes of names and strings; drop them, recursively."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    return value


def parse(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return unquote(hcl2.load(handle))


PARSED = {path.name: parse(path) for path in FILES}


def code(path: Path) -> str:
    """The file without comments, so references in comments do not count."""
    text = path.read_text()
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())


def declared() -> dict[str, set[str]]:
    found = {"resource": set(), "data": set(), "variable": set(), "local": set(), "output": set()}
    for parsed in PARSED.values():
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                found["resource"] |= {f"{kind}.{name}" for name in named}
        for block in parsed.get("data", []):
            for kind, named in block.items():
                found["data"] |= {f"{kind}.{name}" for name in named}
        for block in parsed.get("variable", []):
            found["variable"] |= {name.strip('"') for name in block}
        for block in parsed.get("locals", []):
            found["local"] |= {k for k in block if not k.startswith("__")}
        for block in parsed.get("output", []):
            found["output"] |= {name.strip('"') for name in block}
    return found


DECLARED = declared()


def variables() -> dict[str, dict]:
    out = {}
    for parsed in PARSED.values():
        for block in parsed.get("variable", []):
            for name, body in block.items():
                out[name.strip('"')] = body
    return out


def test_every_file_parses_and_declares_the_parts():
    assert {p.name for p in FILES} >= {"versions.tf", "variables.tf", "outputs.tf", "network.tf", "eks.tf", "data.tf", "security.tf"}
    kinds = {r.split(".")[0] for r in DECLARED["resource"]}
    for needed in ("aws_vpc", "aws_subnet", "aws_eks_cluster", "aws_eks_node_group", "aws_db_instance",
                   "aws_elasticache_replication_group", "aws_s3_bucket", "aws_cloudwatch_log_group", "aws_security_group"):
        assert needed in kinds, needed


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_references_resolve(path):
    text = code(path)
    for name in re.findall(r"\bvar\.(\w+)", text):
        assert name in DECLARED["variable"], f"{path.name}: var.{name} is not declared"
    for name in re.findall(r"\blocal\.(\w+)", text):
        assert name in DECLARED["local"], f"{path.name}: local.{name} is not declared"
    for kind, name in re.findall(r"\bdata\.(\w+)\.(\w+)", text):
        assert f"{kind}.{name}" in DECLARED["data"], f"{path.name}: data.{kind}.{name} is not declared"
    for kind, name in re.findall(r"(?<![\w.\"/-])((?:aws|tls)_\w+)\.(\w+)", text):
        assert f"{kind}.{name}" in DECLARED["resource"], f"{path.name}: {kind}.{name} is not declared"


def test_every_variable_is_used_and_every_provider_declared():
    everything = "\n".join(code(p) for p in FILES)
    for name in DECLARED["variable"]:
        assert f"var.{name}" in everything, f"variable {name} is never used"
    providers = PARSED["versions.tf"]["terraform"][0]["required_providers"][0]
    prefixes = {r.split("_")[0] for r in DECLARED["resource"] | DECLARED["data"]}
    assert prefixes <= set(providers), prefixes - set(providers)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environments_set_declared_variables(environment):
    values = parse(TF / "environments" / f"{environment}.tfvars")
    declared_vars = variables()
    assert set(values) <= set(declared_vars), set(values) - set(declared_vars)
    required = {name for name, body in declared_vars.items() if "default" not in body}
    assert required <= set(values), required - set(values)
    assert values["environment"] == environment
    backend = parse(TF / "environments" / f"{environment}.backend.hcl")
    assert backend["key"] == f"{environment}/terraform.tfstate" and backend["encrypt"] is True


def test_production_is_highly_available_and_protected():
    production = parse(TF / "environments" / "production.tfvars")
    assert production["db_multi_az"] is True
    assert production["deletion_protection"] is True
    assert production["redis_replicas"] >= 1
    assert production["db_backup_retention_days"] >= 7


def test_database_cache_and_bucket_are_encrypted_and_private():
    data = code(TF / "data.tf")
    database = next(b for block in PARSED["data.tf"]["resource"] for k, named in block.items()
                    if k == "aws_db_instance" for b in named.values())
    assert database["storage_encrypted"] is True and database["publicly_accessible"] is False
    assert database["manage_master_user_password"] is True
    assert database["multi_az"] == "${var.db_multi_az}"
    assert database["backup_retention_period"] == "${var.db_backup_retention_days}"
    assert database["deletion_protection"] == "${var.deletion_protection}"
    for setting in ("at_rest_encryption_enabled = true", "transit_encryption_enabled = true"):
        assert setting in data, setting
    assert "restrict_public_buckets = true" in data
    assert "password " not in data.replace("manage_master_user_password", ""), "no password in Terraform"


def test_security_groups_open_only_postgres_and_redis_from_the_cluster():
    rules = [body for block in PARSED["security.tf"]["resource"] for kind, named in block.items()
             if kind.startswith("aws_vpc_security_group_ingress_rule") for body in named.values()]
    assert sorted(r["from_port"] for r in rules) == [5432, 6379]
    for rule in rules:
        assert rule["from_port"] == rule["to_port"]
        assert "cluster_security_group_id" in rule["referenced_security_group_id"]
        assert "cidr_ipv4" not in rule
    assert "aws_vpc_security_group_egress_rule" not in code(TF / "security.tf")


@pytest.mark.parametrize("path", FILES + sorted((TF / "environments").iterdir()), ids=lambda p: p.name)
def test_formatted_like_terraform_fmt(path):
    """Two-space indents and aligned `=` in runs of one-line attributes, as `terraform fmt` writes."""
    lines = path.read_text().splitlines()
    run: list[tuple[int, str]] = []

    def check(run):
        columns = {line.index("=") for _, line in run}
        assert len(columns) == 1, f"{path.name}:{run[0][0]}: '=' not aligned in {[l for _, l in run]}"

    depth = 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            assert (len(line) - len(line.lstrip(" "))) == 2 * depth or stripped[0] in "}])", f"{path.name}:{number}: indent"
        single = re.match(r"^\s*[\w\"./-]+\s+=\s+(?!.*[{\[(]\s*$)", line)
        if single:
            if run and (len(line) - len(line.lstrip())) != (len(run[0][1]) - len(run[0][1].lstrip())):
                check(run)
                run = []
            run.append((number, line))
        else:
            if len(run) > 1:
                check(run)
            run = []
        net = sum(stripped.count(c) for c in "{[(") - sum(stripped.count(c) for c in "}])")
        depth += (net > 0) - (net < 0)
    if len(run) > 1:
        check(run)


def resource(kind: str, name: str) -> dict:
    for parsed in PARSED.values():
        for block in parsed.get("resource", []):
            if kind in block and name in block[kind]:
                return block[kind][name]
    raise AssertionError(f"{kind}.{name} is not declared")


def test_checkov_findings_are_fixed():
    """The EKS API is reachable from listed ranges only, Redis needs an AUTH token over TLS, and
    the VPC's traffic is logged."""
    cluster = resource("aws_eks_cluster", "main")["vpc_config"][0]
    assert cluster["public_access_cidrs"] == "${var.cluster_endpoint_public_cidrs}"
    assert "length(var.cluster_endpoint_public_cidrs) > 0" in cluster["endpoint_public_access"]
    for environment in ENVIRONMENTS:
        cidrs = parse(TF / "environments" / f"{environment}.tfvars")["cluster_endpoint_public_cidrs"]
        assert cidrs and "0.0.0.0/0" not in cidrs, environment
    assert "0.0.0.0/0" in str(variables()["cluster_endpoint_public_cidrs"]["validation"]), "refused by validation"
    redis = resource("aws_elasticache_replication_group", "main")
    assert redis["transit_encryption_enabled"] is True
    assert redis["auth_token"] == "${random_password.redis_auth.result}"
    assert resource("aws_secretsmanager_secret", "redis_auth")["kms_key_id"] == "${aws_kms_key.main.arn}"
    flow = resource("aws_flow_log", "main")
    assert flow["vpc_id"] == "${aws_vpc.main.id}" and flow["traffic_type"] == "ALL"
    assert resource("aws_cloudwatch_log_group", "flow_logs")["kms_key_id"] == "${aws_kms_key.main.arn}"

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


def data_source(kind: str, name: str) -> dict:
    for parsed in PARSED.values():
        for block in parsed.get("data", []):
            if kind in block and name in block[kind]:
                return block[kind][name]
    raise AssertionError(f"data.{kind}.{name} is not declared")


def outputs() -> dict[str, dict]:
    return {name: body for block in PARSED["outputs.tf"]["output"] for name, body in block.items()}


def test_the_wal_archive_bucket_is_versioned_encrypted_private_and_tls_only():
    assert "recovery.tf" in PARSED
    versioning = resource("aws_s3_bucket_versioning", "wal_archive")
    assert versioning["bucket"] == "${aws_s3_bucket.wal_archive.id}"
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    encryption = resource("aws_s3_bucket_server_side_encryption_configuration", "wal_archive")["rule"][0]
    default = encryption["apply_server_side_encryption_by_default"][0]
    assert default == {"sse_algorithm": "aws:kms", "kms_master_key_id": "${aws_kms_key.main.arn}"}
    block = resource("aws_s3_bucket_public_access_block", "wal_archive")
    for setting in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block[setting] is True, setting
    policy = resource("aws_s3_bucket_policy", "wal_archive")
    assert policy["policy"] == "${data.aws_iam_policy_document.wal_archive_tls_only.json}"
    (deny,) = data_source("aws_iam_policy_document", "wal_archive_tls_only")["statement"]
    assert deny["effect"] == "Deny" and deny["condition"][0]["variable"] == "aws:SecureTransport"
    assert deny["condition"][0]["values"] == ["false"]


def test_the_lifecycle_follows_the_retention_and_never_expires_what_pgbackrest_keeps():
    (rule,) = resource("aws_s3_bucket_lifecycle_configuration", "wal_archive")["rule"]
    assert rule["status"] == "Enabled"
    assert "expiration" not in rule, "pgBackRest expires current objects itself; the lifecycle must not"
    assert rule["noncurrent_version_expiration"][0]["noncurrent_days"] == "${var.pitr_retention_days}"
    assert rule["abort_incomplete_multipart_upload"][0]["days_after_initiation"] >= 1
    for environment in ENVIRONMENTS:
        days = parse(TF / "environments" / f"{environment}.tfvars").get("pitr_retention_days", variables()["pitr_retention_days"]["default"])
        assert days >= 7, environment


def test_the_pgbackrest_role_trusts_the_components_account_and_reaches_only_its_bucket():
    from deploylib import K8S, load

    account = load(K8S / "components/pgbackrest/serviceaccount.yaml")["metadata"]["name"]
    trust = data_source("aws_iam_policy_document", "pgbackrest_assume")["statement"][0]
    assert trust["condition"][0]["values"] == [f"system:serviceaccount:brigade-${{var.environment}}:{account}"]
    assert resource("aws_iam_role", "pgbackrest")["assume_role_policy"] == "${data.aws_iam_policy_document.pgbackrest_assume.json}"
    statements = data_source("aws_iam_policy_document", "pgbackrest")["statement"]
    actions = {action for s in statements for action in s["actions"]}
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions
    assert not [a for a in actions if a.endswith("*")]
    s3_resources = {r for s in statements for r in s["resources"] if "s3" in r}
    assert s3_resources == {"${aws_s3_bucket.wal_archive.arn}", "${aws_s3_bucket.wal_archive.arn}/*"}
    assert resource("aws_iam_role_policy", "pgbackrest")["role"] == "${aws_iam_role.pgbackrest.id}"


def test_the_read_replica_is_optional_private_encrypted_and_follows_the_primary():
    replica = resource("aws_db_instance", "replica")
    assert replica["count"] == "${var.db_read_replica ? 1 : 0}"
    assert variables()["db_read_replica"]["default"] is False
    assert replica["replicate_source_db"] == "${aws_db_instance.main.identifier}"
    assert replica["storage_encrypted"] is True and replica["publicly_accessible"] is False
    assert replica["kms_key_id"] == "${aws_kms_key.main.arn}"
    assert replica["vpc_security_group_ids"] == ["${aws_security_group.database.id}"]
    assert replica["parameter_group_name"] == "${aws_db_parameter_group.main.name}", "TLS forced like the primary"
    for inherited in ("username", "password", "db_name", "manage_master_user_password", "engine"):
        assert inherited not in replica, f"a replica inherits {inherited}"
    production = parse(TF / "environments" / "production.tfvars")
    assert production["db_read_replica"] is True


def test_outputs_name_the_bucket_role_and_replica_for_the_manifests():
    out = outputs()
    assert out["wal_archive_bucket"]["value"] == "${aws_s3_bucket.wal_archive.bucket}"
    assert out["pgbackrest_role_arn"]["value"] == "${aws_iam_role.pgbackrest.arn}"
    # null when the replica is off, instead of failing on an empty list.
    assert out["database_read_replica_endpoint"]["value"] == "${one(aws_db_instance.replica[*].endpoint)}"
    assert "PGBACKREST_REPO1_S3_BUCKET" in out["wal_archive_bucket"]["description"]
    assert "DATABASE_READ_URL" in out["database_read_replica_endpoint"]["description"]

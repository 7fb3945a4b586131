"""The API contract against a real brigade replica (run by scripts/check-openapi).

Starts `brigade serve --demo` on a free loopback port with a temporary data directory and a
known demo password, validates the served /openapi.json with openapi-spec-validator, then runs
schemathesis over every operation:

1. as the demo admin, every operation but the three that would spoil later requests
   (setting the fault switch, logging out, changing roles);
2. anonymously, every operation (the 401s and the public reads);
3. as the demo admin, the operations on one order and its tickets, with the ids of an order
   placed beforehand (random ids only ever reach their 404);
4. as the demo admin, those three, each with a token of its own.

Each run fails on a server error (5xx other than the declared 503s and payment answers), a
status code, content type or body the document does not declare.

Before the runs, /metrics asked for as OpenMetrics must parse with prometheus_client's strict
OpenMetrics parser and carry a trace exemplar on a request-duration bucket (the replica
exports traces to a closed port, so its requests are sampled and the spans dropped and counted).
"""

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
EXAMPLES = os.environ.get("BRIGADE_OPENAPI_EXAMPLES", "50")
# Run last, in this order, each with a token of its own: PUT /api/v1/admin/faults fails later
# requests on purpose, DELETE /api/v1/sessions/current revokes the token, and
# PATCH /api/v1/admin/accounts/{account_id} may demote the demo admin (its id is in
# GET /api/v1/admin/accounts, where schemathesis' stateful phase finds it).
DESTRUCTIVE = ["set_faults", "log_out", "change_role"]


def start(binary: str, data_dir: Path, password: str) -> tuple[subprocess.Popen, str, Path]:
    """Starts the replica; returns it with its base URL once it logs `listening`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIGADE_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        BRIGADE_DEMO_PASSWORD=password,
        BRIGADE_PAYMENTS__PROVIDER="simulated",
        BRIGADE_LOG__FORMAT="json",
        # Traces on (sent nowhere): requests are sampled, so latency buckets carry exemplars.
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
    )
    log_path = data_dir / "serve.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [binary, "serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir / "data")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    with open(log_path) as lines:
        while time.monotonic() < deadline and process.poll() is None:
            line = lines.readline()
            if not line:
                time.sleep(0.05)
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("message") == "listening":
                return process, f"http://{record['address']}", log_path
    process.kill()
    process.wait()
    sys.exit(f"check-openapi: brigade serve did not log `listening`:\n{log_path.read_text()}")


def call(base: str, method: str, path: str, token: str | None = None, body=None, headers=None) -> tuple[int, Message, object]:
    """One JSON request; returns the status, headers and parsed body (errors included)."""
    request = urllib.request.Request(f"{base}{path}", method=method, headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


def log_in(base: str, email: str, password: str) -> str:
    status, _, session = call(base, "POST", "/api/v1/sessions", body={"email": email, "password": password})
    assert status == 201, (status, session)
    return session["token"]


def place_order(base: str, token: str) -> dict:
    """An accepted order from the first shop's menu (the simulated provider declines some
    payments, so a few tries)."""
    _, _, shops = call(base, "GET", "/api/v1/shops")
    shop = shops[0]
    _, _, menu = call(base, "GET", f"/api/v1/shops/{shop['id']}/menu")
    item = next(entry for entry in menu if entry["available"])
    for _ in range(10):
        order = {"shop_id": shop["id"], "items": [{"item_id": item["item_id"], "quantity": 1}], "delivery": shop["location"]}
        status, headers, placed = call(base, "POST", "/api/v1/orders", token, order)
        if status == 201:
            status, _, accepted = call(
                base, "PATCH", f"/api/v1/orders/{placed['id']}", token, {"status": "accepted"}, {"If-Match": headers["ETag"]}
            )
            assert status == 200, (status, accepted)
            return accepted
    sys.exit(f"check-openapi: could not place an order: {status} {placed}")


def check_openmetrics(base: str) -> None:
    """/metrics in OpenMetrics form: strictly parsed, with an exemplar naming a trace."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    print("--- OpenMetrics /metrics (prometheus_client's parser)", flush=True)
    request = urllib.request.Request(
        f"{base}/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    assert content_type.startswith("application/openmetrics-text"), content_type
    families = list(text_string_to_metric_families(text))
    exemplars = [
        sample.exemplar
        for family in families
        if family.name == "http_server_request_duration_seconds"
        for sample in family.samples
        if sample.exemplar is not None
    ]
    assert exemplars, "no request-duration bucket carries an exemplar"
    assert all(len(e.labels["trace_id"]) == 32 for e in exemplars), exemplars
    print(f"valid OpenMetrics: {len(families)} families, {len(exemplars)} exemplars")


def schemathesis(tools: str, schema: str, base: str, label: str, *extra: str, config: Path | None = None) -> bool:
    print(f"--- schemathesis: {label}", flush=True)
    command = [
        f"{tools}/schemathesis",
        *(["--config-file", str(config)] if config else []),
        "run",
        schema,
        "--url",
        base,
        "--checks",
        CHECKS,
        "--max-examples",
        EXAMPLES,
        "--seed",
        os.environ.get("BRIGADE_OPENAPI_SEED", "16"),
        # One worker: Python 3.11's parser is not thread-safe and hypothesis parses lambdas.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "too_slow,filter_too_much",
        "--no-color",
        *extra,
    ]
    # In the schema's directory, so schemathesis' cache stays out of the checkout.
    return subprocess.run(command, cwd=Path(schema).parent).returncode == 0


def main() -> None:
    binary, tools = sys.argv[1], sys.argv[2]
    password = "demo-" + secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="brigade-openapi-") as scratch:
        scratch = Path(scratch)
        process, base, log_path = start(binary, scratch, password)
        try:
            schema = scratch / "openapi.json"
            with urllib.request.urlopen(f"{base}/openapi.json", timeout=30) as response:
                schema.write_bytes(response.read())
            print("--- openapi-spec-validator /openapi.json", flush=True)
            document, _ = read_from_filename(str(schema))
            validate(document)
            operations = sum(len(item) for item in document["paths"].values())
            responses = sum(len(op["responses"]) for item in document["paths"].values() for op in item.values())
            print(f"valid OpenAPI {document['openapi']}: {operations} operations, {responses} responses")

            # Every token is taken first: the runs send failed logins from this address, which
            # the login limiter then refuses for a while.
            tokens = [log_in(base, "admin@brigade.demo", password) for _ in range(1 + len(DESTRUCTIVE))]
            admin = f"Authorization: Bearer {tokens[0]}"
            # Placed first: the runs below close shops and take items off menus.
            order = place_order(base, tokens[0])
            check_openmetrics(base)
            excluded = [flag for operation in DESTRUCTIVE for flag in ("--exclude-operation-id", operation)]
            ok = schemathesis(tools, str(schema), base, "as the demo admin", "-H", admin, *excluded)
            ok &= schemathesis(tools, str(schema), base, "anonymous", *excluded)

            config = scratch / "schemathesis.toml"
            config.write_text(
                "[parameters]\n"
                f'"path.order_id" = "{order["id"]}"\n'
                f'"path.ticket_id" = "{order["tickets"][0]["id"]}"\n'
            )
            ok &= schemathesis(
                tools, str(schema), base, f"one order and its tickets ({order['id']})", "-H", admin,
                "--include-path-regex", "^/api/v1/(orders/[{]order_id[}]|kitchen/tickets/)", config=config,
            )
            for operation, token in zip(DESTRUCTIVE, tokens[1:]):
                ok &= schemathesis(
                    tools, str(schema), base, operation, "-H", f"Authorization: Bearer {token}",
                    "--include-operation-id", operation,
                )
        finally:
            process.terminate()
            process.wait(timeout=30)
        if not ok:
            errors = [line for line in log_path.read_text().splitlines() if '"ERROR"' in line or "panicked" in line]
            print("\n".join(errors[-20:]), file=sys.stderr)
            sys.exit("check-openapi: schemathesis found failures (above)")
    print("check-openapi: ok")


if __name__ == "__main__":
    main()

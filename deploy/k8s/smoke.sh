#!/usr/bin/env bash
# Smoke test of a deployed brigade: the public API answers, the OpenAPI document is served, and
# bad input gets application/problem+json. Used by the deploy workflow after each rollout and by
# deploy/tests/test_smoke.py against a local `brigade serve`.
#
#   deploy/k8s/smoke.sh https://staging.brigade.example.com
set -euo pipefail
base=${1:?usage: smoke.sh BASE_URL}
fail() { echo "smoke: $*" >&2; exit 1; }

code=$(curl -sS -o /tmp/smoke-shops.$$ -w '%{http_code}' --retry 5 --retry-connrefused --retry-delay 2 "$base/api/v1/shops")
[ "$code" = 200 ] || fail "GET /api/v1/shops answered $code"
head -c 1 /tmp/smoke-shops.$$ | grep -q '\[' || fail "GET /api/v1/shops did not answer a JSON array"
rm -f /tmp/smoke-shops.$$

code=$(curl -sS -o /dev/null -w '%{http_code}' "$base/openapi.json")
[ "$code" = 200 ] || fail "GET /openapi.json answered $code"

type=$(curl -sS -o /dev/null -w '%{http_code} %{content_type}' "$base/api/v1/shops/not-a-shop")
case "$type" in
    4[0-9][0-9]\ application/problem+json*) ;;
    *) fail "GET /api/v1/shops/not-a-shop answered '$type', expected a 4xx problem+json" ;;
esac
echo "smoke: $base ok"

#!/usr/bin/env python3
"""Places orders on a running brigade, one after another on one keep-alive connection.

Used by bench/profile/run: logs in as the demo customer, finds the first shop and an available
item, places WARMUP orders, signals that the measured part starts (by creating START_FILE and
waiting for GO_FILE), places COUNT orders, each with its own Idempotency-Key, and checks that
every one answered 201.

Usage: orders.py BASE_URL COUNT WARMUP START_FILE GO_FILE
"""

import http.client
import json
import os
import sys
import time
import uuid
from urllib.parse import urlsplit


def request(conn, method, path, body=None, headers=None):
    headers = dict(headers or {})
    if body is not None:
        body = json.dumps(body)
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data


def main():
    base, count, warmup, start_file, go_file = sys.argv[1:6]
    count, warmup = int(count), int(warmup)
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    status, data = request(conn, "POST", "/api/v1/sessions", {
        "email": "customer@brigade.demo",
        "password": os.environ["BRIGADE_DEMO_PASSWORD"],
    })
    if status != 201 and status != 200:
        sys.exit(f"log-in answered {status}: {data!r}")
    token = json.loads(data)["token"]
    _, data = request(conn, "GET", "/api/v1/shops")
    shop = json.loads(data)[0]["id"]
    _, data = request(conn, "GET", f"/api/v1/shops/{shop}/menu")
    item = next(i["item_id"] for i in json.loads(data) if i["available"])
    order = {
        "shop_id": shop,
        "items": [{"item_id": item, "quantity": 1}],
        "delivery": {"lat": 52.51, "lon": 13.40},
    }

    def place():
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
        status, data = request(conn, "POST", "/api/v1/orders", order, headers)
        if status != 201:
            sys.exit(f"POST /api/v1/orders answered {status}: {data!r}")

    for _ in range(warmup):
        place()
    open(start_file, "w").close()
    while not os.path.exists(go_file):
        time.sleep(0.01)
    for _ in range(count):
        place()


if __name__ == "__main__":
    main()

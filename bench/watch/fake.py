#!/usr/bin/env python3
"""bench/watch's stand-ins: a service whose /metrics counts requests (all 5xx while the fault is
on) plus filler series, and a webhook receiver recording when each notification arrived.

  fake.py PORT FILLER_ROUTES
  POST /fault?on=1|0      switch the fault; answers the switch time
  GET  /metrics           the exposition (scraped by brigade watch and by Prometheus)
  POST /watch, POST /am   webhook receivers (brigade watch; Alertmanager)
  GET  /events            every notification received: source, status, alertname, time
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

RATE = 50.0  # requests per second of the simulated service
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5",
           "5", "7.5", "10", "+Inf"]
lock = threading.Lock()
state = {"fault": False, "ok": 0.0, "err": 0.0, "last": time.time()}
events = []


def advance():
    now = time.time()
    delta = (now - state["last"]) * RATE
    state["last"] = now
    state["err" if state["fault"] else "ok"] += delta


def filler(routes):
    """Constant series shaped like the service's histogram: evaluated, but never alerting."""
    lines = []
    for i in range(routes):
        base = f'http_request_method="GET",http_response_status_code="200",http_route="/filler/{i}"'
        for le in BUCKETS:
            lines.append(f'http_server_request_duration_seconds_bucket{{{base},le="{le}"}} 1000')
        lines.append(f"http_server_request_duration_seconds_count{{{base}}} 1000")
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, body, kind="application/json"):
        data = body.encode()
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = urlparse(self.path).path
        if path == "/metrics":
            with lock:
                advance()
                ok, err = int(state["ok"]), int(state["err"])
            route = 'http_request_method="GET",http_route="/api/v1/shops"'
            text = (
                "# TYPE http_server_request_duration_seconds histogram\n"
                f'http_server_request_duration_seconds_count{{{route},http_response_status_code="200"}} {ok}\n'
                f'http_server_request_duration_seconds_count{{{route},http_response_status_code="500"}} {err}\n'
                + FILLER
            )
            self.reply(text, "text/plain; version=0.0.4")
        elif path == "/events":
            with lock:
                self.reply(json.dumps(events))
        else:
            self.send_error(404)

    def do_POST(self):
        url = urlparse(self.path)
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length) if length else b""
        if url.path == "/fault":
            with lock:
                advance()
                state["fault"] = parse_qs(url.query).get("on", ["0"])[0] == "1"
                at = time.time()
            self.reply(json.dumps({"at": at}))
        elif url.path in ("/watch", "/am"):
            at = time.time()
            payload = json.loads(body or b"{}")
            with lock:
                for alert in payload.get("alerts", []):
                    events.append({"source": url.path[1:], "status": alert.get("status"),
                                   "alertname": alert.get("labels", {}).get("alertname"), "at": at})
            self.reply("{}")
        else:
            self.send_error(404)


if __name__ == "__main__":
    port, routes = int(sys.argv[1]), int(sys.argv[2])
    FILLER = filler(routes)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"fake listening on 127.0.0.1:{port} with {routes * 16 + 2} series", flush=True)
    server.serve_forever()

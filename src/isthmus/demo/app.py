"""A small demo HTTP service, modelled on the seed's services.

`python -m isthmus.demo.app` serves on $PORT (default 8080):
- GET /            -> JSON {service, version, pod, path}
- GET /items[/..]  -> same, for the seed's inventory paths
- GET /call/<host[:port]>/<path> -> calls http://<host>/<path> (through the mesh) and
  returns that answer inside its own, propagating x-request-id and B3 trace headers
- GET /admin/knobs?latency=S&error_rate=R -> change behaviour at runtime
Knobs also come from env: LATENCY (seconds), ERROR_RATE (0..1), SERVICE, VERSION.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PROPAGATED = (
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "traceparent",
    "x-beta-user",
)

KNOBS = {
    "latency": float(os.environ.get("LATENCY", "0")),
    "error_rate": float(os.environ.get("ERROR_RATE", "0")),
}
SERVICE = os.environ.get("SERVICE", "demo")
VERSION = os.environ.get("VERSION", "v1")
POD = os.environ.get("POD_NAME", os.environ.get("HOSTNAME", ""))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-served-by", f"{SERVICE}/{VERSION}")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/admin/knobs":
            for key, values in parse_qs(url.query).items():
                if key in KNOBS:
                    KNOBS[key] = float(values[-1])
            self._send(200, {"knobs": KNOBS})
            return
        if url.path.startswith("/call/"):
            self._call(url.path.removeprefix("/call/"))
            return
        if KNOBS["latency"]:
            time.sleep(KNOBS["latency"])
        if KNOBS["error_rate"] and random.random() < KNOBS["error_rate"]:
            body: dict[str, object] = {"service": SERVICE, "version": VERSION, "pod": POD}
            body["error"] = "injected"
            self._send(503, body)
            return
        self._send(200, {"service": SERVICE, "version": VERSION, "pod": POD, "path": url.path})

    def _call(self, target: str) -> None:
        host, _, path = target.partition("/")
        headers = {h: v for h in PROPAGATED if (v := self.headers.get(h)) is not None}
        request = urllib.request.Request(f"http://{host}/{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status, body = answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            status, body = exc.code, {"error": exc.reason}
        except (urllib.error.URLError, OSError, ValueError) as exc:
            status, body = 502, {"error": str(exc)}
        self._send(status, {"service": SERVICE, "version": VERSION, "pod": POD, "upstream": body})


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()

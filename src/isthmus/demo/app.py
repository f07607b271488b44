"""A small demo HTTP service, modelled on the seed's services.

`python -m isthmus.demo.app` serves on $PORT (default 8080):
- GET /healthz     -> 200 {"status": "UP"}, served by the worker pool like any request
- GET /admin/knobs?latency=S&error_rate=R -> change behaviour at runtime (outside the pool)
- GET /call/<host[:port]>/<path> -> calls http://<host>/<path> (through the mesh)
- GET /headers -> also lists the request headers the app received
- GET /status/<code> -> answers with that status, 200..599 but 204 and 304 (bodiless);
                      the knobs apply first
- GET /<anything>  -> with $UPSTREAM set (a caller such as order-service): calls $UPSTREAM;
                      without it (inventory-service): answers itself
Every answer is JSON {service, version, pod, path, request_id, trace_id, peer[, upstream]}
(`peer`: the x-forwarded-client-cert the sidecar passed, the caller's verified identity
under mTLS) and every call propagates x-request-id and the B3/W3C trace headers.

A caller behaves like the seed's Spring services: a bounded worker pool ($MAX_CONCURRENCY,
0 = unbounded) whose requests wait at most $QUEUE_TIMEOUT seconds for a worker (else 503),
and application-level resilience on its calls: $CALL_TIMEOUT seconds per attempt,
$CALL_ATTEMPTS attempts (defaults 2 s x 3, as in the seed). A slow upstream thus holds
workers for up to 6 s per request, the pool runs dry and even the readiness probe waits.
Knobs come from env too: LATENCY (seconds), ERROR_RATE (0..1), SERVICE, VERSION, POD_NAME.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
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
    "tracestate",
    "x-beta-user",
)

KNOBS = {
    "latency": float(os.environ.get("LATENCY", "0")),
    "error_rate": float(os.environ.get("ERROR_RATE", "0")),
}
SERVICE = os.environ.get("SERVICE", "demo")
VERSION = os.environ.get("VERSION", "v1")
POD = os.environ.get("POD_NAME", os.environ.get("HOSTNAME", ""))
UPSTREAM = os.environ.get("UPSTREAM", "")
MAX_CONCURRENCY = int(os.environ.get("MAX_CONCURRENCY", "0"))
QUEUE_TIMEOUT = float(os.environ.get("QUEUE_TIMEOUT", "3"))
CALL_TIMEOUT = float(os.environ.get("CALL_TIMEOUT", "2"))
CALL_ATTEMPTS = max(1, int(os.environ.get("CALL_ATTEMPTS", "3")))

_POOL = threading.BoundedSemaphore(MAX_CONCURRENCY) if MAX_CONCURRENCY > 0 else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately: without this, Nagle delays the body ~40 ms.
    disable_nagle_algorithm = True

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

    def _identity(self, path: str) -> dict[str, object]:
        return {
            "service": SERVICE,
            "version": VERSION,
            "pod": POD,
            "path": path,
            "request_id": self.headers.get("x-request-id", ""),
            "trace_id": self.headers.get("x-b3-traceid", ""),
            "peer": self.headers.get("x-forwarded-client-cert", ""),
        }

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/admin/knobs":
            for key, values in parse_qs(url.query).items():
                if key in KNOBS:
                    KNOBS[key] = float(values[-1])
            self._send(200, {"knobs": KNOBS})
            return
        if _POOL is not None and not _POOL.acquire(timeout=QUEUE_TIMEOUT):
            body = self._identity(url.path)
            body["error"] = f"worker pool exhausted ({MAX_CONCURRENCY} busy)"
            self._send(503, body)
            return
        try:
            self._serve(url.path)
        finally:
            if _POOL is not None:
                _POOL.release()

    def _serve(self, path: str) -> None:
        if path == "/healthz":
            self._send(200, {"status": "UP"})
            return
        if path == "/headers":  # what reached the app, e.g. that the mesh kept its own
            self._send(200, {**self._identity(path), "headers": dict(self.headers.items())})
            return
        if KNOBS["latency"]:
            time.sleep(KNOBS["latency"])
        if KNOBS["error_rate"] and random.random() < KNOBS["error_rate"]:
            body = self._identity(path)
            body["error"] = "injected"
            self._send(503, body)
            return
        if path.startswith("/status/"):
            self._send_status(path)
        elif path.startswith("/call/"):
            host, _, rest = path.removeprefix("/call/").partition("/")
            self._call(path, f"http://{host}/{rest}")
        elif UPSTREAM:
            self._call(path, UPSTREAM)
        else:
            self._send(200, self._identity(path))

    def _send_status(self, path: str) -> None:
        code = path.removeprefix("/status/")
        if not code.isdigit() or not 200 <= int(code) <= 599 or int(code) in (204, 304):
            self._send(400, {**self._identity(path), "error": f"not a status: {code}"})
            return
        self._send(int(code), self._identity(path))

    def _call(self, path: str, target: str) -> None:
        """Call `target` with the seed's application-level timeout and retries."""
        headers = {h: v for h in PROPAGATED if (v := self.headers.get(h)) is not None}
        status, upstream, attempts = 502, dict[str, object](), 0
        while attempts < CALL_ATTEMPTS:
            attempts += 1
            status, upstream = _get(target, headers)
            if status < 500:
                break
        body = self._identity(path)
        body["upstream"] = upstream
        body["attempts"] = attempts
        if status >= 500:
            body["error"] = f"upstream failed after {attempts} attempts: {upstream.get('error')}"
        self._send(status, body)


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    """One attempt; a timeout is a 504, a connection problem a 502."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as answer:
            return answer.status, _json(answer.read())
    except urllib.error.HTTPError as exc:
        body = _json(exc.read())
        body.setdefault("error", f"{exc.code} {exc.reason}")
        return exc.code, body
    except TimeoutError:
        return 504, {"error": f"timed out after {CALL_TIMEOUT:g} s"}
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return 504, {"error": f"timed out after {CALL_TIMEOUT:g} s"}
        return 502, {"error": str(exc.reason)}
    except OSError as exc:
        return 502, {"error": str(exc)}


def _json(data: bytes) -> dict[str, object]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {"error": data[:80].decode(errors="replace").strip()}
    return value if isinstance(value, dict) else {"value": value}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        """A caller that gave up (its timeout) closed the connection: nothing to report."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server = Server(("0.0.0.0", port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()

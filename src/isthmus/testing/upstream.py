"""A small HTTP/1.1 application server for tests and demos, with failure knobs.

Every answer is JSON naming the server and echoing the request's method, path and
headers, so a test can see which backend Envoy chose and what Envoy added or
rewrote. Knobs (forced status, every Nth or a random share failing, delays) can be
changed while traffic flows, which is how retries, outlier detection and timeouts
are exercised against a real Envoy.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from isthmus.testing.ports import LOOPBACK

UPSTREAM_HEADER = "x-upstream"
_IDLE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RecordedRequest:
    """What one request looked like on arrival (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass(frozen=True)
class _Answer:
    number: int
    status: int
    delay: float


class UpstreamServer:
    """A thread-per-connection HTTP/1.1 server with keep-alive; start()/stop() or `with`.

    Counters: `requests`, `requests_by_path`, `responses` (by status) and
    `connections_opened`; `recent` holds the last `history` requests.

    Knobs, read on every request: `status` forces a status for all requests;
    `fail_every` = N makes every Nth request fail with `fail_status`; `fail_rate`
    fails that share at random; `delay` seconds are slept before answering, on every
    request or, with `delay_every` = N, on every Nth.
    """

    def __init__(
        self, name: str, port: int = 0, host: str = LOOPBACK, *, history: int = 100
    ) -> None:
        self.name = name
        self.host = host
        self._port = port
        self.status: int | None = None
        self.fail_every = 0
        self.fail_rate = 0.0
        self.fail_status = 503
        self.delay = 0.0
        self.delay_every = 0
        self.requests = 0
        self.connections_opened = 0
        self.requests_by_path: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self.recent: deque[RecordedRequest] = deque(maxlen=history)
        self._lock = threading.Lock()
        self._random = random.Random()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    def __enter__(self) -> UpstreamServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"UpstreamServer(name={self.name!r}, address={self.host}:{self._port})"

    @property
    def port(self) -> int:
        """The bound port (fixed at the first start, reused by later starts)."""
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> UpstreamServer:
        """Listen and serve in a daemon thread; returns self for chaining."""
        if self._server is not None:
            return self
        server = _Server((self.host, self._port), _Handler)
        server.upstream = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"upstream-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection, as if the process died."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def reset(self) -> None:
        """Forget counters and recorded requests (knobs stay as they are)."""
        with self._lock:
            self.requests = 0
            self.connections_opened = 0
            self.requests_by_path.clear()
            self.responses.clear()
            self.recent.clear()

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self.connections_opened += 1
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _admit(self, record: RecordedRequest) -> _Answer:
        """Count the request and decide, under the lock, how to answer it."""
        with self._lock:
            self.requests += 1
            number = self.requests
            self.requests_by_path[record.path] += 1
            self.recent.append(record)
            if self.status is not None:
                status = self.status
            elif self._fails(number):
                status = self.fail_status
            else:
                status = 200
            delayed = self.delay_every <= 1 or number % self.delay_every == 0
            delay = self.delay if delayed else 0.0
            self.responses[status] += 1
        return _Answer(number=number, status=status, delay=delay)

    def _fails(self, number: int) -> bool:
        if self.fail_every > 0 and number % self.fail_every == 0:
            return True
        return self.fail_rate > 0 and self._random.random() < self.fail_rate


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    upstream: UpstreamServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_TIMEOUT_S
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this Nagle delays the body.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.upstream._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.upstream._track(self.connection, False)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read counters, not access logs."""

    def _serve(self) -> None:
        upstream = self.server.upstream
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            name = key.lower()
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        record = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=headers,
            body=self._read_body(),
            at=time.monotonic(),
        )
        answer = upstream._admit(record)
        if answer.delay > 0:
            time.sleep(answer.delay)
        document = {
            "server": upstream.name,
            "method": record.method,
            "path": record.path,
            "headers": headers,
            "status": answer.status,
            "request_number": answer.number,
            "body_bytes": len(record.body),
        }
        body = json.dumps(document).encode()
        self.send_response(answer.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header(UPSTREAM_HEADER, upstream.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # Trailers, if any, end with an empty line.
                while self.rfile.readline().strip():
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

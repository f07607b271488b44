"""Bounded HTTP load for tests and demos: a burst of N requests, or a steady trickle.

Requests go out over keep-alive `http.client` connections, one per worker thread,
which is the cheapest client Python has. A request can reach its service three
ways: straight to the URL; to another address with a chosen Host header (how an app
inside a pod reaches the sidecar's outbound listener); or through Envoy as an
explicit HTTP proxy, with the absolute URL as request target. Every request is
recorded with its status, latency and the `x-upstream` that answered.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

from isthmus.testing.upstream import UPSTREAM_HEADER

NO_RESPONSE = 0
"""The status recorded for a request that got no HTTP response at all."""

# Errors that mean a reused keep-alive connection had been closed by the peer before
# the request reached it; HTTP clients resend the request once on a new connection.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Sample:
    """One request: when it started (seconds since the load began) and how it ended."""

    started: float
    latency: float
    status: int
    upstream: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class LoadResult:
    """All samples of one load run, in start order, with the views tests ask for."""

    samples: list[Sample]
    elapsed: float
    stale_retries: int = 0

    @property
    def count(self) -> int:
        return len(self.samples)

    @cached_property
    def statuses(self) -> Counter[int]:
        """Requests per HTTP status; `NO_RESPONSE` (0) counts transport failures."""
        return Counter(sample.status for sample in self.samples)

    @cached_property
    def upstreams(self) -> Counter[str]:
        """Requests per `x-upstream` answer header (which backend served it)."""
        return Counter(sample.upstream for sample in self.samples if sample.upstream)

    @cached_property
    def errors(self) -> Counter[str]:
        return Counter(sample.error for sample in self.samples if sample.error)

    @cached_property
    def latencies(self) -> list[float]:
        return [sample.latency for sample in self.samples]

    @property
    def ok(self) -> int:
        return sum(1 for sample in self.samples if sample.ok)

    @property
    def failed(self) -> int:
        return self.count - self.ok

    @property
    def rps(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Latency at quantile `q` (0..1) in seconds, interpolated between samples."""
        if not self.samples:
            raise ValueError("no samples")
        ordered = sorted(self.latencies)
        position = min(max(q, 0.0), 1.0) * (len(ordered) - 1)
        below = int(position)
        above = min(below + 1, len(ordered) - 1)
        return ordered[below] + (ordered[above] - ordered[below]) * (position - below)

    def summary(self) -> str:
        if not self.samples:
            return "0 requests"
        return (
            f"{self.count} requests in {self.elapsed:.2f}s ({self.rps:.0f}/s), "
            f"statuses {dict(sorted(self.statuses.items()))}, "
            f"p50 {self.percentile(0.5) * 1000:.1f}ms p99 {self.percentile(0.99) * 1000:.1f}ms"
        )


@dataclass(frozen=True)
class Target:
    """Where to connect, what to put on the request line, and the Host header."""

    connect: tuple[str, int]
    request_target: str
    host: str

    @classmethod
    def of(
        cls,
        url: str,
        *,
        proxy: str | None = None,
        connect_to: tuple[str, int] | None = None,
        host_header: str | None = None,
    ) -> Target:
        """Resolve a URL and the routing options into a target.

        `proxy` ("http://127.0.0.1:15001") sends the absolute URL to that proxy;
        `connect_to` connects elsewhere but keeps origin-form paths; `host_header`
        overrides the Host header (default: the URL's host and port).
        """
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host[:port]/path URLs are supported, not {url!r}")
        host = host_header or parts.netloc
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        if proxy is not None:
            proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            if not proxy_parts.hostname:
                raise ValueError(f"proxy needs a host: {proxy!r}")
            connect = (proxy_parts.hostname, proxy_parts.port or 80)
            return cls(connect=connect, request_target=f"http://{parts.netloc}{path}", host=host)
        if connect_to is not None:
            return cls(connect=connect_to, request_target=path, host=host)
        return cls(connect=(parts.hostname, parts.port or 80), request_target=path, host=host)


@dataclass
class _Request:
    target: Target
    method: str
    headers: dict[str, str]
    body: bytes | None
    timeout: float
    retry_stale: bool


class _Client:
    """One keep-alive connection, reopened after errors."""

    def __init__(self, request: _Request, origin: float) -> None:
        self._request = request
        self._origin = origin
        self._connection: http.client.HTTPConnection | None = None
        self.stale_retries = 0

    def send(self) -> Sample:
        started = time.perf_counter()
        reused = self._connection is not None and self._connection.sock is not None
        try:
            status, upstream = self._exchange()
        except _STALE_CONNECTION as error:
            self.close()
            if not (reused and self._request.retry_stale):
                return self._failed(started, error)
            self.stale_retries += 1
            try:
                status, upstream = self._exchange()
            except (OSError, http.client.HTTPException) as retry_error:
                self.close()
                return self._failed(started, retry_error)
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return self._failed(started, error)
        return Sample(
            started=started - self._origin,
            latency=time.perf_counter() - started,
            status=status,
            upstream=upstream,
        )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _exchange(self) -> tuple[int, str | None]:
        request = self._request
        if self._connection is None:
            host, port = request.target.connect
            self._connection = http.client.HTTPConnection(host, port, timeout=request.timeout)
        self._connection.request(
            request.method, request.target.request_target, request.body, request.headers
        )
        response = self._connection.getresponse()
        response.read()
        if response.will_close:
            self.close()
        return response.status, response.getheader(UPSTREAM_HEADER)

    def _failed(self, started: float, error: BaseException) -> Sample:
        return Sample(
            started=started - self._origin,
            latency=time.perf_counter() - started,
            status=NO_RESPONSE,
            error=type(error).__name__,
        )


def _prepare(
    url: str,
    headers: Mapping[str, str] | None,
    proxy: str | None,
    connect_to: tuple[str, int] | None,
    host_header: str | None,
    method: str,
    body: bytes | None,
    timeout: float,
    retry_stale: bool,
) -> _Request:
    target = Target.of(url, proxy=proxy, connect_to=connect_to, host_header=host_header)
    merged = {"Host": target.host}
    merged.update(headers or {})
    return _Request(target, method, merged, body, timeout, retry_stale)


class KeepAliveClient:
    """One keep-alive connection that sends the same request whenever asked.

    For tests that go step by step (send, change something, send again) rather
    than in bulk; `run_requests` and `SteadyLoad` use one of these per worker.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        proxy: str | None = None,
        connect_to: tuple[str, int] | None = None,
        host_header: str | None = None,
        method: str = "GET",
        body: bytes | None = None,
        timeout: float = 5.0,
        retry_stale: bool = True,
    ) -> None:
        request = _prepare(
            url, headers, proxy, connect_to, host_header, method, body, timeout, retry_stale
        )
        self._client = _Client(request, time.perf_counter())

    def __enter__(self) -> KeepAliveClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def stale_retries(self) -> int:
        """How often a request was resent because the idle connection had been closed."""
        return self._client.stale_retries

    def send(self) -> Sample:
        return self._client.send()

    def close(self) -> None:
        self._client.close()


def run_requests(
    url: str,
    count: int,
    concurrency: int = 8,
    headers: Mapping[str, str] | None = None,
    proxy: str | None = None,
    timeout: float = 5.0,
    *,
    connect_to: tuple[str, int] | None = None,
    host_header: str | None = None,
    method: str = "GET",
    body: bytes | None = None,
    retry_stale: bool = True,
) -> LoadResult:
    """Send exactly `count` requests from `concurrency` keep-alive connections."""
    if count < 0 or concurrency < 1:
        raise ValueError("count must be >= 0 and concurrency >= 1")
    request = _prepare(
        url, headers, proxy, connect_to, host_header, method, body, timeout, retry_stale
    )
    origin = time.perf_counter()
    tickets = _Tickets(count)
    clients = [_Client(request, origin) for _ in range(min(concurrency, max(count, 1)))]
    results: list[list[Sample]] = [[] for _ in clients]

    def work(client: _Client, out: list[Sample]) -> None:
        try:
            while tickets.take() is not None:
                out.append(client.send())
        finally:
            client.close()

    threads = [
        threading.Thread(target=work, args=(client, out), name=f"load-{index}", daemon=True)
        for index, (client, out) in enumerate(zip(clients, results, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples = sorted((s for out in results for s in out), key=lambda s: s.started)
    return LoadResult(
        samples=samples,
        elapsed=time.perf_counter() - origin,
        stale_retries=sum(client.stale_retries for client in clients),
    )


class _Tickets:
    """Hands out request numbers 0..limit-1 to worker threads."""

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self._limit is not None and self._next >= self._limit:
                return None
            number = self._next
            self._next += 1
            return number


@dataclass
class SteadyLoad:
    """Requests at a fixed rate in the background until stopped or a bound is hit.

    Used to show that a change under traffic fails nothing: start it, change the
    mesh, stop it, and inspect `LoadResult.statuses`. `max_duration` and `max_count`
    bound it even if the test never calls `stop()`.
    """

    url: str
    rate: float = 50.0
    max_duration: float = 30.0
    max_count: int = 10_000
    workers: int = 2
    headers: Mapping[str, str] | None = None
    proxy: str | None = None
    connect_to: tuple[str, int] | None = None
    host_header: str | None = None
    timeout: float = 5.0
    method: str = "GET"
    retry_stale: bool = True
    _threads: list[threading.Thread] = field(default_factory=list, init=False, repr=False)
    _clients: list[_Client] = field(default_factory=list, init=False, repr=False)
    _samples: list[Sample] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _origin: float = field(default=0.0, init=False, repr=False)
    _ended: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.workers < 1:
            raise ValueError("rate must be > 0 and workers >= 1")

    def __enter__(self) -> SteadyLoad:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def sent(self) -> int:
        with self._lock:
            return len(self._samples)

    def start(self) -> SteadyLoad:
        if self._threads:
            raise RuntimeError("SteadyLoad already started")
        request = _prepare(
            self.url,
            self.headers,
            self.proxy,
            self.connect_to,
            self.host_header,
            self.method,
            None,
            self.timeout,
            self.retry_stale,
        )
        self._origin = time.perf_counter()
        tickets = _Tickets(self.max_count)
        for index in range(self.workers):
            client = _Client(request, self._origin)
            thread = threading.Thread(
                target=self._work, args=(client, tickets), name=f"steady-{index}", daemon=True
            )
            self._clients.append(client)
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the bounds to end the load; True if it has ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            thread.join(remaining)
        return not any(thread.is_alive() for thread in self._threads)

    def snapshot(self) -> LoadResult:
        """What has been recorded so far, while the load keeps running."""
        with self._lock:
            samples = sorted(self._samples, key=lambda s: s.started)
        end = self._ended if self._ended is not None else time.perf_counter()
        return LoadResult(
            samples=samples,
            elapsed=end - self._origin,
            stale_retries=sum(client.stale_retries for client in self._clients),
        )

    def stop(self) -> LoadResult:
        """Stop sending (requests in flight finish) and return everything recorded."""
        self._stopping.set()
        for thread in self._threads:
            thread.join()
        if self._ended is None:
            self._ended = time.perf_counter()
        return self.snapshot()

    def _work(self, client: _Client, tickets: _Tickets) -> None:
        try:
            while not self._stopping.is_set():
                number = tickets.take()
                if number is None:
                    return
                due = number / self.rate
                if due > self.max_duration:
                    return
                wait = self._origin + due - time.perf_counter()
                if wait > 0 and self._stopping.wait(wait):
                    return
                sample = client.send()
                with self._lock:
                    self._samples.append(sample)
        finally:
            client.close()

"""A small load generator to run inside a pod: `python -m isthmus.demo.load URL [URL ...]`.

Keep-alive connections, one per worker thread, bounded by count and duration; requests
take the URLs in turn. Closed loop by default (each worker sends its next request when
the last one is answered); with --rate it is open loop, as real traffic is: request i is
due at i/rate seconds and its latency counts from then, so a slow service also pays for
the requests that queued behind it. Prints a JSON summary: statuses, which version/pod
answered (x-served-by header and body), what the callee called (`upstream_*`), whether
x-request-id and x-b3-traceid reached the callee's upstream, error reasons, latency
percentiles and, per URL, the same in short. Used by `isthmus demo` and the e2e tests.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Result:
    url: str
    status: int
    served: str  # "<service>/<version> <pod>"
    latency: float
    finished: float  # wall clock (time.time())
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """Tickets shared by the workers: which request is next and when it is due."""

    urls: list[str]
    count: int
    deadline: float
    rate: float
    started: float = field(default_factory=time.monotonic)
    issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> tuple[str, float] | None:
        with self.lock:
            if self.issued >= self.count:
                return None
            due = self.started + self.issued / self.rate if self.rate else time.monotonic()
            if due >= self.deadline:
                return None
            url = self.urls[self.issued % len(self.urls)]
            self.issued += 1
            return url, due


class Connections:
    """One keep-alive connection per host:port for one worker."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.open: dict[str, http.client.HTTPConnection] = {}

    def get(self, netloc: str) -> http.client.HTTPConnection:
        conn = self.open.get(netloc)
        if conn is None:
            parts = urlsplit(f"http://{netloc}")
            conn = http.client.HTTPConnection(
                parts.hostname or "", parts.port or 80, timeout=self.timeout
            )
            self.open[netloc] = conn
        return conn

    def drop(self, netloc: str) -> None:
        conn = self.open.pop(netloc, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for netloc in list(self.open):
            self.drop(netloc)


def _one(conns: Connections, url: str, headers: dict[str, str]) -> tuple[int, str, dict[str, Any]]:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn = conns.get(parts.netloc)
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        served = response.getheader("x-served-by") or ""
        if response.getheader("connection", "").lower() == "close":
            conns.drop(parts.netloc)
    except (OSError, http.client.HTTPException) as exc:
        conns.drop(parts.netloc)
        return 0, "", {"error": f"client: {type(exc).__name__}"}
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"error": raw[:60].decode(errors="replace").strip()}
    if not isinstance(body, dict):
        body = {}
    if body.get("pod"):
        served = f"{served} {body['pod']}".strip()
    return response.status, served, body


def _worker(plan: Plan, headers: dict[str, str], timeout: float, out: list[Result]) -> None:
    conns = Connections(timeout)
    while (ticket := plan.next()) is not None:
        url, due = ticket
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        status, served, body = _one(conns, url, headers)
        now = time.monotonic()
        out.append(Result(url, status, served, now - min(due, now), time.time(), body))
    conns.close()


def _pct(latencies: list[float], q: float) -> float:
    return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0


def _reason(result: Result) -> str:
    error = result.body.get("error")
    return str(error) if error else f"HTTP {result.status}"


def summarize(results: list[Result]) -> dict[str, Any]:
    """The JSON summary (keys count, statuses, versions, pods, p50, p99, max are stable)."""
    latencies = sorted(r.latency for r in results)
    upstreams = [r.body["upstream"] for r in results if isinstance(r.body.get("upstream"), dict)]
    served = [u for u in upstreams if u.get("service")]
    first_seen: dict[str, float] = {}
    last_seen: dict[str, float] = {}
    for r in results:
        version = r.served.split(" ")[0]
        if r.status == 200 and version:
            first_seen[version] = min(first_seen.get(version, r.finished), r.finished)
            last_seen[version] = max(last_seen.get(version, 0.0), r.finished)
    by_url: dict[str, list[Result]] = {}
    for r in results:
        by_url.setdefault(r.url, []).append(r)
    return {
        "count": len(results),
        "statuses": dict(Counter(str(r.status) for r in results)),
        "versions": dict(Counter(r.served.split(" ")[0] for r in results if r.served)),
        "pods": dict(Counter(r.served.split(" ")[-1] for r in results if " " in r.served)),
        "p50": _pct(latencies, 0.5),
        "p99": _pct(latencies, 0.99),
        "max": latencies[-1] if latencies else 0.0,
        "upstream_versions": dict(Counter(f"{u['service']}/{u['version']}" for u in served)),
        "upstream_pods": dict(Counter(str(u.get("pod", "")) for u in served)),
        "propagated": {
            "x-request-id": sum(
                1
                for r in results
                if r.body.get("request_id")
                and r.body.get("request_id") == (r.body.get("upstream") or {}).get("request_id")
            ),
            "x-b3-traceid": sum(
                1
                for r in results
                if r.body.get("trace_id")
                and r.body.get("trace_id") == (r.body.get("upstream") or {}).get("trace_id")
            ),
        },
        "reasons": dict(Counter(_reason(r) for r in results if r.status != 200)),
        "first_seen": first_seen,
        "last_seen": last_seen,
        "urls": {
            url: {
                "count": len(rs),
                "statuses": dict(Counter(str(r.status) for r in rs)),
                "p50": _pct(sorted(r.latency for r in rs), 0.5),
                "p99": _pct(sorted(r.latency for r in rs), 0.99),
            }
            for url, rs in by_url.items()
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="isthmus.demo.load")
    parser.add_argument("urls", nargs="+", metavar="URL")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads")
    parser.add_argument("--duration", type=float, default=60.0, help="upper bound in seconds")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: requests per second")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--header", action="append", default=[], help="name:value")
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    plan = Plan(args.urls, args.count, time.monotonic() + args.duration, args.rate)
    out: list[Result] = []
    threads = [
        threading.Thread(target=_worker, args=(plan, headers, args.timeout, out))
        for _ in range(args.concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(summarize(out)))


if __name__ == "__main__":
    main()

"""A small load generator to run inside a pod: `python -m isthmus.demo.load URL ...`.

Keep-alive connections, one per worker thread, bounded by count and duration. Prints a
JSON summary: statuses, which version/pod answered (x-served-by header and body), and
latency percentiles. Used by the demo and the e2e tests.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


def _worker(
    url: str,
    headers: dict[str, str],
    deadline: float,
    tickets: list[int],
    lock: threading.Lock,
    out: list[tuple[int, str, float]],
    timeout: float,
) -> None:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < deadline:
        with lock:
            if tickets[0] <= 0:
                break
            tickets[0] -= 1
        started = time.monotonic()
        status, served = 0, ""
        try:
            if conn is None:
                conn = http.client.HTTPConnection(
                    parts.hostname or "", parts.port or 80, timeout=timeout
                )
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            status = response.status
            served = response.getheader("x-served-by") or ""
            try:
                pod = json.loads(body).get("pod", "")
                served = f"{served} {pod}".strip()
            except ValueError:
                pass
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
        out.append((status, served, time.monotonic() - started))
    if conn is not None:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="isthmus.demo.load")
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=60.0, help="upper bound in seconds")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--header", action="append", default=[], help="name:value")
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    deadline = time.monotonic() + args.duration
    tickets, lock = [args.count], threading.Lock()
    out: list[tuple[int, str, float]] = []
    threads = [
        threading.Thread(
            target=_worker, args=(args.url, headers, deadline, tickets, lock, out, args.timeout)
        )
        for _ in range(args.concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies = sorted(t for _, _, t in out)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    summary = {
        "count": len(out),
        "statuses": dict(Counter(str(s) for s, _, _ in out)),
        "versions": dict(Counter(v.split(" ")[0] for _, v, _ in out if v)),
        "pods": dict(Counter(v.split(" ")[-1] for _, v, _ in out if " " in v)),
        "p50": pct(0.5),
        "p99": pct(0.99),
        "max": latencies[-1] if latencies else 0.0,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

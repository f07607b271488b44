"""Does a large apply stall isthmusd? /v1/healthz latency while idle and while applying.

    .venv/bin/python bench/apply_stall.py

Starts a real isthmusd (control plane only, `python -m isthmus.daemon`) on a temporary
home under /tmp and polls GET /v1/healthz every `--interval` (20 ms) from its own thread
and connection, recording each answer's latency:

1. idle, for `--idle` seconds;
2. during an apply of the largest document isthmusd accepts: one VirtualService of just
   under `yamlstream.MAX_INPUT_BYTES` (4 MiB) with `--routes` http routes (name, uri
   prefix and header match, weighted destination) and as many hosts as fill the rest
   (YAML nodes stay under `yamlstream.MAX_NODES`). Applied twice: created, then
   configured (one route changed), each timed from request to answer;
3. `--burst` such applies sent at once (each a different object): how many were
   accepted and how many answered 429 busy, with health latency meanwhile.

With `--proxies N`, N real sidecar Envoys (`isthmus.testing.daemon.start_sidecar`) are
connected, and after each apply a "push" phase lasts until every one of them is synced
again: isthmusd re-parses and re-translates the mesh with the large document in it (in
its worker thread) while the event loop must keep answering.

Latencies are nearest-rank percentiles over every poll of the phase. A poll that overlaps
the end of a phase counts in the phase it started in. Prints numbers only; a refused
apply (other than 429 in the burst) ends the run with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from isthmus.api.yamlstream import MAX_INPUT_BYTES, MAX_NODES
from isthmus.testing.daemon import DaemonProcess, start_sidecar, wait_for
from isthmus.testing.envoy import EnvoyProcess
from isthmus.testing.ports import free_port

HOST_SUFFIX = ".bench.svc.cluster.local"


def big_virtual_service(name: str, routes: int, target_bytes: int, variant: int = 0) -> str:
    """A VirtualService of at most `target_bytes` UTF-8 bytes: `routes` http routes, then
    hosts until the size is reached."""
    head = (
        "apiVersion: networking.istio.io/v1\n"
        "kind: VirtualService\n"
        f"metadata: {{name: {name}, namespace: bench}}\n"
        "spec:\n"
    )
    http = ["  http:\n"]
    for i in range(routes):
        prefix = f"/api/v{variant}/r{i:06d}/" if i == 0 else f"/api/r{i:06d}/"
        http.append(
            f"  - name: r{i:06d}\n"
            f"    match:\n"
            f"    - uri: {{prefix: {prefix}}}\n"
            f"      headers:\n"
            f"        x-tenant: {{exact: tenant-{i:06d}}}\n"
            f"    route:\n"
            f"    - destination: {{host: h{i:06d}{HOST_SUFFIX}, port: {{number: 8080}}}}\n"
            f"      weight: 100\n"
        )
    http_text = "".join(http)
    budget = target_bytes - len(head) - len(http_text) - len("  hosts:\n")
    hosts = []
    i = 0
    while True:
        line = f"  - h{i:06d}{HOST_SUFFIX}\n"
        if budget < len(line):
            break
        hosts.append(line)
        budget -= len(line)
        i += 1
    return head + "  hosts:\n" + "".join(hosts) + http_text


def yaml_nodes(text: str) -> int:
    """YAML nodes of the document (what MAX_NODES limits): keys, values, collections."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    stack = [yaml.compose(text, Loader=loader)]
    count = 0
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return count


@dataclass
class Polls:
    """Health latencies per phase, filled by the poller thread."""

    phase: str = "idle"
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)


class Poller:
    """GET /v1/healthz every `interval` seconds on its own connection and thread."""

    def __init__(self, socket: Path, interval: float) -> None:
        self.interval = interval
        self.polls = Polls()
        self._stop = threading.Event()
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://isthmusd", timeout=30
        )
        self._thread = threading.Thread(target=self._run, name="healthz-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(35)
        self._http.close()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.polls.phase = name
        try:
            yield
        finally:
            self.polls.phase = "between"

    def _run(self) -> None:
        polls = self.polls
        while not self._stop.is_set():
            phase = polls.phase
            started = time.perf_counter()
            try:
                ok = self._http.get("/v1/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            latency = time.perf_counter() - started
            if ok:
                polls.latencies.setdefault(phase, []).append(latency)
            else:
                polls.failures[phase] = polls.failures.get(phase, 0) + 1
            self._stop.wait(max(0.0, self.interval - latency))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def apply(http: httpx.Client, body: bytes) -> tuple[int, float, dict[str, object]]:
    started = time.perf_counter()
    response = http.post("/v1/apply", content=body, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    return response.status_code, elapsed, response.json()


def push_settled(http: httpx.Client, count: int, before: dict[str, object]) -> bool:
    """Every proxy connected, synced, and sent something since `before` was taken."""
    proxies = http.get("/v1/proxies").json()["proxies"]
    return len(proxies) == count and all(
        p["synced"] and p["types"] != before.get(p["node_id"]) for p in proxies
    )


def proxy_types(http: httpx.Client) -> dict[str, object]:
    return {p["node_id"]: p["types"] for p in http.get("/v1/proxies").json()["proxies"]}


def request_body(text: str) -> bytes:
    return json.dumps({"documents": [{"source": "big.yaml", "text": text}]}).encode()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--routes", type=int, default=2000, help="http routes in the document")
    p.add_argument("--interval", type=float, default=0.02, help="health poll interval, s")
    p.add_argument("--idle", type=float, default=3.0, help="idle measuring time, s")
    p.add_argument("--burst", type=int, default=12, help="large applies sent at once (0: skip)")
    p.add_argument("--proxies", type=int, default=0, help="real sidecar Envoys to connect")
    p.add_argument("--keep-home", action="store_true")
    args = p.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="isx-stall-", dir="/tmp"))
    target = MAX_INPUT_BYTES - 1024
    texts = [big_virtual_service("big", args.routes, target, variant=v) for v in (0, 1)]
    size = len(texts[0].encode())
    print(
        f"document: VirtualService, {size:,} bytes (limit {MAX_INPUT_BYTES:,}), "
        f"{args.routes} http routes, {texts[0].count(HOST_SUFFIX) - args.routes} hosts, "
        f"{yaml_nodes(texts[0]):,} YAML nodes (limit {MAX_NODES:,})"
    )
    bodies = [request_body(t) for t in texts]
    daemon = DaemonProcess(root / "home").start()
    poller = Poller(daemon.socket, args.interval)
    http = httpx.Client(
        transport=httpx.HTTPTransport(uds=str(daemon.socket)),
        base_url="http://isthmusd",
        timeout=120,
    )
    rows: list[tuple[str, str]] = []
    envoys: list[EnvoyProcess] = []
    try:
        for i in range(args.proxies):
            envoy = start_sidecar(
                daemon,
                root / f"envoy{i}",
                pod=f"client-{i}",
                namespace="bench",
                http_proxy_port=free_port(),
                labels={"app": "client"},
            )
            envoys.append(envoy)
            envoy.wait_ready(timeout=30)
        if envoys:  # the document's first host is a Service: its routes change with it
            daemon.apply(
                "apiVersion: v1\nkind: Service\nmetadata: {name: h000000, namespace: bench}\n"
                "spec: {selector: {app: h0}, ports: [{name: http, port: 8080}]}\n"
            )
        poller.start()
        with poller.phase("idle"):
            time.sleep(args.idle)
        for label, body, expect in (
            ("apply 1", bodies[0], "created"),
            ("apply 2", bodies[1], "configured"),
        ):
            before = proxy_types(http)
            with poller.phase(label):
                status, elapsed, answer = apply(http, body)
            if envoys:
                pushed = time.perf_counter()
                with poller.phase(f"{label} push"):
                    wait_for(lambda b=before: push_settled(http, len(envoys), b), timeout=300)
                rows.append(
                    (f"{label} push", f"{(time.perf_counter() - pushed) * 1000:.0f} ms to ACK")
                )
            results = answer.get("results")
            verdict = results[0]["result"] if isinstance(results, list) and results else None
            if status != 200 or verdict != expect:
                print(f"{label}: refused ({status}): {answer}", file=sys.stderr)
                return 1
            rows.append((label, f"{elapsed * 1000:.0f} ms, {verdict}"))
        if args.burst:
            burst_bodies = [
                request_body(big_virtual_service(f"burst{i}", args.routes, target))
                for i in range(args.burst)
            ]
            with poller.phase("burst"), ThreadPoolExecutor(args.burst) as pool:
                started = time.perf_counter()
                outcomes = list(pool.map(lambda b: apply(http, b), burst_bodies))
                elapsed = time.perf_counter() - started
            counts: dict[int, int] = {}
            for status, _, _ in outcomes:
                counts[status] = counts.get(status, 0) + 1
            if set(counts) - {200, 429}:
                print(f"burst: unexpected answers {counts}", file=sys.stderr)
                return 1
            rows.append(
                (
                    f"burst of {args.burst}",
                    f"{counts.get(200, 0)} applied, {counts.get(429, 0)} busy (429), "
                    f"{elapsed * 1000:.0f} ms in all",
                )
            )
    finally:
        poller.stop()
        http.close()
        for envoy in envoys:
            envoy.stop()
        daemon.stop()
        if args.keep_home:
            print(f"home kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"{'phase':<14} {'polls':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'failed':>6}")
    for phase in ("idle", "apply 1", "apply 1 push", "apply 2", "apply 2 push", "burst"):
        values = poller.polls.latencies.get(phase, [])
        if not values:
            continue
        print(
            f"{phase:<14} {len(values):>5} {percentile(values, 50) * 1000:>8.1f} "
            f"{percentile(values, 99) * 1000:>8.1f} {max(values) * 1000:>8.1f} "
            f"{poller.polls.failures.get(phase, 0):>6}"
        )
    print()
    for label, text in rows:
        print(f"{label}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

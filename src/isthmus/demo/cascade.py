"""The seed's Black Friday: one slow inventory pod and the callers that depend on it.

A storm is open-loop traffic (real users do not slow down when a service does) from a
load generator inside order-service's pod to order-, cart- and search-service, which all
call inventory-service. While it runs, a watcher polls the runtime's pods to see the
callers' readiness: a caller whose worker pool is exhausted fails its readiness probe,
leaves its Service's endpoints and is down for everyone, as in the seed's cascade.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from isthmus.demo.driver import DemoError, MeshDriver
from isthmus.demo.manifests import CALLER_PATHS, CALLERS, NAMESPACE

INVENTORY_V1_CLUSTER = "outbound|8080|v1|inventory-service.production.svc.cluster.local"
CLIENT_TIMEOUT = 10  # seconds a user waits before giving up
ENVOY_COUNTERS = {
    "per_try_timeouts": "upstream_rq_per_try_timeout",
    "retries": "upstream_rq_retry",
    "ejections": "outlier_detection.ejections_enforced_total",
    "pending_overflows": "upstream_rq_pending_overflow",
}


@dataclass
class ReadinessWatch:
    """Polls the callers' readiness in a thread: when each first went not ready."""

    driver: MeshDriver
    started: float = field(default_factory=time.monotonic)
    not_ready_after: dict[str, float] = field(default_factory=dict)
    not_ready_seconds: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ReadinessWatch:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        last = 0.0
        while not self._stop.wait(0.2):
            try:
                pods = self.driver.pods(NAMESPACE)
            except DemoError:  # the daemon did not answer in time: try again next tick
                continue
            now = time.monotonic() - self.started
            for pod in pods:
                caller = pod["deployment"]
                if caller in CALLERS and not pod["ready"]:
                    self.not_ready_after.setdefault(caller, now)
                    seconds = self.not_ready_seconds.get(caller, 0.0) + now - last
                    self.not_ready_seconds[caller] = seconds
            last = now

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def caller_urls() -> list[str]:
    return [f"http://{name}:8080{CALLER_PATHS[name]}" for name in CALLERS]


def storm(
    driver: MeshDriver, client: dict[str, Any], seconds: float, rate: float
) -> dict[str, Any]:
    """Open-loop load on the callers; returns the load summary plus per-caller readiness."""
    argv = driver.load_argv(
        caller_urls(),
        "--rate",
        str(rate),
        "--duration",
        str(seconds),
        "--count",
        str(int(rate * seconds) + 1),
        "--concurrency",
        str(int(rate * CLIENT_TIMEOUT) + 10),  # open loop: enough workers for every waiter
        "--timeout",
        str(CLIENT_TIMEOUT),
    )
    watch = ReadinessWatch(driver).start()
    try:
        result = driver.finish(driver.exec_background(client, argv), timeout=seconds + 60)
    finally:
        watch.stop()
    callers: dict[str, Any] = {}
    for name, url in zip(CALLERS, caller_urls(), strict=True):
        stats = result["urls"].get(url, {"count": 0, "statuses": {}, "p50": 0.0, "p99": 0.0})
        ok = stats["statuses"].get("200", 0)
        callers[name] = {
            "requests": stats["count"],
            "ok": ok,
            "failed": stats["count"] - ok,
            "p50": round(stats["p50"], 3),
            "p99": round(stats["p99"], 3),
            "not_ready_after": _round(watch.not_ready_after.get(name)),
            "not_ready_seconds": _round(watch.not_ready_seconds.get(name)),
        }
    ok = result["statuses"].get("200", 0)
    return {
        "seconds": seconds,
        "rate": rate,
        "requests": result["count"],
        "ok": ok,
        "failed": result["count"] - ok,
        "p50": round(result["p50"], 3),
        "p99": round(result["p99"], 3),
        "callers": callers,
        "reasons": result["reasons"],
        "inventory_pods": result["upstream_pods"],
    }


def caller_envoy_counters(driver: MeshDriver, pods: list[dict[str, Any]]) -> dict[str, int]:
    """The callers' Envoys' counters for the inventory v1 subset cluster, summed."""
    escaped = INVENTORY_V1_CLUSTER.replace("|", r"\|").replace(".", r"\.")
    names = "|".join(v.replace(".", r"\.") for v in ENVOY_COUNTERS.values())
    pattern = rf"^cluster\.{escaped}\.({names})$"
    totals = dict.fromkeys(ENVOY_COUNTERS, 0)
    for stats in driver.envoy_stats(pods, pattern):
        for key, suffix in ENVOY_COUNTERS.items():
            totals[key] += stats.get(f"cluster.{INVENTORY_V1_CLUSTER}.{suffix}", 0)
    return totals


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

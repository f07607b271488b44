"""The seed's failure scenarios, through real sidecars in real namespaces.

A slow or failing inventory pod must not take its callers down: a killed pod is restarted
in place and retried around, a pod answering 503 is ejected, a slow pod behind a route
timeout gives timely 504s, a full connection pool answers 503 at once, and a pod that is
stopped leaves the endpoints before it stops serving.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import (
    PYTHON,
    E2EMesh,
    app_pid,
    apply_in_effect,
    demo_deployment,
    service,
    start_load,
    success_ratio,
    wait_until,
)

pytestmark = pytest.mark.root

INVENTORY = "inventory-service.production.svc.cluster.local"
CLUSTER = f"cluster.outbound|8080||{INVENTORY}"
ITEMS = "http://inventory-service:8080/items"
REPLICAS = 3
# Each inventory request takes 10 ms: bounds the load to a couple of hundred requests per
# second on a shared machine, and keeps requests in flight when a pod goes away.
SERVICE_TIME = "0.01"


def inventory(replicas: int) -> str:
    return demo_deployment(
        "inventory", "inventory-service", replicas, env={"LATENCY": SERVICE_TIME}
    )


def rules(traffic_policy: str, route: str) -> str:
    """inventory-service's DestinationRule and VirtualService (one default route)."""
    return f"""
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {{name: inventory-service, namespace: production}}
spec:
  host: inventory-service
  trafficPolicy:
{traffic_policy}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {{name: inventory-service, namespace: production}}
spec:
  hosts: [inventory-service]
  http:
  - route:
    - destination: {{host: inventory-service}}
{route}
"""


@pytest.fixture(scope="module")
def shop(mesh: E2EMesh) -> E2EMesh:
    mesh.apply(
        service("inventory-service")
        + service("order-service")
        + inventory(REPLICAS)
        # order-service leaves timeouts and retries to the mesh: one attempt per call.
        + demo_deployment("order-service", "order-service", 1, env={"CALL_ATTEMPTS": "1"})
    )
    mesh.wait_pods({"inventory": REPLICAS, "order-service": 1})
    return mesh


def set_knobs(mesh: E2EMesh, pod: dict[str, Any], **knobs: float) -> None:
    """Change the demo app's behaviour from inside its pod (loopback, no sidecar)."""
    query = "&".join(f"{k}={v}" for k, v in knobs.items())
    script = (
        "import urllib.request;"
        f"urllib.request.urlopen('http://127.0.0.1:8080/admin/knobs?{query}', timeout=5).read()"
    )
    mesh.exec(pod, PYTHON, "-c", script)


def inventory_pods(mesh: E2EMesh) -> list[dict[str, Any]]:
    return sorted(
        (p for p in mesh.pods() if p["deployment"] == "inventory" and p["ready"]),
        key=lambda p: str(p["name"]),
    )


@pytest.fixture
def knobs_reset(shop: E2EMesh) -> Iterator[Callable[[dict[str, Any], float, float], None]]:
    """Set knobs on pods; every pod touched is back to normal after the test."""
    touched: dict[str, dict[str, Any]] = {}

    def set_pod(pod: dict[str, Any], latency: float, error_rate: float) -> None:
        touched[pod["name"]] = pod
        set_knobs(shop, pod, latency=latency, error_rate=error_rate)

    yield set_pod
    for pod in touched.values():
        set_knobs(shop, pod, latency=float(SERVICE_TIME), error_rate=0)


def _restarts(mesh: E2EMesh, name: str) -> int:
    found = [p for p in mesh.pods() if p["name"] == name]
    return int(found[0]["restarts"]) if found else -1


def _ready(mesh: E2EMesh, name: str) -> bool:
    return any(p["name"] == name and p["ready"] for p in mesh.pods())


def test_sigkilled_app_restarts_in_place_and_callers_do_not_notice(shop: E2EMesh) -> None:
    apply_in_effect(
        shop,
        rules(
            "    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, "
            "baseEjectionTime: 5s, maxEjectionPercent: 50}",
            "    retries: {attempts: 3, perTryTimeout: 1s, retryOn: '5xx,reset,connect-failure'}",
        ),
    )
    order = shop.pod("order-service")
    victim = inventory_pods(shop)[0]
    assert victim["restarts"] == 0
    load = start_load(
        shop, order, ITEMS, "--count", "100000", "--duration", "16", "--concurrency", "2"
    )
    try:
        for kill in (1, 2):  # an app that keeps dying is restarted each time
            time.sleep(3)
            os.kill(app_pid(victim), signal.SIGKILL)
            wait_until(lambda n=kill: _restarts(shop, victim["name"]) >= n, 10, f"restart {kill}")
            wait_until(lambda: _ready(shop, victim["name"]), 15, "the restarted pod ready")
    finally:
        summary = load.result()
    print(f"\nSIGKILL x2 under load: {summary}")
    assert success_ratio(summary) >= 0.999, summary
    assert summary["count"] >= 500, summary
    # Restarted in place: same pod, same namespace, serving again.
    assert victim["name"] in summary["pods"]
    assert {p["name"] for p in inventory_pods(shop)} >= {victim["name"]}

    # Serving again once outlier detection lets it back (a second ejection lasts 10 s).
    def serves_victim() -> bool:
        after = shop.load(order, ITEMS, "--count", "60")
        assert after["statuses"] == {"200": 60}, after
        return victim["name"] in after["pods"]

    wait_until(serves_victim, 30, "the restarted pod to serve again")


def test_pod_answering_503_is_ejected(
    shop: E2EMesh, knobs_reset: Callable[[dict[str, Any], float, float], None]
) -> None:
    apply_in_effect(
        shop,
        rules(
            "    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, "
            "baseEjectionTime: 60s, maxEjectionPercent: 100}",
            "    retries: {attempts: 0}",  # let the caller see what the pod answers
        ),
    )
    order = shop.pod("order-service")
    broken = inventory_pods(shop)[-1]
    ejected_before = shop.envoy_stat(order, f"{CLUSTER}.outlier_detection.ejections_enforced_total")
    knobs_reset(broken, float(SERVICE_TIME), 1.0)

    first = shop.load(order, ITEMS, "--count", "150", "--concurrency", "2")
    then = shop.load(order, ITEMS, "--count", "300", "--concurrency", "2")
    ejected = shop.envoy_stat(order, f"{CLUSTER}.outlier_detection.ejections_enforced_total")
    print(f"\nbefore ejection: {first}\nafter: {then}\nejections {ejected_before}->{ejected}")
    # Two consecutive 503s eject the pod (a request or two more may have been in flight).
    assert 2 <= first["statuses"].get("503", 0) <= 6, first
    assert then["statuses"] == {"200": 300}, then
    assert broken["name"] not in then["pods"], then
    assert ejected > ejected_before


def test_slow_pod_behind_route_timeout_gives_timely_504s(
    shop: E2EMesh, knobs_reset: Callable[[dict[str, Any], float, float], None]
) -> None:
    apply_in_effect(
        shop,
        rules(
            "    loadBalancer: {simple: ROUND_ROBIN}",
            "    timeout: 500ms\n    retries: {attempts: 0}",
        ),
    )
    order = shop.pod("order-service")
    for pod in inventory_pods(shop):
        knobs_reset(pod, 4.0, 0.0)  # the seed's p99 during the incident

    # order-service calls inventory through its sidecar; the caller of order-service
    # gets order-service's answer, and order-service's own paths keep answering.
    slow = start_load(
        shop,
        order,
        "http://order-service:8080/call/inventory-service:8080/items",
        "--count",
        "100000",
        "--duration",
        "6",
        "--concurrency",
        "4",
    )
    try:
        time.sleep(1.5)
        fast = shop.load(
            order, "http://order-service:8080/", "--count", "100", "--concurrency", "1"
        )
    finally:
        timed_out = slow.result()
    print(f"\nslow inventory, 500ms route timeout: {timed_out}\norder-service /: {fast}")
    assert set(timed_out["statuses"]) == {"504"}, timed_out
    assert timed_out["count"] >= 20, timed_out  # 4 callers, 6 s, ~0.5 s each
    assert 0.45 <= timed_out["p50"] <= 1.0, timed_out
    assert timed_out["max"] <= 1.5, timed_out
    assert fast["statuses"] == {"200": 100}, fast
    assert fast["p99"] < 0.5, fast


def test_pending_overflow_answers_503_at_once(
    shop: E2EMesh, knobs_reset: Callable[[dict[str, Any], float, float], None]
) -> None:
    apply_in_effect(
        shop,
        rules(
            "    connectionPool:\n"
            "      tcp: {maxConnections: 1}\n"
            "      http: {http1MaxPendingRequests: 1}",
            "    retries: {attempts: 0}",
        ),
    )
    order = shop.pod("order-service")
    for pod in inventory_pods(shop):
        knobs_reset(pod, 1.0, 0.0)
    overflow_before = shop.envoy_stat(order, f"{CLUSTER}.upstream_rq_pending_overflow")

    result = shop.load(order, ITEMS, "--count", "80", "--concurrency", "8")
    overflow = shop.envoy_stat(order, f"{CLUSTER}.upstream_rq_pending_overflow")
    print(f"\n1 connection, 1 pending, 8 callers: {result}\noverflow {overflow_before}->{overflow}")
    assert result["statuses"].get("200", 0) >= 1, result
    assert result["statuses"].get("503", 0) >= 60, result
    assert set(result["statuses"]) <= {"200", "503"}, result
    assert result["p50"] < 0.2, result  # rejected at once, not queued behind the slow pod
    assert overflow - overflow_before >= 60


def test_graceful_pod_stop_fails_no_request(shop: E2EMesh) -> None:
    apply_in_effect(shop, rules("    loadBalancer: {simple: ROUND_ROBIN}", ""))
    order = shop.pod("order-service")
    before = {p["name"] for p in inventory_pods(shop)}
    load = start_load(
        shop, order, ITEMS, "--count", "100000", "--duration", "10", "--concurrency", "2"
    )
    try:
        time.sleep(2)
        shop.apply(inventory(REPLICAS - 1))  # scale down: one pod is stopped gracefully
        shop.wait_pods({"inventory": REPLICAS - 1, "order-service": 1}, timeout=30)
    finally:
        summary = load.result()
    print(f"\nscale {REPLICAS}->{REPLICAS - 1} under load: {summary}")
    remaining = {p["name"] for p in inventory_pods(shop)}
    assert len(before - remaining) == 1 and remaining < before
    assert summary["count"] >= 300, summary
    assert summary["statuses"] == {"200": summary["count"]}, summary

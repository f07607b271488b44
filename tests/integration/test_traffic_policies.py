"""Istio traffic policy over real HTTP through a real Envoy configured by isthmusd.

Each test registers its own service (own name), so tests share one daemon and one sidecar.
"""

from __future__ import annotations

import time

import pytest

from isthmus.demo.seed import SEED_YAML
from isthmus.testing.daemon import wait_for
from isthmus.testing.load import SteadyLoad
from isthmus.testing.mesh import NAMESPACE, Mesh

pytestmark = pytest.mark.envoy

SEED = SEED_YAML


def fqdn(name: str, port: int = 8080) -> str:
    return f"{name}.{NAMESPACE}.svc.cluster.local:{port}"


def test_seed_canary_split_and_beta_users(mesh: Mesh) -> None:
    v1a, v1b, v2 = mesh.upstream("inv-v1-a"), mesh.upstream("inv-v1-b"), mesh.upstream("inv-v2")
    mesh.apply(
        mesh.service("inventory-service")
        + mesh.workload("inventory-service", v1a, "v1")
        + mesh.workload("inventory-service", v1b, "v1")
        + mesh.workload("inventory-service", v2, "v2")
        + SEED  # the seed's DestinationRule and VirtualService, verbatim
    )
    host = fqdn("inventory-service")
    mesh.wait_routed(host, "inv-v2", headers={"x-beta-user": "true"})

    beta = mesh.get(host, count=200, concurrency=4, headers={"x-beta-user": "true"})
    assert beta.statuses == {200: 200}
    assert beta.upstreams == {"inv-v2": 200}

    split = mesh.get(host, count=2000, concurrency=8)
    assert split.statuses == {200: 2000}
    share_v2 = split.upstreams["inv-v2"] / 2000
    assert 0.035 <= share_v2 <= 0.065, split.upstreams
    assert split.upstreams["inv-v1-a"] > 0 and split.upstreams["inv-v1-b"] > 0

    # Short names work from the same namespace, as a Kubernetes resolver would expand them.
    assert mesh.get("inventory-service:8080", headers={"x-beta-user": "true"}).upstreams == {
        "inv-v2": 1
    }


def test_retries_turn_one_in_three_failures_into_success(mesh: Mesh) -> None:
    flaky = mesh.upstream("flaky")
    flaky.fail_every, flaky.fail_status = 3, 500
    mesh.apply(mesh.service("flaky") + mesh.workload("flaky", flaky))
    host = fqdn("flaky")
    wait_ok = lambda: mesh.get(host).upstreams.get("flaky") == 1  # noqa: E731
    wait_for(wait_ok, what="flaky routed")
    # Istio's default retry policy does not retry 500: a third of requests fail.
    without = mesh.get(host, count=150, concurrency=1)
    assert 40 <= without.statuses[500] <= 60, without.statuses

    mesh.apply(f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: flaky, namespace: {NAMESPACE}}}
spec:
  hosts: [flaky]
  http:
  - route: [{{destination: {{host: flaky}}}}]
    retries: {{attempts: 3, retryOn: 5xx}}
""")
    wait_for(lambda: mesh.get(host, count=30).statuses == {200: 30}, what="retry policy active")
    with_retries = mesh.get(host, count=300, concurrency=2)
    assert with_retries.statuses == {200: 300}
    assert mesh.sidecar.stat(f"cluster.outbound|8080||{host.split(':')[0]}.upstream_rq_retry") > 0


def test_per_try_timeout_cuts_slow_attempt(mesh: Mesh) -> None:
    slow = mesh.upstream("slowish")
    slow.delay, slow.delay_every = 3.0, 2
    mesh.apply(
        mesh.service("slowish")
        + mesh.workload("slowish", slow)
        + f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: slowish, namespace: {NAMESPACE}}}
spec:
  hosts: [slowish]
  http:
  - route: [{{destination: {{host: slowish}}}}]
    timeout: 10s
    retries: {{attempts: 2, perTryTimeout: 300ms, retryOn: "5xx,reset"}}
"""
    )
    host = fqdn("slowish")
    wait_for(lambda: mesh.get(host).statuses.get(200) == 1, what="slowish routed")
    result = mesh.get(host, count=10, concurrency=1)
    assert result.statuses == {200: 10}
    # A slow attempt is abandoned after 300 ms and retried, never waited out (3 s).
    assert max(result.latencies) < 1.5, result.latencies
    assert (
        mesh.sidecar.stat(
            f"cluster.outbound|8080||{host.split(':')[0]}.upstream_rq_per_try_timeout"
        )
        > 0
    )


def test_route_timeout_answers_504_on_time(mesh: Mesh) -> None:
    stuck = mesh.upstream("stuck")
    stuck.delay = 4.0  # the seed's p99 of 4 s
    mesh.apply(
        mesh.service("stuck")
        + mesh.workload("stuck", stuck)
        + f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: stuck, namespace: {NAMESPACE}}}
spec:
  hosts: [stuck]
  http:
  - route: [{{destination: {{host: stuck}}}}]
    timeout: 500ms
    retries: {{attempts: 0}}
"""
    )
    host = fqdn("stuck")
    wait_for(lambda: mesh.get(host).statuses.get(504) == 1, timeout=15, what="route timeout active")
    result = mesh.get(host, count=4, concurrency=4)
    assert result.statuses == {504: 4}
    assert all(0.45 <= t < 1.5 for t in result.latencies), result.latencies


def test_outlier_detection_ejects_failing_endpoint(mesh: Mesh) -> None:
    good, bad = mesh.upstream("od-good"), mesh.upstream("od-bad")
    bad.status = 500
    mesh.apply(
        mesh.service("od")
        + mesh.workload("od", good)
        + mesh.workload("od", bad)
        + f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: od, namespace: {NAMESPACE}}}
spec:
  host: od
  trafficPolicy:
    loadBalancer: {{simple: ROUND_ROBIN}}
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: od, namespace: {NAMESPACE}}}
spec:
  hosts: [od]
  http:
  - route: [{{destination: {{host: od}}}}]
    retries: {{attempts: 0}}
"""
    )
    host = fqdn("od")
    wait_for(lambda: mesh.get(host, count=4).upstreams.get("od-bad", 0) > 0, what="od routed")
    cluster = f"cluster.outbound|8080||od.{NAMESPACE}.svc.cluster.local"

    def ejected() -> bool:
        mesh.get(host, count=5)  # keep traffic flowing so 5xx are counted
        return mesh.sidecar.stat(f"{cluster}.outlier_detection.ejections_enforced_total", 0) >= 1

    wait_for(ejected, timeout=15, what="ejection")
    after = mesh.get(host, count=50, concurrency=2)
    assert after.statuses == {200: 50}
    assert after.upstreams == {"od-good": 50}


def test_connection_pool_overflow_answers_503_at_once(mesh: Mesh) -> None:
    slow = mesh.upstream("pool")
    slow.delay = 1.0
    mesh.apply(
        mesh.service("pool")
        + mesh.workload("pool", slow)
        + f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: pool, namespace: {NAMESPACE}}}
spec:
  host: pool
  trafficPolicy:
    connectionPool:
      tcp: {{maxConnections: 1}}
      http: {{http1MaxPendingRequests: 1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: pool, namespace: {NAMESPACE}}}
spec:
  hosts: [pool]
  http:
  - route: [{{destination: {{host: pool}}}}]
    retries: {{attempts: 0}}
"""
    )
    host = fqdn("pool")
    wait_for(lambda: mesh.get(host).statuses.get(200) == 1, timeout=15, what="pool routed")
    result = mesh.get(host, count=8, concurrency=8)
    overflowed = [s for s in result.samples if s.status == 503]
    assert result.statuses[200] >= 1 and len(overflowed) >= 4, result.statuses
    assert all(s.latency < 0.5 for s in overflowed)
    assert (
        mesh.sidecar.stat(
            f"cluster.outbound|8080||pool.{NAMESPACE}.svc.cluster.local.upstream_rq_pending_overflow"
        )
        >= 4
    )


def test_fault_abort_and_delay(mesh: Mesh) -> None:
    target = mesh.upstream("faulty")
    mesh.apply(
        mesh.service("faulty")
        + mesh.workload("faulty", target)
        + f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: faulty, namespace: {NAMESPACE}}}
spec:
  hosts: [faulty]
  http:
  - match: [{{headers: {{x-fault: {{exact: abort}}}}}}]
    fault: {{abort: {{httpStatus: 418, percentage: {{value: 100}}}}}}
    route: [{{destination: {{host: faulty}}}}]
  - match: [{{headers: {{x-fault: {{exact: delay}}}}}}]
    fault: {{delay: {{fixedDelay: 400ms, percentage: {{value: 100}}}}}}
    route: [{{destination: {{host: faulty}}}}]
  - route: [{{destination: {{host: faulty}}}}]
"""
    )
    host = fqdn("faulty")
    wait_for(
        lambda: mesh.get(host, headers={"x-fault": "abort"}).statuses.get(418) == 1,
        what="fault active",
    )
    before = target.requests
    aborted = mesh.get(host, count=20, headers={"x-fault": "abort"})
    assert aborted.statuses == {418: 20}
    assert target.requests == before  # aborted requests never reach the upstream
    delayed = mesh.get(host, count=3, headers={"x-fault": "delay"})
    assert delayed.statuses == {200: 3} and min(delayed.latencies) >= 0.35  # Envoy timer slack
    plain = mesh.get(host, count=3)
    assert plain.statuses == {200: 3} and max(plain.latencies) < 0.3


def test_mirroring_copies_requests(mesh: Mesh) -> None:
    live, shadow = mesh.upstream("mirror-live"), mesh.upstream("mirror-shadow")
    mesh.apply(
        mesh.service("mirrored")
        + mesh.workload("mirrored", live, "v1")
        + mesh.workload("mirrored", shadow, "v2")
        + f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: mirrored, namespace: {NAMESPACE}}}
spec:
  host: mirrored
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: mirrored, namespace: {NAMESPACE}}}
spec:
  hosts: [mirrored]
  http:
  - route: [{{destination: {{host: mirrored, subset: v1}}}}]
    mirror: {{host: mirrored, subset: v2}}
    mirrorPercentage: {{value: 100.0}}
"""
    )
    host = fqdn("mirrored")
    wait_for(
        lambda: mesh.get(host).upstreams.get("mirror-live") == 1 and shadow.requests > 0,
        what="mirror active",
    )
    before = shadow.requests
    result = mesh.get(host, count=20)
    assert result.upstreams == {"mirror-live": 20}
    wait_for(lambda: shadow.requests - before >= 20, what="shadow copies")
    # Envoy marks mirrored requests by suffixing the authority with -shadow.
    assert "-shadow" in shadow.recent[-1].headers.get("host", ""), shadow.recent[-1].headers


def test_weight_change_under_load_fails_nothing(mesh: Mesh) -> None:
    a, b = mesh.upstream("w-v1"), mesh.upstream("w-v2")

    def vs(w1: int, w2: int) -> str:
        return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: weighted, namespace: {NAMESPACE}}}
spec:
  hosts: [weighted]
  http:
  - route:
    - {{destination: {{host: weighted, subset: v1}}, weight: {w1}}}
    - {{destination: {{host: weighted, subset: v2}}, weight: {w2}}}
"""

    mesh.apply(
        mesh.service("weighted")
        + mesh.workload("weighted", a, "v1")
        + mesh.workload("weighted", b, "v2")
        + f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: weighted, namespace: {NAMESPACE}}}
spec:
  host: weighted
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
"""
        + vs(95, 5)
    )
    host = fqdn("weighted")
    wait_for(lambda: mesh.get(host).statuses.get(200) == 1, what="weighted routed")
    load = SteadyLoad(
        f"http://{host}/", rate=150, max_duration=20, proxy=mesh.proxy, workers=4
    ).start()
    try:
        time.sleep(1.0)
        mesh.apply(vs(50, 50))
        time.sleep(2.0)
        mesh.apply(vs(0, 100))  # full shift, then instant rollback by weight
        time.sleep(1.0)
        mesh.apply(vs(100, 0))
        time.sleep(1.0)
    finally:
        result = load.stop()
    assert result.count > 500
    assert result.failed == 0, (result.statuses, result.errors)
    after = mesh.get(host, count=400, concurrency=4)
    assert after.upstreams == {"w-v1": 400}

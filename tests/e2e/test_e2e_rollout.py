"""A rolling update under load fails no request.

Kubernetes' defaults (maxSurge 25%, maxUnavailable 25%) replace the pods one by one; a
new pod becomes an endpoint only once it is ready, and an old pod leaves the endpoints of
every proxy, and answers what was already on its way, before it is told to stop. With
Istio's default retry policy the callers see no failure; they see none either with
retries switched off, which shows the ordering itself is right, not the retries.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import E2EMesh, apply_in_effect, demo_deployment, service, start_load, wait_until

pytestmark = pytest.mark.root

ITEMS = "http://inventory-service:8080/items"
REPLICAS = 3
LOAD_SECONDS = 28  # about twice a rollout here: covers it with room on a busy machine
NO_RETRIES = """
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: inventory-service, namespace: production}
spec:
  hosts: [inventory-service]
  http:
  - route:
    - destination: {host: inventory-service}
    retries: {attempts: 0}
"""


def inventory(revision: str) -> str:
    # 50 ms per request: a bounded load, and requests in flight when a pod goes away.
    env = {"LATENCY": "0.05", "REVISION": revision}
    return demo_deployment("inventory", "inventory-service", REPLICAS, env=env)


def _template_hashes(pods: list[dict[str, Any]]) -> dict[str, str]:
    return {
        p["name"]: p["labels"]["pod-template-hash"] for p in pods if p["deployment"] == "inventory"
    }


def _roll_out_under_load(
    mesh: E2EMesh, revision: str
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """Change the pod template while order-service calls inventory; (load, old, new)."""
    old = _template_hashes(mesh.wait_pods({"inventory": REPLICAS, "order-service": 1}))
    old_hashes = set(old.values())

    def rolled_out() -> dict[str, str] | None:
        pods = mesh.pods()
        hashes = _template_hashes(pods)
        done = (
            len(hashes) == REPLICAS
            and not old_hashes & set(hashes.values())
            and all(p["ready"] for p in pods)
        )
        return hashes if done else None

    load = start_load(
        mesh,
        mesh.pod("order-service"),
        ITEMS,
        "--count",
        "1000000",
        "--duration",
        str(LOAD_SECONDS),
        "--concurrency",
        "4",
    )
    took = 0.0
    try:
        time.sleep(2)
        began = time.monotonic()
        mesh.apply(inventory(revision))  # a new pod template: every pod is replaced
        new = wait_until(rolled_out, LOAD_SECONDS, f"the rollout to revision {revision}")
        took = time.monotonic() - began
        assert load.process.poll() is None, "the load ended before the rollout did"
    finally:
        summary = load.result()
    print(f"\nrollout to revision {revision} took {took:.1f}s under load: {summary}")
    return summary, old, new


def _assert_no_failure(summary: dict[str, Any], old: dict[str, str], new: dict[str, str]) -> None:
    assert len(set(new.values())) == 1 and not set(new) & set(old)
    assert summary["count"] >= 500, summary
    assert summary["statuses"] == {"200": summary["count"]}, summary
    served = set(summary["pods"])
    assert set(old) <= served and set(new) <= served, (old, new, summary["pods"])


def test_rolling_update_under_load_fails_no_request(mesh: E2EMesh) -> None:
    mesh.apply(
        service("inventory-service")
        + service("order-service")
        + inventory("1")
        + demo_deployment("order-service", "order-service", 1)
    )
    # The mesh as installed: Istio's default retry policy on every route.
    _assert_no_failure(*_roll_out_under_load(mesh, "2"))

    # Nothing retried: a request sent to a pod that stops too early would fail.
    apply_in_effect(mesh, NO_RETRIES)
    _assert_no_failure(*_roll_out_under_load(mesh, "3"))

"""The fault suite: kill -9 and SIGSTOP of isthmusd, of the node runtime, of a sidecar's
agent and Envoy, and of an app, each under steady load through retries. Each checks the
failed requests, that no pod was recreated (same names, same app PIDs), and that the mesh
converges afterwards. Bounded: about ten seconds of load per fault."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import (
    ISTHMUS,
    E2EMesh,
    apply_in_effect,
    demo_deployment,
    netns_pid,
    service,
    start_load,
    wait_until,
)

from isthmus.daemon.client import DaemonClient
from isthmus.home import resolve_home

pytestmark = pytest.mark.root

ITEMS = "http://inventory-service:8080/items"
REPLICAS = 3
LOAD_SECONDS = 10
RULES = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: inventory-service, namespace: production}
spec:
  host: inventory-service
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 5s}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: inventory-service, namespace: production}
spec:
  hosts: [inventory-service]
  http:
  - route:
    - destination: {host: inventory-service}
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "5xx,reset,connect-failure,refused-stream"}
"""


def app_pids(pods: list[dict[str, Any]]) -> dict[str, int | None]:
    return {p["name"]: netns_pid(p, "isthmus.demo.app") for p in pods}


@pytest.fixture(scope="module")
def shop(mesh: E2EMesh) -> E2EMesh:
    mesh.apply(
        service("inventory-service")
        + service("order-service")
        + demo_deployment("inventory", "inventory-service", REPLICAS, env={"LATENCY": "0.01"})
        # order-service leaves retries to the mesh: one attempt per call.
        + demo_deployment("order-service", "order-service", 1, env={"CALL_ATTEMPTS": "1"})
    )
    mesh.wait_pods({"inventory": REPLICAS, "order-service": 1})
    apply_in_effect(mesh, RULES)
    return mesh


@pytest.fixture
def steady(shop: E2EMesh) -> Iterator[dict[str, Any]]:
    """The pods before a fault; afterwards, the mesh must have converged to the same pods."""
    pods = shop.wait_pods({"inventory": REPLICAS, "order-service": 1}, timeout=60)
    yield {"pods": pods, "pids": app_pids(pods)}
    after = shop.wait_pods({"inventory": REPLICAS, "order-service": 1}, timeout=60)
    assert {p["name"] for p in after} == {p["name"] for p in pods}, "a pod was recreated"
    wait_until(lambda: proxies_synced(shop, len(after)), 30, "every proxy connected and synced")


def proxies_synced(mesh: E2EMesh, expected: int) -> bool:
    with DaemonClient(resolve_home(mesh.home)) as client:
        proxies = client.request("GET", "/v1/proxies")["proxies"]
    return len(proxies) == expected and all(p["synced"] for p in proxies)


def under_load(shop: E2EMesh, fault: Callable[[], None]) -> dict[str, Any]:
    """Steady load from order-service's pod to inventory while `fault` happens."""
    order = shop.pod("order-service")
    load = start_load(
        shop,
        order,
        ITEMS,
        "--count",
        "100000",
        "--duration",
        str(LOAD_SECONDS),
        "--rate",
        "40",
        "--concurrency",
        "4",
    )
    try:
        time.sleep(2)
        fault()
    finally:
        summary = load.result()
    print(f"\n{summary['count']} requests: {summary['statuses']} p99 {summary['p99']:.3f}s")
    assert summary["count"] >= 200, summary
    return summary


def no_failures(summary: dict[str, Any]) -> None:
    assert summary["statuses"] == {"200": summary["count"]}, summary


def stall(pid: int, seconds: float = 3.0, until: Callable[[], object] | None = None) -> None:
    """SIGSTOP a process for `seconds` (or until `until()` holds, at most 20 s), then
    SIGCONT, also if the wait is interrupted."""
    os.kill(pid, signal.SIGSTOP)
    try:
        if until is None:
            time.sleep(seconds)
        else:
            wait_until(until, 20, "the stall to be noticed")
    finally:
        os.kill(pid, signal.SIGCONT)


def pid_file(shop: E2EMesh, name: str) -> int:
    return int((shop.home / name).read_text())


def victim(steady: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in steady["pods"] if p["deployment"] == "inventory")


def restarts(shop: E2EMesh, pod: dict[str, Any], container: str) -> int:
    found = [p for p in shop.pods() if p["name"] == pod["name"]]
    return int(found[0]["container_restarts"].get(container, 0)) if found else -1


def same_apps(steady: dict[str, Any], except_pod: str | None = None) -> None:
    now = app_pids(steady["pods"])
    for name, pid in steady["pids"].items():
        if name != except_pod:
            assert now[name] == pid, f"app of {name} was restarted ({pid} -> {now[name]})"


# --- the sidecar and the app ---------------------------------------------------------


def test_kill_app(shop: E2EMesh, steady: dict[str, Any]) -> None:
    pod = victim(steady)
    before = restarts(shop, pod, "app")
    summary = under_load(shop, lambda: os.kill(steady["pids"][pod["name"]] or 0, signal.SIGKILL))
    no_failures(summary)
    wait_until(lambda: restarts(shop, pod, "app") == before + 1, 20, "RESTARTS to count it")
    same_apps(steady, except_pod=pod["name"])


def test_kill_envoy(shop: E2EMesh, steady: dict[str, Any]) -> None:
    pod = victim(steady)
    before = restarts(shop, pod, "istio-proxy")
    agent = netns_pid(pod, "isthmus.agent")
    envoy = netns_pid(pod, "envoy-bootstrap.json")
    assert agent and envoy
    summary = under_load(shop, lambda: os.kill(envoy, signal.SIGKILL))
    no_failures(summary)
    wait_until(lambda: restarts(shop, pod, "istio-proxy") == before + 1, 20, "RESTARTS to count it")
    assert netns_pid(pod, "isthmus.agent") == agent  # the agent restarted Envoy itself
    same_apps(steady)


def test_kill_agent(shop: E2EMesh, steady: dict[str, Any]) -> None:
    pod = victim(steady)
    before = restarts(shop, pod, "istio-proxy")
    agent = netns_pid(pod, "isthmus.agent")
    assert agent
    summary = under_load(shop, lambda: os.kill(agent, signal.SIGKILL))
    no_failures(summary)
    wait_until(lambda: restarts(shop, pod, "istio-proxy") == before + 1, 20, "RESTARTS to count it")
    same_apps(steady)


@pytest.mark.parametrize("marker", ["isthmus.demo.app", "isthmus.agent", "envoy-bootstrap.json"])
def test_stop_and_continue(shop: E2EMesh, steady: dict[str, Any], marker: str) -> None:
    """SIGSTOP until the pod is reported not ready (its readiness includes the sidecar:
    Envoy ready on 15021 and the agent answering), then SIGCONT: callers' retries and the
    endpoints route around it, and it comes back."""
    pod = victim(steady)
    pid = netns_pid(pod, marker)
    assert pid

    def unready() -> bool:
        return not any(p["name"] == pod["name"] and p["ready"] for p in shop.pods())

    no_failures(under_load(shop, lambda: stall(pid, until=unready)))
    same_apps(steady)


# --- the node runtime and the control plane ------------------------------------------


def test_kill_node_runtime(shop: E2EMesh, steady: dict[str, Any]) -> None:
    """Pods keep serving; an app killed meanwhile is restarted by its shim and counted."""
    pod = victim(steady)
    before = restarts(shop, pod, "app")
    app = steady["pids"][pod["name"]]

    def fault() -> None:
        os.kill(pid_file(shop, "node.pid"), signal.SIGKILL)
        time.sleep(1)
        os.kill(app or 0, signal.SIGKILL)
        wait_until(
            lambda: netns_pid(pod, "isthmus.demo.app") not in (None, app), 10, "shim restart"
        )
        time.sleep(1)
        shop.cli("up", "--mesh", shop.name)

    no_failures(under_load(shop, fault))
    wait_until(lambda: restarts(shop, pod, "app") == before + 1, 20, "RESTARTS to count it")
    same_apps(steady, except_pod=pod["name"])


@pytest.mark.parametrize("pid_name", ["node.pid", "isthmusd.pid"])
def test_stop_node_runtime_or_control_plane(
    shop: E2EMesh, steady: dict[str, Any], pid_name: str
) -> None:
    no_failures(under_load(shop, lambda: stall(pid_file(shop, pid_name))))
    same_apps(steady)


def test_kill_control_plane(shop: E2EMesh, steady: dict[str, Any]) -> None:
    """Zero failed requests, same pods and apps, proxies resync, and a change afterwards
    reaches every Envoy."""

    def fault() -> None:
        os.kill(pid_file(shop, "isthmusd.pid"), signal.SIGKILL)
        time.sleep(2)
        shop.cli("up", "--mesh", shop.name)

    no_failures(under_load(shop, fault))
    same_apps(steady)
    wait_until(lambda: proxies_synced(shop, len(steady["pods"])), 30, "proxies resynced")
    changed = RULES.replace("attempts: 3,", "attempts: 2,")
    apply_in_effect(shop, changed, node_part="")  # every proxy ACKs the change
    apply_in_effect(shop, RULES, node_part="")


def test_largest_apply_keeps_the_mesh_responsive(shop: E2EMesh, steady: dict[str, Any]) -> None:
    """During a 4 MiB apply, isthmusd's health keeps answering, probes keep pods ready and
    a crashed app is still restarted (no timing thresholds: answers, not latencies)."""
    hosts = [f"h{i}.bulk.example.com" for i in range(120_000)]
    text = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: bulk, namespace: bulk}\n"
        "spec:\n  exportTo: ['.']\n  hosts:\n"
        + "".join(f"  - {h}\n" for h in hosts)
        + "  http:\n  - route:\n    - destination: {host: h0.bulk.example.com}\n"
    )
    assert len(text) < 4 * 1024 * 1024  # the largest document a stream may hold
    path = shop.home / "bulk.yaml"
    path.write_text(text)
    pod = victim(steady)
    app = steady["pids"][pod["name"]]
    apply = subprocess.Popen(
        [ISTHMUS, "--home", str(shop.home), "apply", "-f", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    answered = 0
    try:
        os.kill(app or 0, signal.SIGKILL)
        while apply.poll() is None:
            with DaemonClient(resolve_home(shop.home), timeout=10) as client:
                client.healthz()
            answered += 1
            time.sleep(0.1)
        out, err = apply.communicate()
    finally:
        if apply.poll() is None:
            apply.kill()
    print(
        f"\n4 MiB apply ({len(text)} bytes): {out.strip()} {err.strip()}; "
        f"healthz answered {answered}x"
    )
    assert apply.returncode == 0, err
    assert answered >= 3
    wait_until(lambda: netns_pid(pod, "isthmus.demo.app") not in (None, app), 20, "app restart")
    shop.cli("delete", "-f", str(path))
    same_apps(steady, except_pod=pod["name"])

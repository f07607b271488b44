"""The runtime's kubectl/istioctl verbs on a real mesh: scale, delete pod, get endpoints,
port-forward from the host's loopback, x iptables and proxy-config, with one small
Deployment behind one Service."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ISTHMUS, E2EMesh, app_deployment, service

from isthmus.daemon.client import DaemonClient
from isthmus.home import resolve_home

NS = "production"


@pytest.fixture(scope="module")
def web(mesh: E2EMesh) -> dict[str, Any]:
    mesh.apply(service("web") + app_deployment("web", "web", "v1", 1))
    (pod,) = mesh.wait_pods({"web": 1})
    return pod


def stored_replicas(mesh: E2EMesh) -> int:
    with DaemonClient(resolve_home(mesh.home)) as client:
        (body,) = client.get("Deployment", NS, "web")
    return int(body["spec"]["replicas"])


@pytest.fixture
def forward(mesh: E2EMesh) -> Iterator[subprocess.Popen[str]]:
    """`isthmus port-forward svc/web :8080` as a user runs it; always stopped afterwards."""
    process = subprocess.Popen(
        [ISTHMUS, "--home", str(mesh.home), "port-forward", "svc/web", ":8080", "-n", NS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_endpoints_list_the_ready_pod(mesh: E2EMesh, web: dict[str, Any]) -> None:
    out = mesh.cli("get", "endpoints", "-n", NS).stdout.splitlines()
    assert out[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    assert out[1].split()[:2] == ["web", f"{web['ip']}:8080"]
    wide = mesh.cli("get", "pods", "-n", NS, "-o", "wide").stdout
    assert web["netns"] in wide
    deploy = mesh.cli("get", "deploy", "web", "-n", NS).stdout.splitlines()
    assert deploy[1].split()[:4] == ["web", "1/1", "1", "1"]


def test_port_forward_answers_from_the_hosts_loopback(
    web: dict[str, Any], forward: subprocess.Popen[str]
) -> None:
    assert forward.stdout is not None
    first = forward.stdout.readline()
    assert first.startswith("Forwarding from 127.0.0.1:") and first.endswith(" -> 8080\n"), (
        first + (forward.stderr.read() if forward.stderr else "")
    )
    port = int(first.split(":")[1].split()[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/items/1", timeout=10) as answer:
        assert answer.status == 200
        assert json.loads(answer.read())["pod"] == web["name"]
    forward.send_signal(signal.SIGINT)
    assert forward.wait(timeout=10) == 0


def test_x_iptables_shows_the_capture_chains(mesh: E2EMesh, web: dict[str, Any]) -> None:
    rules = mesh.cli("x", "iptables", web["name"], "-n", NS).stdout
    prefix = mesh.name.upper()
    assert f"-A PREROUTING -p tcp -j {prefix}_INBOUND" in rules
    assert f"-A OUTPUT -p tcp -j {prefix}_OUTPUT" in rules
    assert "--to-ports 15001" in rules and "--to-ports 15006" in rules


def test_proxy_config_reads_envoy_inside_the_pod(mesh: E2EMesh, web: dict[str, Any]) -> None:
    pod = f"{web['name']}.{NS}"  # istioctl's pod.namespace
    listeners = mesh.cli("proxy-config", "listeners", pod).stdout
    names = {line.split()[0] for line in listeners.splitlines()[1:]}
    assert {"virtualOutbound", "virtualInbound", "0.0.0.0_8080"} <= names
    (route,) = json.loads(mesh.cli("pc", "routes", pod, "--name", "8080", "-o", "json").stdout)
    assert route["name"] == "8080"
    cluster = "outbound|8080||web.production.svc.cluster.local"
    endpoints = mesh.cli("pc", "endpoints", pod, "--cluster", cluster).stdout.splitlines()
    assert endpoints[1].split() == [f"{web['ip']}:8080", "HEALTHY", "OK", cluster]


def test_proxy_status_shows_sync_state_and_what_each_proxy_holds(
    mesh: E2EMesh, web: dict[str, Any]
) -> None:
    proxies = json.loads(mesh.cli("proxy-status", "-o", "json").stdout)["proxies"]
    (status,) = [p for p in proxies if f"~{web['name']}.{NS}~" in p["node_id"]]
    types = {url.rsplit(".", 1)[-1]: entry for url, entry in status["types"].items()}
    for kind in ("Cluster", "ClusterLoadAssignment", "Listener", "RouteConfiguration"):
        assert types[kind]["resources"] > 0 and types[kind]["bytes"] > 0, (kind, types[kind])
        assert types[kind]["resources_sent"] >= types[kind]["resources"], (kind, types[kind])
    # EDS holds exactly the assignments Envoy subscribed to.
    eds = types["ClusterLoadAssignment"]
    assert eds["resources"] == eds["subscribed"]
    table = mesh.cli("proxy-status").stdout.splitlines()
    assert table[0].split() == ["NAME", "CDS", "LDS", "EDS", "RDS", "RESOURCES", "SIZE"]
    (row,) = [line.split() for line in table[1:] if line.startswith(status["node_id"])]
    assert row[1:5] == ["SYNCED"] * 4
    assert int(row[5]) == sum(entry["resources"] for entry in types.values())


def test_scale_up_and_down_persists_and_pods_follow(mesh: E2EMesh, web: dict[str, Any]) -> None:
    assert mesh.cli("scale", "deploy", "web", "--replicas", "2", "-n", NS).stdout == (
        "deployment.apps/web scaled\n"
    )
    assert stored_replicas(mesh) == 2
    mesh.wait_pods({"web": 2}, timeout=45)
    mesh.cli("scale", "deployment/web", "--replicas", "1", "-n", NS)
    assert stored_replicas(mesh) == 1
    mesh.wait_pods({"web": 1}, timeout=45)


def test_deleted_pod_is_replaced_under_a_new_name(mesh: E2EMesh, web: dict[str, Any]) -> None:
    (old,) = mesh.wait_pods({"web": 1})
    out = mesh.cli("delete", "pod", old["name"], "-n", NS).stdout
    assert out == f'pod "{old["name"]}" deleted\n'
    (new,) = mesh.wait_pods({"web": 1}, timeout=45)
    assert new["name"] != old["name"]
    assert old["name"] not in mesh.cli("get", "endpoints", "web", "-n", NS, "-o", "wide").stdout
    missing = mesh.cli("delete", "pod", old["name"], "-n", NS, check=False)
    assert (missing.returncode, missing.stderr) == (
        1,
        f'error: pod "{old["name"]}" not found in namespace {NS}\n',
    )

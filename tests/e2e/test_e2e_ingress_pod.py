"""The ingress gateway pod `isthmus up --ingress-port H:80` installs: Istio's
istio-system/istio-ingressgateway, run as its proxy alone (the istio-proxy container is the
agent, in router mode), Ready, with no capture rules in its namespace, its Envoy running as
root and connected to isthmusd as `router~...`, told by its node metadata to publish port
80 on the host's 127.0.0.1:H through the host's namespace reference, which the node runtime
made under the mesh home and which `isthmus down` removes. A sidecar pod next to it is the
control: captured, its Envoy as uid 1337, a `sidecar~` node.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import E2EMesh, app_deployment, netns_pid, running_mesh, service, wait_until

from isthmus.daemon.client import DaemonClient
from isthmus.home import resolve_home

NS = "istio-system"
GATEWAY = "istio-ingressgateway"


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


HOST_PORT = _free_loopback_port()


@pytest.fixture(scope="module")
def mesh() -> Iterator[E2EMesh]:
    with running_mesh("--ingress-port", f"{HOST_PORT}:80", ingress_gateway=True) as m:
        yield m


@pytest.fixture(scope="module")
def pods(mesh: E2EMesh) -> dict[str, dict[str, Any]]:
    mesh.apply(service("web") + app_deployment("web", "web", "v1", 1))
    return {p["deployment"]: p for p in mesh.wait_pods({GATEWAY: 1, "web": 1})}


def _uids(pid: int) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(field) for field in line.split()[1:]]
    raise AssertionError(f"no Uid line for pid {pid}")


def _cmdline(pid: int) -> list[str]:
    return [arg.decode() for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]


def _nat_rules(pod: dict[str, Any]) -> list[str]:
    saved = subprocess.run(
        ["ip", "netns", "exec", pod["netns"], "iptables-save", "-t", "nat"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in saved.splitlines() if line.startswith("-A ")]


def _proxies(mesh: E2EMesh) -> list[dict[str, Any]]:
    with DaemonClient(resolve_home(mesh.home)) as client:
        return list(client.request("GET", "/v1/proxies")["proxies"])


def test_up_installs_istios_ingress_gateway_and_says_where_it_is(mesh: E2EMesh) -> None:
    line = next(line for line in mesh.up_output.splitlines() if "ingress" in line)
    assert f"{NS}/{GATEWAY} ready" in line, mesh.up_output
    assert f"http://127.0.0.1:{HOST_PORT} -> port 80" in line, mesh.up_output
    for kind, name in (
        ("serviceaccount", "istio-ingressgateway-service-account"),
        ("service", GATEWAY),
        ("deployment", GATEWAY),
    ):
        body = json.loads(mesh.cli("get", kind, name, "-n", NS, "-o", "json").stdout)
        assert body["metadata"]["labels"]["istio"] == "ingressgateway", body


def test_the_gateway_pod_is_its_proxy_alone_and_ready(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    gateway = pods[GATEWAY]
    assert gateway["namespace"] == NS and gateway["ready"]
    assert gateway["sidecar"] and gateway["containers"] == []  # istio-proxy only
    assert gateway["total_containers"] == 1
    assert gateway["labels"]["istio"] == "ingressgateway"
    assert "security.istio.io/tlsMode" not in gateway["labels"]  # mesh clients: plaintext
    assert pods["web"]["labels"]["security.istio.io/tlsMode"] == "istio"
    listed = mesh.cli("get", "pods", "-n", NS).stdout
    assert f"{gateway['name']}" in listed and "1/1" in listed and "Running" in listed, listed
    logs = mesh.cli("logs", gateway["name"], "-n", NS).stdout  # its only container
    assert "starting" in logs and "router~" in logs, logs


def test_no_capture_rules_in_the_gateways_namespace(pods: dict[str, dict[str, Any]]) -> None:
    assert _nat_rules(pods[GATEWAY]) == []
    assert any("REDIRECT" in rule for rule in _nat_rules(pods["web"]))  # the control


def test_its_envoy_runs_as_root_a_sidecars_as_1337(pods: dict[str, dict[str, Any]]) -> None:
    envoy = netns_pid(pods[GATEWAY], "envoy-bootstrap.json")
    assert envoy is not None, "no Envoy in the gateway's namespace"
    assert set(_uids(envoy)) == {0}
    sidecar = netns_pid(pods["web"], "envoy-bootstrap.json")
    assert sidecar is not None and set(_uids(sidecar)) == {1337}


def test_it_is_connected_to_isthmusd_as_a_router(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    gateway, web = pods[GATEWAY], pods["web"]
    router = f"router~{gateway['ip']}~{gateway['name']}.{NS}~{NS}.svc.cluster.local"

    def connected() -> dict[str, Any] | None:
        return next((p for p in _proxies(mesh) if p["node_id"] == router), None)

    proxy = wait_until(connected, 30, f"{router} in /v1/proxies")
    assert proxy["synced"], proxy
    assert any(p["node_id"].startswith(f"sidecar~{web['ip']}~") for p in _proxies(mesh))
    status = mesh.cli("proxy-status").stdout
    assert router in status, status


def test_the_agent_is_told_to_publish_through_the_host_netns_reference(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    gateway = pods[GATEWAY]
    reference = resolve_home(mesh.home).host_netns
    agent = netns_pid(gateway, "isthmus.agent")
    assert agent is not None
    argv = _cmdline(agent)
    assert "--router" in argv and "--inbound-ports" not in argv
    assert argv[argv.index("--publish") + 1] == f"{HOST_PORT}:80"
    assert argv[argv.index("--host-netns") + 1] == str(reference)
    workdir = Path(argv[argv.index("--workdir") + 1])
    node = json.loads((workdir / "envoy-bootstrap.json").read_text())["node"]
    assert node["id"].startswith("router~")
    metadata = node["metadata"]
    assert metadata["PUBLISHED_PORTS"] == f"{HOST_PORT}:80"
    assert metadata["HOST_NETNS"] == str(reference)
    assert metadata["INTERCEPTION_MODE"] == "NONE"
    assert "INBOUND_PORTS" not in metadata


def test_the_reference_is_the_hosts_namespace_while_up(mesh: E2EMesh) -> None:
    reference = resolve_home(mesh.home).host_netns
    # This test runs in the host's namespace, as the node runtime does.
    here = os.stat("/proc/self/ns/net")
    there = os.stat(reference)
    assert (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino)
    assert str(reference) in Path("/proc/self/mountinfo").read_text()
    assert not reference.is_relative_to("/run/netns")


def test_down_removes_the_reference(mesh: E2EMesh, pods: dict[str, dict[str, Any]]) -> None:
    reference = resolve_home(mesh.home).host_netns
    mesh.cli("down", timeout=180)
    assert not reference.exists()
    assert str(reference) not in Path("/proc/self/mountinfo").read_text()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{mesh.name}-" not in netns

"""The sidecar agent with --zipkin-socket, as a process against a real isthmusd: its Envoy
has the `zipkin` cluster on the agent's ZIPKIN socket, and what is posted there (as
Envoy's tracer posts) reaches isthmusd's collector and its query API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from isthmus.testing.daemon import DaemonProcess, wait_for
from isthmus.testing.ports import LOOPBACK, free_port

pytestmark = pytest.mark.envoy

POD = "web-7d9f-x2k8q"
TRACE = "4e441824ec2b6a44ffdc9bb9a6453df3"


@pytest.fixture
def workroot() -> Iterator[Path]:
    # Short: the agent's sockets live in its work dir (unix socket paths are short).
    root = Path(tempfile.mkdtemp(prefix="isz-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def daemon(workroot: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(workroot / "home").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def agent(workroot: Path, daemon: DaemonProcess) -> Iterator[tuple[Path, int]]:
    """The agent's work dir and Envoy admin port, once its ZIPKIN socket is up."""
    workdir, admin_port = workroot / POD, free_port()
    command = [
        sys.executable,
        "-m",
        "isthmus.agent",
        *("--pod", POD, "--namespace", "default", "--ip", LOOPBACK),
        *("--labels", json.dumps({"app": "web"}), "--workload", "web"),
        *("--xds-socket", str(daemon.xds_socket), "--workdir", str(workdir)),
        *("--zipkin-socket", str(daemon.zipkin_socket)),
        *("--concurrency", "1", "--drain-duration", "0s", "--listen-address", LOOPBACK),
        *("--admin-port", str(admin_port), "--readiness-port", str(free_port())),
        *("--stats-port", str(free_port()), "--metrics-port", str(free_port())),
        "--no-proxy-user",
    ]
    log_path = workroot / "agent.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=log)
    try:
        wait_for(
            lambda: (workdir / "ZIPKIN").exists() or process.poll() is not None,
            timeout=15,
            what="the agent's ZIPKIN socket",
        )
        assert process.poll() is None, log_path.read_text()
        yield workdir, admin_port
    finally:
        process.terminate()
        process.wait(15)
    assert not (workdir / "ZIPKIN").exists()  # removed on the way out


def test_envoys_zipkin_cluster_is_the_agents_socket(agent: tuple[Path, int]) -> None:
    workdir, admin_port = agent
    bootstrap = json.loads((workdir / "envoy-bootstrap.json").read_text())
    assert bootstrap["node"]["metadata"]["ZIPKIN"] == "true"
    clusters: list[str] = []

    def loaded() -> bool:
        try:
            text = httpx.get(f"http://{LOOPBACK}:{admin_port}/clusters", timeout=2).text
        except httpx.TransportError:
            return False
        clusters[:] = [line for line in text.splitlines() if line.startswith("zipkin::")]
        return bool(clusters)

    wait_for(loaded, timeout=15, what="Envoy's zipkin cluster")
    assert any(str(workdir / "ZIPKIN") in line for line in clusters), clusters


def test_spans_posted_to_the_agent_reach_isthmusd(
    agent: tuple[Path, int], daemon: DaemonProcess
) -> None:
    workdir, _ = agent
    spans = [
        {"traceId": TRACE, "id": "00000000000000a1", "kind": "CLIENT", "name": "egress",
         "localEndpoint": {"serviceName": "web.default"}},
        {"traceId": TRACE, "id": "00000000000000a2", "parentId": "00000000000000a1",
         "kind": "SERVER", "name": "ingress", "localEndpoint": {"serviceName": "api.default"}},
    ]  # fmt: skip
    transport = httpx.HTTPTransport(uds=str(workdir / "ZIPKIN"))
    with httpx.Client(transport=transport, base_url="http://zipkin") as envoy_side:
        response = envoy_side.post("/api/v2/spans", json=spans)
    assert response.status_code == 202, response.text
    stored = daemon.client.get(f"/api/v2/trace/{TRACE}").json()
    assert [(s["id"], s["localEndpoint"]["serviceName"]) for s in stored] == [
        ("00000000000000a1", "web.default"),
        ("00000000000000a2", "api.default"),
    ]

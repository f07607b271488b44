"""Real Envoys report spans with their Zipkin tracer to a real isthmusd's collector socket,
and the query API gives them back as traces, correctly parented.

Two static Envoys stand for a client and a server sidecar: `frontend` (an egress
listener, CLIENT spans) routes to `backend` (an ingress listener, SERVER spans), which
routes to a local upstream. Both report, as the sidecars' bootstrap has it, to a
`zipkin` cluster whose one endpoint is a unix socket (a pipe address): here isthmusd's
collector socket itself.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from isthmus.testing.daemon import DaemonProcess, wait_for
from isthmus.testing.envoy import EnvoyProcess, static_proxy_bootstrap
from isthmus.testing.ports import LOOPBACK, free_port
from isthmus.testing.upstream import UpstreamServer

pytestmark = pytest.mark.envoy

ZIPKIN_CONFIG = "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"


def traced_proxy(
    service: str, listen_port: int, upstream_port: int, direction: str, collector: Path
) -> dict[str, Any]:
    """A one-listener Envoy named `service` that traces every request (sampling 100%)."""
    document = static_proxy_bootstrap(listen_port, [upstream_port], cluster="next")
    listener = document["static_resources"]["listeners"][0]
    listener["traffic_direction"] = direction
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    manager["tracing"] = {
        "random_sampling": {"value": 100},
        "provider": {
            "name": "envoy.tracers.zipkin",
            "typed_config": {
                "@type": ZIPKIN_CONFIG,
                "collector_cluster": "zipkin",
                "collector_endpoint": "/api/v2/spans",
                "collector_endpoint_version": "HTTP_JSON",
                "trace_id_128bit": True,
                "shared_span_context": False,
            },
        },
    }
    document["static_resources"]["clusters"].append(
        {
            "name": "zipkin",
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": "zipkin",
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {"endpoint": {"address": {"pipe": {"path": str(collector)}}}}
                        ]
                    }
                ],
            },
        }
    )
    document["node"] = {"id": f"{service}~test", "cluster": service}
    # Report every span at once rather than in batches of 5 (Envoy's default).
    document["layered_runtime"] = {
        "layers": [{"name": "static", "static_layer": {"tracing.zipkin.min_flush_spans": 1}}]
    }
    return document


@dataclass
class TracedPair:
    daemon: DaemonProcess
    frontend: EnvoyProcess
    backend: EnvoyProcess
    port: int

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(f"http://{LOOPBACK}:{self.port}{path}", headers=headers, timeout=10)

    def query(self, path: str, **params: Any) -> Any:
        response = self.daemon.client.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def trace(self, trace_id: str, spans: int) -> list[dict[str, Any]]:
        """The trace once `spans` of its spans arrived (Envoy reports when a request ends)."""
        found: list[dict[str, Any]] = []

        def arrived() -> bool:
            response = self.daemon.client.get(f"/api/v2/trace/{trace_id}")
            found[:] = response.json() if response.status_code == 200 else []
            return len(found) >= spans

        wait_for(arrived, timeout=20, what=f"{spans} spans of trace {trace_id}")
        return found


@pytest.fixture(scope="module")
def pair() -> Iterator[TracedPair]:
    workdir = Path(tempfile.mkdtemp(prefix="isthmus-zk-"))
    daemon = DaemonProcess(workdir / "home").start()
    upstream = UpstreamServer("app").start()
    front_port, back_port = free_port(), free_port()
    collector = daemon.zipkin_socket
    backend = EnvoyProcess(
        traced_proxy("backend", back_port, upstream.port, "INBOUND", collector),
        workdir / "envoy",
        name="backend",
    )
    frontend = EnvoyProcess(
        traced_proxy("frontend", front_port, back_port, "OUTBOUND", collector),
        workdir / "envoy",
        name="frontend",
    )
    try:
        backend.wait_ready()
        frontend.wait_ready()
        yield TracedPair(daemon, frontend, backend, front_port)
    finally:
        frontend.stop()
        backend.stop()
        upstream.stop()
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def by_kind(trace: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {span["kind"]: span for span in trace}
    assert len(kinds) == len(trace), trace
    return kinds


def test_each_request_is_one_trace_with_a_client_and_a_child_server_span(
    pair: TracedPair,
) -> None:
    for path in ("/items/1", "/items/2"):
        assert pair.get(path).status_code == 200

    def two_traces() -> bool:
        traces = pair.query("/api/v2/traces", serviceName="backend", limit=10)
        return sum(1 for t in traces if len(t) == 2) >= 2

    wait_for(two_traces, timeout=20, what="two traces of two spans")
    traces = [t for t in pair.query("/api/v2/traces", serviceName="backend") if len(t) == 2]
    assert pair.query("/api/v2/services") == ["backend", "frontend"]
    for trace in traces[:2]:
        spans = by_kind(trace)
        client, server = spans["CLIENT"], spans["SERVER"]
        trace_id = client["traceId"]
        assert len(trace_id) == 32 and server["traceId"] == trace_id  # 128-bit ids
        assert client["localEndpoint"]["serviceName"] == "frontend"
        assert server["localEndpoint"]["serviceName"] == "backend"
        assert "parentId" not in client  # the request came with no trace context
        assert server["parentId"] == client["id"] != server["id"]
        for span in (client, server):
            assert span["tags"]["http.status_code"] == "200"
            assert span["duration"] > 0
        # The same trace, by id, through the query API.
        by_id = pair.query(f"/api/v2/trace/{trace_id}")
        assert sorted(s["id"] for s in by_id) == sorted([client["id"], server["id"]])
    paths = {by_kind(t)["SERVER"]["tags"].get("http.url", "") for t in traces}
    assert any(p.endswith("/items/1") for p in paths) and any(p.endswith("/items/2") for p in paths)


def test_an_incoming_sampled_b3_context_is_continued(pair: TracedPair) -> None:
    trace_id, caller = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
    headers = {"x-b3-traceid": trace_id, "x-b3-spanid": caller, "x-b3-sampled": "1"}
    assert pair.get("/b3", headers).status_code == 200
    spans = by_kind(pair.trace(trace_id, 2))
    assert spans["CLIENT"]["parentId"] == caller
    assert spans["SERVER"]["parentId"] == spans["CLIENT"]["id"]


def test_the_collector_socket_is_private(pair: TracedPair) -> None:
    assert pair.daemon.zipkin_socket.stat().st_mode & 0o077 == 0


def test_zipkin_port_serves_the_same_api_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    daemon = DaemonProcess(tmp_path / "home", extra_args=["--zipkin-port", str(port)]).start()
    try:
        base = f"http://{LOOPBACK}:{port}/api/v2"
        span = {"traceId": "c" * 32, "id": "1", "localEndpoint": {"serviceName": "ui"}}
        assert httpx.post(f"{base}/spans", json=[span], timeout=5).status_code == 202
        assert httpx.get(f"{base}/services", timeout=5).json() == ["ui"]
        # The same store behind the socket and isthmusd's API.
        assert daemon.client.get("/api/v2/services").json() == ["ui"]
    finally:
        daemon.stop()

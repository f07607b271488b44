"""The ADS server against a real Envoy: config flows, a rejected config is NACKed and
Envoy keeps serving with the previous one, and status shows Envoy's own error text.

Both protocol variants run: State-of-the-World (`GRPC`) and incremental (`DELTA_GRPC`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf.message import Message

from isthmus.pilot.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, PreparedResource, Snapshot
from isthmus.testing.envoy import EnvoyProcess, ads_bootstrap
from isthmus.testing.ports import free_port
from isthmus.testing.protojson import dict_to_message
from isthmus.testing.upstream import UpstreamServer
from isthmus.xds import AdsServer, ProxyStatus

pytestmark = pytest.mark.envoy

NODE_ID = "sidecar~127.0.0.1~xds-itest.default~default.svc.cluster.local"
BACKEND = "outbound|8080||backend.default.svc.cluster.local"
ADS = {"ads": {}, "resource_api_version": "V3"}
_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def backend_cluster(**overrides: Any) -> cluster_pb2.Cluster:
    spec = {
        "name": BACKEND,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": ADS},
        "connect_timeout": "1s",
        **overrides,
    }
    return dict_to_message(spec, cluster_pb2.Cluster())


def backend_assignment(port: int) -> endpoint_pb2.ClusterLoadAssignment:
    address = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
    spec = {
        "cluster_name": BACKEND,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
    }
    return dict_to_message(spec, endpoint_pb2.ClusterLoadAssignment())


def http_listener(port: int) -> listener_pb2.Listener:
    manager = {
        "@type": f"{_HCM}.HttpConnectionManager",
        "stat_prefix": "xds_itest",
        "rds": {"config_source": ADS, "route_config_name": "8080"},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    spec = {
        "name": "127.0.0.1_8080",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }
    return dict_to_message(spec, listener_pb2.Listener())


def backend_routes() -> route_pb2.RouteConfiguration:
    spec = {
        "name": "8080",
        "virtual_hosts": [
            {
                "name": "backend",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": BACKEND}}],
            }
        ],
    }
    return dict_to_message(spec, route_pb2.RouteConfiguration())


class MutableSource:
    """The proxy's whole configuration, replaceable resource by resource."""

    def __init__(self, *messages: Message) -> None:
        self.resources: dict[str, dict[str, PreparedResource]] = {}
        self.put(*messages)

    def put(self, *messages: Message) -> None:
        for message in messages:
            name = getattr(message, "cluster_name", "") or message.name
            prepared = PreparedResource.of(name, message)
            self.resources.setdefault(prepared.type_url, {})[name] = prepared

    def snapshot_for(self, node: base_pb2.Node) -> Snapshot:
        return Snapshot({t: dict(r) for t, r in self.resources.items()})


@dataclass
class Rig:
    source: MutableSource
    server: AdsServer
    envoy: EnvoyProcess
    listen_port: int
    stream: str

    def proxy_status(self) -> ProxyStatus:
        [status] = [s for s in self.server.status() if s.node_id == NODE_ID]
        return status

    async def until(self, what: str, check: Callable[[ProxyStatus], bool]) -> ProxyStatus:
        """Poll the server's status until ``check`` holds (10 s at most)."""
        for _ in range(200):
            statuses = [s for s in self.server.status() if s.node_id == NODE_ID]
            if statuses and check(statuses[0]):
                return statuses[0]
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"{what}: status {self.server.status()}\n{self.envoy.log_text()[-3000:]}"
        )

    async def get(self) -> httpx.Response:
        async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
            return await client.get(f"http://127.0.0.1:{self.listen_port}/hello")


@pytest.fixture(params=["sotw", "delta"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    delta = request.param == "delta"
    upstream = UpstreamServer("backend").start()
    listen_port = free_port()
    source = MutableSource(
        backend_cluster(),
        backend_assignment(upstream.port),
        http_listener(listen_port),
        backend_routes(),
    )
    server = AdsServer(source, debounce_after=0.05, debounce_max=1.0)
    envoy: EnvoyProcess | None = None
    try:
        socket_path = str(tmp_path / "xds.sock")
        await server.start(socket_path)
        bootstrap = ads_bootstrap(NODE_ID, "xds-itest", {}, socket_path, delta, admin_port=0)
        envoy = EnvoyProcess(bootstrap, tmp_path, "sidecar", log_level="info")
        await asyncio.to_thread(envoy.wait_ready, 30.0)
        yield Rig(source, server, envoy, listen_port, request.param)
    finally:
        if envoy is not None:
            await asyncio.to_thread(envoy.stop)
        await server.stop(0)
        upstream.stop()


def all_acked(status: ProxyStatus) -> bool:
    types = status.types
    return all(t in types for t in (CLUSTER, ENDPOINT, LISTENER, ROUTE)) and status.synced


async def test_envoy_nack_keeps_previous_config_and_status_shows_envoys_error(rig: Rig) -> None:
    ready = await rig.until("initial config ACKed", all_acked)
    good_cds = ready.types[CLUSTER].acked_version
    assert ready.stream == rig.stream
    response = await rig.get()
    assert response.status_code == 200
    assert response.headers["x-upstream"] == "backend"

    # Valid protobuf, but Envoy refuses it when applying it: the CLUSTER_PROVIDED load
    # balancer policy needs a cluster type that brings its own balancer; EDS does not.
    rig.source.put(backend_cluster(lb_policy="CLUSTER_PROVIDED"))
    rig.server.request_push("invalid cluster")
    nacked = await rig.until("CDS NACKed", lambda s: s.types[CLUSTER].last_nack is not None)
    cds = nacked.types[CLUSTER]
    assert cds.last_nack is not None
    assert "cluster provided LB specified but cluster" in cds.last_nack.message
    assert BACKEND in cds.last_nack.message
    assert cds.last_nack.version == cds.sent_version
    assert cds.acked_version == good_cds
    assert not cds.pending

    # Envoy still routes with the cluster it accepted before.
    response = await rig.get()
    assert response.status_code == 200
    assert response.headers["x-upstream"] == "backend"

    # The rejected version is not sent again in a loop.
    rejected_nonce = cds.sent_nonce
    await asyncio.sleep(0.5)
    assert rig.proxy_status().types[CLUSTER].sent_nonce == rejected_nonce

    # A valid change is accepted again.
    rig.source.put(backend_cluster(connect_timeout="2s"))
    rig.server.request_push("fixed cluster")
    fixed = await rig.until(
        "fixed CDS ACKed",
        lambda s: s.types[CLUSTER].sent_nonce != rejected_nonce and s.synced,
    )
    assert fixed.types[CLUSTER].acked_version not in (good_cds, cds.sent_version)
    response = await rig.get()
    assert response.status_code == 200

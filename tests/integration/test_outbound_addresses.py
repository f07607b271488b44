"""ServiceEntry `addresses` and Sidecar `egress[].port.protocol` over real connections
through a real Envoy.

The listeners, route configurations, clusters and endpoints are a proxy's own
(`ConfigGenerator.snapshot`), folded into a static bootstrap as for `envoy --mode validate`
(routes inline, EDS clusters static). In a pod, virtualOutbound hands a captured
connection to the listener of its original destination; here each such listener is bound
instead on loopback addresses standing for those destinations (every 127/8 address is
local, so nothing is added to any interface): a CIDR block's listener on one address
inside the block and one outside it.
"""

from __future__ import annotations

import http.client
import json
import socket
import socketserver
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf.message import Message

from isthmus.api.loader import load_documents
from isthmus.model.build import ConfigObject, build_snapshot
from isthmus.model.types import Proxy
from isthmus.pilot import resources
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import Snapshot
from isthmus.testing.envoy import EnvoyProcess
from isthmus.testing.ports import LOOPBACK, free_port
from isthmus.testing.protojson import message_to_dict
from isthmus.testing.upstream import UpstreamServer
from isthmus.testing.validate import validation_bootstrap

pytestmark = pytest.mark.envoy

NAMESPACE = "production"
GUARD_S = 10.0
PROXY = Proxy(
    id=f"sidecar~10.44.0.9~client.{NAMESPACE}~{NAMESPACE}.svc.cluster.local",
    namespace=NAMESPACE,
    labels=(("app", "client"),),
)


def _snapshot(config: str) -> Snapshot:
    loaded = load_documents(config, "outbound-addresses.yaml")
    mesh = build_snapshot(
        ConfigObject(o.resource, created_revision=i) for i, o in enumerate(loaded, start=1)
    )
    return ConfigGenerator().snapshot(mesh, PROXY)


def _unpacked(snapshot: Snapshot, type_url: str, message: type[Message]) -> list[Any]:
    out = []
    for resource in snapshot.of_type(type_url).values():
        unpacked = message()
        resource.any.Unpack(unpacked)
        out.append(unpacked)
    return out


def _bootstrap(snapshot: Snapshot, binds: Mapping[str, list[tuple[str, int]]]) -> dict[str, Any]:
    """The snapshot as a static bootstrap, with only the listeners of `binds`, each bound
    on its (address, port) pairs."""
    listeners = _unpacked(snapshot, resources.LISTENER, listener_pb2.Listener)
    folded = message_to_dict(
        validation_bootstrap(
            listeners=[lst for lst in listeners if lst.name in binds],
            clusters=_unpacked(snapshot, resources.CLUSTER, cluster_pb2.Cluster),
            routes=_unpacked(snapshot, resources.ROUTE, route_pb2.RouteConfiguration),
            endpoints=_unpacked(snapshot, resources.ENDPOINT, endpoint_pb2.ClusterLoadAssignment),
        )
    )
    static = folded["static_resources"]
    for listener in static["listeners"]:
        (first, *others) = binds[listener["name"]]
        listener["address"] = _address(*first)
        listener["additional_addresses"] = [{"address": _address(*a)} for a in others]
        listener.pop("bind_to_port", None)
    assert sorted(lst["name"] for lst in static["listeners"]) == sorted(binds)
    return {"static_resources": static}


def _address(ip: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": ip, "port_value": port}}


@contextmanager
def _envoy(
    tmp_path: Path, name: str, snapshot: Snapshot, binds: Mapping[str, list[tuple[str, int]]]
) -> Iterator[EnvoyProcess]:
    with EnvoyProcess(_bootstrap(snapshot, binds), tmp_path, name) as envoy:
        envoy.wait_ready()
        yield envoy


class _Greeter(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"partners\n")


@pytest.fixture
def greeter() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer((LOOPBACK, 0), _Greeter)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _greeting(address: str, port: int) -> bytes:
    """What the destination says first; b"" when Envoy closes the connection."""
    with socket.create_connection((address, port), timeout=GUARD_S) as sock:
        return sock.makefile("rb").readline()


def test_cidr_and_every_address_reach_the_entry_under_registry_only(
    tmp_path: Path, greeter: int
) -> None:
    port = free_port()
    snapshot = _snapshot(f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: partners, namespace: {NAMESPACE}}}
spec:
  hosts: [db.partners.example.com]
  addresses: [127.77.0.0/16, 127.78.0.5]
  ports: [{{number: {port}, name: tcp, protocol: TCP}}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{{address: {LOOPBACK}, ports: {{tcp: {greeter}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: {NAMESPACE}}}
spec: {{outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}}}
""")
    binds = {
        # Inside the block, and outside it (127.79/16 is registered nowhere).
        f"0.0.0.0_{port}": [("127.77.1.2", port), ("127.79.0.1", port)],
        f"127.78.0.5_{port}": [("127.78.0.5", port)],
    }
    with _envoy(tmp_path, "addresses", snapshot, binds) as envoy:
        assert _greeting("127.77.1.2", port) == b"partners\n"
        assert _greeting("127.78.0.5", port) == b"partners\n"
        assert _greeting("127.79.0.1", port) == b""  # REGISTRY_ONLY: the black hole
        assert envoy.stat("cluster.BlackHoleCluster.upstream_cx_none_healthy") >= 1
        cluster = f"outbound|{port}||db.partners.example.com"
        assert envoy.stat(f"cluster.{cluster}.upstream_cx_total") == 2


def _vault(egress_protocol: str | None, upstream: UpstreamServer) -> Snapshot:
    sidecar = ""
    if egress_protocol is not None:
        sidecar = f"""---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: {NAMESPACE}}}
spec:
  egress:
  - port: {{number: 7000, protocol: {egress_protocol}}}
    hosts: ["./*"]
  - hosts: ["./*"]
"""
    return _snapshot(f"""
apiVersion: v1
kind: Service
metadata: {{name: vault, namespace: {NAMESPACE}}}
spec:
  clusterIP: 10.96.0.21
  selector: {{app: vault}}
  ports: [{{name: tcp, port: 7000}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: vault-1, namespace: {NAMESPACE}}}
spec: {{address: {LOOPBACK}, labels: {{app: vault}}, ports: {{tcp: {upstream.port}}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vault, namespace: {NAMESPACE}}}
spec:
  hosts: [vault]
  http:
  - match: [{{uri: {{prefix: /teapot}}}}]
    fault: {{abort: {{httpStatus: 418, percentage: {{value: 100}}}}}}
    route: [{{destination: {{host: vault}}}}]
  - route: [{{destination: {{host: vault}}}}]
{sidecar}""")


def _get(port: int, path: str) -> tuple[int, str]:
    """Status and answering upstream of GET `path` to vault:7000 through `port`."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=GUARD_S)
    try:
        connection.request("GET", path, headers={"Host": "vault:7000"})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    upstream = json.loads(body).get("server", "") if response.status == 200 else ""
    return response.status, upstream


def test_egress_protocol_http_routes_a_tcp_service(tmp_path: Path) -> None:
    """`vault` declares TCP: without a Sidecar its VIP listener proxies bytes, so the
    VirtualService's HTTP fault never applies; with an egress listener of protocol HTTP
    on 7000 the port is HTTP and the fault does."""
    upstream = UpstreamServer("vault").start()
    try:
        as_tcp = _vault(None, upstream)
        port = free_port()
        with _envoy(tmp_path, "tcp", as_tcp, {"10.96.0.21_7000": [(LOOPBACK, port)]}):
            assert _get(port, "/teapot") == (200, "vault")
        as_http = _vault("HTTP", upstream)
        assert "10.96.0.21_7000" not in as_http.of_type(resources.LISTENER)
        port = free_port()
        with _envoy(tmp_path, "http", as_http, {"0.0.0.0_7000": [(LOOPBACK, port)]}):
            assert _get(port, "/teapot") == (418, "")
            assert _get(port, "/") == (200, "vault")
    finally:
        upstream.stop()

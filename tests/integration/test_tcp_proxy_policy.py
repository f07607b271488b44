"""DestinationRule settings on the tcp_proxy of TCP services, in a real Envoy.

The tcp_proxy filters are isthmus's own translation (`generate_outbound_listeners` for a
TCP Service and its DestinationRule), each put on a static listener on loopback in front
of static clusters of small TCP servers that greet with their name and then echo. As in
Istio (networkfilter.go): connectionPool.tcp.idleTimeout closes an idle connection,
maxConnectionDuration closes even a busy one, and consistentHash.useSourceIp pins every
connection from one client to one endpoint of a RING_HASH cluster, where without the hash
Envoy picks a random endpoint per connection. Envoy's tcp_proxy counters name the reason
each connection was closed.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from isthmus.api.loader import load_documents
from isthmus.model.build import ConfigObject, build_snapshot
from isthmus.pilot.envoy.tcp_proxy import TCP_PROXY_FILTER
from isthmus.pilot.generators.listeners import generate_outbound_listeners
from isthmus.testing.daemon import wait_for
from isthmus.testing.envoy import EnvoyProcess
from isthmus.testing.ports import LOOPBACK, free_port
from isthmus.testing.protojson import message_to_dict

pytestmark = pytest.mark.envoy

NAMESPACE = "production"
PORT = 5432
GUARD_S = 30.0  # guards a hung socket only; nothing waits for it to pass
CONNECTIONS = 20  # random picks among 2 endpoints agree by chance with p = 2**-19

# Each Service gets its own DestinationRule; cluster IPs only name the listeners.
RULES = {
    "idle": "connectionPool: {tcp: {idleTimeout: 1s}}",
    "lifetime": "connectionPool: {tcp: {maxConnectionDuration: 1s}}",
    "sticky": "loadBalancer: {consistentHash: {useSourceIp: true}}",
    "random": "connectionPool: {tcp: {maxConnections: 100}}",
}
# The endpoints of each Service's cluster (the hashed ones have two, on a ring).
ENDPOINTS = {"idle": ["a"], "lifetime": ["a"], "sticky": ["a", "b"], "random": ["a", "b"]}


def _config() -> str:
    documents = []
    for position, name in enumerate(RULES, start=1):
        documents.append(f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  clusterIP: 10.96.0.{position}
  ports: [{{name: tcp-db, port: {PORT}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  host: {name}
  trafficPolicy: {{{RULES[name]}}}
""")
    return "---".join(documents)


def _tcp_proxies() -> dict[str, dict[str, Any]]:
    """The tcp_proxy config isthmus gives each Service's outbound listener, by Service."""
    loaded = load_documents(_config(), "tcp-proxy-policy.yaml")
    mesh = build_snapshot(
        ConfigObject(o.resource, created_revision=i) for i, o in enumerate(loaded, start=1)
    )
    listeners = {lst.name: lst for lst in generate_outbound_listeners(mesh, NAMESPACE)}
    out = {}
    for position, name in enumerate(RULES, start=1):
        (chain,) = listeners[f"10.96.0.{position}_{PORT}"].filter_chains
        (tcp,) = [f for f in chain.filters if f.name == TCP_PROXY_FILTER]
        out[name] = message_to_dict(tcp)
    return out


class _Greeter(socketserver.BaseRequestHandler):
    """Says its server's name, then echoes until the peer closes."""

    def handle(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        self.request.sendall(server.name.encode() + b"\n")
        while data := self.request.recv(4096):
            self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: str) -> None:
        super().__init__((LOOPBACK, 0), _Greeter)
        self.name = name
        self.port: int = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@dataclass
class _Proxy:
    envoy: EnvoyProcess
    ports: dict[str, int]  # listener port by Service
    stat_prefixes: dict[str, str]

    def connect(self, name: str) -> tuple[socket.socket, str]:
        """A connection through Service `name`'s tcp_proxy and the endpoint's greeting."""
        sock = socket.create_connection((LOOPBACK, self.ports[name]), timeout=GUARD_S)
        greeting = sock.makefile("rb").readline().decode().strip()
        return sock, greeting

    def closed_by(self, name: str, reason: str) -> int:
        return self.envoy.stat(f"tcp.{self.stat_prefixes[name]}.{reason}", default=0)


def _bootstrap(
    filters: dict[str, dict[str, Any]], ports: dict[str, int], servers: dict[str, _Server]
) -> dict[str, Any]:
    listeners, clusters = [], []
    for name, tcp in filters.items():
        listeners.append(
            {
                "name": name,
                "address": {"socket_address": {"address": LOOPBACK, "port_value": ports[name]}},
                "filter_chains": [{"filters": [tcp]}],
            }
        )
        hashed = len(ENDPOINTS[name]) > 1
        endpoints = [
            {
                "endpoint": {
                    "address": {
                        "socket_address": {"address": LOOPBACK, "port_value": servers[e].port}
                    }
                }
            }
            for e in ENDPOINTS[name]
        ]
        cluster = tcp["typed_config"]["cluster"]
        clusters.append(
            {
                "name": cluster,
                "type": "STATIC",
                "connect_timeout": "1s",
                "lb_policy": "RING_HASH" if hashed else "ROUND_ROBIN",
                "load_assignment": {
                    "cluster_name": cluster,
                    "endpoints": [{"lb_endpoints": endpoints}],
                },
            }
        )
    return {"static_resources": {"listeners": listeners, "clusters": clusters}}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Proxy]:
    filters = _tcp_proxies()
    servers = {name: _Server(name) for name in ("a", "b")}
    ports = {name: free_port() for name in filters}
    workdir: Path = tmp_path_factory.mktemp("tcp-proxy-policy")
    try:
        with EnvoyProcess(_bootstrap(filters, ports, servers), workdir, "outbound") as envoy:
            envoy.wait_ready()
            prefixes = {n: f["typed_config"]["stat_prefix"] for n, f in filters.items()}
            yield _Proxy(envoy, ports, prefixes)
    finally:
        for server in servers.values():
            server.stop()


def _wait_closed(sock: socket.socket, keep_busy: bool = False) -> bytes:
    """Read until Envoy closes the connection (b"" at EOF); with `keep_busy`, send a byte
    every 100 ms meanwhile so that the connection is never idle."""
    sock.settimeout(0.1 if keep_busy else GUARD_S)
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        if keep_busy:
            sock.sendall(b".")
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        if not data:
            return data
        if keep_busy:
            time.sleep(0.1)  # pace the bytes (the echo comes back at once)
    raise AssertionError(f"the connection was still open after {GUARD_S}s")


def test_idle_timeout_closes_an_idle_connection(proxy: _Proxy) -> None:
    sock, greeting = proxy.connect("idle")
    with sock:
        assert greeting == "a"
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
        assert _wait_closed(sock) == b""
    wait_for(lambda: proxy.closed_by("idle", "idle_timeout") == 1, what="idle_timeout counted")
    assert proxy.closed_by("idle", "max_downstream_connection_duration") == 0


def test_max_connection_duration_closes_a_busy_connection(proxy: _Proxy) -> None:
    sock, greeting = proxy.connect("lifetime")
    with sock:
        assert greeting == "a"
        assert _wait_closed(sock, keep_busy=True) == b""
    reason = "max_downstream_connection_duration"
    wait_for(lambda: proxy.closed_by("lifetime", reason) == 1, what=f"{reason} counted")
    assert proxy.closed_by("lifetime", "idle_timeout") == 0


def _endpoints_reached(proxy: _Proxy, name: str) -> set[str]:
    reached = set()
    for _ in range(CONNECTIONS):
        sock, greeting = proxy.connect(name)
        sock.close()
        reached.add(greeting)
    return reached


def test_source_ip_hash_pins_every_connection_to_one_endpoint(proxy: _Proxy) -> None:
    assert len(_endpoints_reached(proxy, "sticky")) == 1


def test_without_the_hash_connections_spread_over_the_ring(proxy: _Proxy) -> None:
    """The control: the same RING_HASH cluster, a tcp_proxy without hash_policy."""
    assert _endpoints_reached(proxy, "random") == {"a", "b"}

"""A DestinationRule change reaches the tcp_proxy of cached outbound listeners.

The outbound listeners are a cached view (pilot.views); since a TCP chain's tcp_proxy reads
the DestinationRule of its destination, a rule that is added, changed or removed must
rebuild them, and the result must equal a build from scratch.
"""

from __future__ import annotations

from _build import mesh_from_yaml
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Proxy
from isthmus.pilot.envoy.tcp_proxy import TCP_PROXY_FILTER
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import LISTENER

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: db, namespace: production}
spec:
  clusterIP: 10.96.1.5
  ports: [{name: tcp-pg, port: 5432}]
"""


def rule(policy: str) -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: db, namespace: production}}
spec: {{host: db, trafficPolicy: {policy}}}
"""


def tcp_proxy(
    generator: ConfigGenerator, mesh: MeshSnapshot, proxy: Proxy
) -> tcp_proxy_pb2.TcpProxy:
    resource = generator.snapshot(mesh, proxy).of_type(LISTENER)["10.96.1.5_5432"]
    listener = listener_pb2.Listener()
    resource.any.Unpack(listener)
    (chain,) = listener.filter_chains
    (found,) = [f for f in chain.filters if f.name == TCP_PROXY_FILTER]
    config = tcp_proxy_pb2.TcpProxy()
    found.typed_config.Unpack(config)
    return config


def test_rule_changes_rebuild_the_tcp_proxy_as_from_scratch() -> None:
    generator = ConfigGenerator()
    steps = [
        ("", None, False),
        (rule("{connectionPool: {tcp: {idleTimeout: 30s}}}"), 30, False),
        (rule("{loadBalancer: {consistentHash: {useSourceIp: true}}}"), None, True),
        ("", None, False),
    ]
    for documents, idle_seconds, hashed in steps:
        mesh, proxy = mesh_from_yaml(SERVICE + documents)
        cached = tcp_proxy(generator, mesh, proxy)
        assert cached == tcp_proxy(ConfigGenerator(), mesh, proxy)
        idle = cached.idle_timeout.seconds if cached.HasField("idle_timeout") else None
        assert (idle, bool(cached.hash_policy)) == (idle_seconds, hashed)

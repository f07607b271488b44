"""TLS passthrough on a gateway: the client's TLS goes, by SNI, to the destination of the
VirtualService `tls` route matching it; and a TCP server, to its `tcp` route's."""

from __future__ import annotations

from _build import mesh_from_yaml
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from isthmus.api.loader import load_documents
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import LISTENER, ROUTE, Snapshot
from isthmus.testing.validate import validate_snapshot

CONFIG = """\
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: default}
spec:
  clusterIP: 10.96.0.30
  ports: [{name: https, port: 443}]
---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: default}
spec:
  clusterIP: 10.96.0.31
  ports: [{name: tls, port: 8443}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mygateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    tls: {mode: PASSTHROUGH}
    hosts: [nginx.example.com, legacy.example.com, "*.other.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nginx, namespace: default}
spec:
  hosts: [nginx.example.com]
  gateways: [mygateway]
  tls:
  - match:
    - port: 443
      sniHosts: [nginx.example.com]
    route:
    - destination: {host: nginx, port: {number: 443}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: legacy, namespace: default}
spec:
  hosts: [legacy.example.com]
  gateways: [mygateway]
  tls:
  - match:
    - sniHosts: [legacy.example.com]
      gateways: [other-gateway]   # not this gateway: no chain
    route:
    - destination: {host: legacy}
  - match:
    - sniHosts: [legacy.example.com]
    route:
    - destination: {host: legacy}
      weight: 80
    - destination: {host: nginx, port: {number: 443}}
      weight: 20
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: late-duplicate, namespace: default}
spec:
  hosts: [nginx.example.com]
  gateways: [mygateway]
  tls:
  - match: [{sniHosts: [nginx.example.com]}]
    route: [{destination: {host: legacy}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: ["*"]
  gateways: [tcp-gateway]
  tcp:
  - match: [{port: 9999}]   # not the server's port
    route: [{destination: {host: nginx, port: {number: 443}}}]
  - match: [{port: 31400}]
    route: [{destination: {host: legacy, port: {number: 8443}}}]
---
kind: Proxy
namespace: istio-system
labels: {istio: ingressgateway}
router: true
"""


def _snapshot() -> Snapshot:
    mesh, proxy = mesh_from_yaml(CONFIG)
    return ConfigGenerator().snapshot(mesh, proxy)


def _listener(snapshot: Snapshot) -> listener_pb2.Listener:
    out = listener_pb2.Listener()
    snapshot.of_type(LISTENER)["0.0.0.0_443"].any.Unpack(out)
    return out


def _proxy_of(chain: object) -> tcp_proxy_pb2.TcpProxy:
    out = tcp_proxy_pb2.TcpProxy()
    chain.filters[0].typed_config.Unpack(out)  # type: ignore[attr-defined]
    return out


def test_the_config_is_valid_istio_yaml() -> None:
    config = CONFIG[: CONFIG.index("kind: Proxy")]
    assert len(load_documents(config, "passthrough.yaml")) == 8


def test_a_chain_per_sni_to_the_tls_routes_destination_untouched() -> None:
    listener = _listener(_snapshot())

    chains = {tuple(c.filter_chain_match.server_names): c for c in listener.filter_chains}
    assert set(chains) == {("nginx.example.com",), ("legacy.example.com",)}
    assert all(not c.HasField("transport_socket") for c in chains.values())  # not terminated
    nginx = _proxy_of(chains[("nginx.example.com",)])
    assert nginx.cluster == "outbound|443||nginx.default.svc.cluster.local"  # the oldest wins
    legacy = _proxy_of(chains[("legacy.example.com",)])
    weighted = [(c.name, c.weight) for c in legacy.weighted_clusters.clusters]
    assert weighted == [
        ("outbound|8443||legacy.default.svc.cluster.local", 80),
        ("outbound|443||nginx.default.svc.cluster.local", 20),
    ]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]


def test_a_tcp_server_proxies_to_the_first_applicable_tcp_route() -> None:
    listener = listener_pb2.Listener()
    _snapshot().of_type(LISTENER)["0.0.0.0_31400"].any.Unpack(listener)

    (chain,) = listener.filter_chains
    assert _proxy_of(chain).cluster == "outbound|8443||legacy.default.svc.cluster.local"
    assert not listener.listener_filters


def test_a_passthrough_server_has_no_route_configuration() -> None:
    assert not _snapshot().of_type(ROUTE)


def test_envoy_accepts_it() -> None:
    snapshot = _snapshot()
    assert snapshot.consistency_errors() == []
    validate_snapshot(snapshot)

"""ServiceEntry `addresses` in translation, as Istio: a service per (host, address).

TCP ports listen on each IP (`IP_PORT`) and match each CIDR block by destination prefix
on `0.0.0.0_PORT` (Istio's buildSidecarOutboundListener binds a CIDR to the wildcard);
other destinations on that port go to the catch-all, so under REGISTRY_ONLY a registered
block is reachable and the rest of the port is not. HTTP ports route by Host: every IP
address is a domain of the host's virtual host, a block is none.
"""

from __future__ import annotations

from _build import mesh_from_yaml
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from isthmus.pilot.envoy.tcp_proxy import TCP_PROXY_FILTER
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import LISTENER, ROUTE, Snapshot

PROXY = "---\nkind: Proxy\nnamespace: production\nlabels: {app: order}\n"
REGISTRY_ONLY = """---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: production}
spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
"""


def entry(name: str, hosts: str, addresses: str, ports: str, resolution: str = "NONE") -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: production}}
spec:
  hosts: {hosts}
  addresses: {addresses}
  ports: {ports}
  location: MESH_EXTERNAL
  resolution: {resolution}
"""


TCP = "[{number: 5432, name: tcp, protocol: TCP}]"
HTTP = "[{number: 80, name: http, protocol: HTTP}]"


def snapshot(*documents: str) -> Snapshot:
    mesh, proxy = mesh_from_yaml("".join(documents) + PROXY)
    return ConfigGenerator().snapshot(mesh, proxy)


def listener(snap: Snapshot, name: str) -> listener_pb2.Listener:
    message = listener_pb2.Listener()
    snap.of_type(LISTENER)[name].any.Unpack(message)
    return message


def route_config(snap: Snapshot, name: str) -> route_pb2.RouteConfiguration:
    message = route_pb2.RouteConfiguration()
    snap.of_type(ROUTE)[name].any.Unpack(message)
    return message


def cluster_of(chain: lc.FilterChain) -> str:
    (tcp,) = [f for f in chain.filters if f.name == TCP_PROXY_FILTER]
    proxy = tcp_proxy_pb2.TcpProxy()
    tcp.typed_config.Unpack(proxy)
    return proxy.cluster


def prefixes(chain: lc.FilterChain) -> list[str]:
    return [
        f"{r.address_prefix}/{r.prefix_len.value}" for r in chain.filter_chain_match.prefix_ranges
    ]


def test_every_ip_address_of_a_tcp_port_gets_its_listener() -> None:
    snap = snapshot(entry("db", "[db.example.com]", "[192.168.0.9, 192.168.0.10/32]", TCP))
    for address in ("192.168.0.9", "192.168.0.10"):
        found = listener(snap, f"{address}_5432")
        assert found.address.socket_address.address == address
        assert found.bind_to_port.value is False
        (chain,) = found.filter_chains
        assert cluster_of(chain) == "outbound|5432||db.example.com"
    assert "0.0.0.0_5432" not in snap.of_type(LISTENER)  # no block: no wildcard listener


def test_a_cidr_block_is_a_chain_of_the_wildcard_listener() -> None:
    snap = snapshot(
        entry("partners", "[partners.example.com]", "[10.10.0.0/16, 10.20.3.4/24]", TCP),
        entry("other", "[other.example.com]", "[172.16.0.0/12]", TCP),
    )
    wildcard = listener(snap, "0.0.0.0_5432")
    assert wildcard.address.socket_address.address == "0.0.0.0"
    assert [(prefixes(c), cluster_of(c)) for c in wildcard.filter_chains] == [
        (["172.16.0.0/12"], "outbound|5432||other.example.com"),
        (["10.10.0.0/16"], "outbound|5432||partners.example.com"),
        (["10.20.3.0/24"], "outbound|5432||partners.example.com"),
    ]
    # Destinations outside the blocks: Istio's default chain, the catch-all.
    assert cluster_of(wildcard.default_filter_chain) == "PassthroughCluster"
    assert not wildcard.listener_filters  # nothing to sniff


def test_under_registry_only_a_registered_block_is_reachable_and_nothing_else() -> None:
    snap = snapshot(
        entry("partners", "[partners.example.com]", "[10.10.0.0/16]", TCP), REGISTRY_ONLY
    )
    wildcard = listener(snap, "0.0.0.0_5432")
    (chain,) = wildcard.filter_chains
    assert cluster_of(chain) == "outbound|5432||partners.example.com"
    assert cluster_of(wildcard.default_filter_chain) == "BlackHoleCluster"
    assert cluster_of(listener(snap, "virtualOutbound").default_filter_chain) == "BlackHoleCluster"


def test_hosts_sharing_a_block_the_first_host_keeps_it() -> None:
    snap = snapshot(entry("pair", "[b.example.com, a.example.com]", "[10.10.0.0/16]", TCP))
    (chain,) = listener(snap, "0.0.0.0_5432").filter_chains
    assert cluster_of(chain) == "outbound|5432||a.example.com"


def test_a_block_on_an_http_port_keeps_the_port_http_elsewhere() -> None:
    """HTTP services and a TCP block on one port: the block's destinations go to its
    service (the more specific prefix), every other one to the routes."""
    snap = snapshot(
        entry(
            "web",
            "[web.example.com]",
            "[192.168.0.20]",
            "[{number: 5432, name: http, protocol: HTTP}]",
        ),
        entry("partners", "[partners.example.com]", "[10.10.0.0/16]", TCP),
    )
    wildcard = listener(snap, "0.0.0.0_5432")
    http, block = wildcard.filter_chains
    assert not http.filter_chain_match.prefix_ranges and http.filters[-1].name.endswith(
        "http_connection_manager"
    )
    assert (prefixes(block), cluster_of(block)) == (
        ["10.10.0.0/16"],
        "outbound|5432||partners.example.com",
    )
    assert "5432" in snap.of_type(ROUTE)


def test_a_sniffed_block_gets_http_and_tcp_chains_at_its_prefix() -> None:
    snap = snapshot(
        entry("legacy", "[legacy.example.com]", "[10.10.0.0/16]", "[{number: 3000, name: x}]")
    )
    wildcard = listener(snap, "0.0.0.0_3000")
    sniffed, http, tcp = wildcard.filter_chains
    assert not sniffed.filter_chain_match.prefix_ranges
    assert prefixes(http) == prefixes(tcp) == ["10.10.0.0/16"]
    assert list(http.filter_chain_match.application_protocols) == ["http/1.1", "h2c"]
    assert cluster_of(tcp) == "outbound|3000||legacy.example.com"
    assert wildcard.listener_filters[0].name == "envoy.filters.listener.http_inspector"


def test_every_ip_address_is_a_domain_of_an_http_port_a_block_none() -> None:
    snap = snapshot(
        entry(
            "api",
            "[api.example.com]",
            "[192.168.0.9, 10.10.0.0/16, 192.168.0.10]",
            HTTP,
            resolution="STATIC",
        )
    )
    (vhost, _) = route_config(snap, "80").virtual_hosts
    assert list(vhost.domains) == [
        "api.example.com",
        "api.example.com:80",
        "192.168.0.9",
        "192.168.0.9:80",
        "192.168.0.10",
        "192.168.0.10:80",
    ]


def test_destination_subnets_apply_to_a_block_they_cover() -> None:
    """A tcp rule matching destinationSubnets applies to a chain when every destination
    of the chain (an IP, or the whole block) lies in the subnets."""

    def routed(subnet: str) -> str:
        snap = snapshot(
            entry("partners", "[partners.example.com]", "[10.10.0.0/16]", TCP),
            entry("spare", "[spare.example.com]", "[192.168.0.50]", TCP, "STATIC"),
            f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: partners, namespace: production}}
spec:
  hosts: [partners.example.com]
  tcp:
  - match: [{{destinationSubnets: ["{subnet}"]}}]
    route: [{{destination: {{host: spare.example.com}}}}]
""",
        )
        (chain,) = listener(snap, "0.0.0.0_5432").filter_chains
        return cluster_of(chain)

    assert routed("10.0.0.0/8") == "outbound|5432||spare.example.com"
    assert routed("10.10.0.0/16") == "outbound|5432||spare.example.com"
    assert routed("10.10.1.0/24") == "outbound|5432||partners.example.com"
    assert routed("fd00::/8") == "outbound|5432||partners.example.com"

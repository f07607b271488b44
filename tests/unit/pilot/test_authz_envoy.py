"""Every RBAC filter pilot generates is accepted by the real Envoy (`envoy --mode validate`),
on an inbound HTTP chain (HCM) and on a TCP chain, as the inbound listener will carry them."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from _authz import SEED_POLICY, policies, policy
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from isthmus.pilot.authz.rbac import http_rbac_filters, network_rbac_filters
from isthmus.pilot.envoy.http_connection_manager import HCM_FILTER, inline_connection_manager
from isthmus.pilot.envoy.listener import http_chain, socket_address, tcp_chain
from isthmus.pilot.envoy.tcp_proxy import tcp_proxy
from isthmus.pilot.envoy.typed import pack
from isthmus.testing.validate import validate_resources

FULL_SPEC = """
rules:
- from:
  - source:
      principals: [cluster.local/ns/a/sa/b, 'prefix-*', '*-suffix', '*']
      notPrincipals: ['*.local/ns/x/sa/y']
      namespaces: [ns, 'ns-*', '*-ns', '*']
      notNamespaces: [kube.system]
      ipBlocks: [1.2.3.4, 5.6.0.0/16, '2001:db8::/32']
      notIpBlocks: [9.0.0.1]
      remoteIpBlocks: [192.0.2.0/24]
      notRemoteIpBlocks: ['2001:db8::1']
  - source: {serviceAccounts: [order-service, other/cart], notServiceAccounts: [legacy]}
  to:
  - operation:
      hosts: [exact.com, '*.suffix.com', 'prefix.*', '*']
      notHosts: [Admin.Example.com]
      ports: ['80', '0', '65535']
      notPorts: ['8000']
      methods: [GET, 'P*', '*T', '*']
      notMethods: [DELETE]
      paths: [/exact, '/prefix/*', '*/suffix', '*', '/path/{*}/x', '/{**}/template']
      notPaths: [/not, '/admin/{**}']
  when:
  - {key: 'request.headers[X-Header]', values: [h, 'h-*', '*-h', '*'], notValues: [n]}
  - {key: source.ip, values: [10.10.10.10, 192.168.10.0/24]}
  - {key: remote.ip, notValues: [10.0.0.1]}
  - {key: source.namespace, values: [ns]}
  - {key: source.principal, values: [cluster.local/ns/a/sa/b, '*']}
  - {key: source.serviceAccount, values: [a/b]}
  - {key: destination.ip, values: [10.10.10.10, 'fd00::/8']}
  - {key: destination.port, values: ['91']}
  - {key: connection.sni, values: [exact.com, '*.suffix.com', 'prefix.*', '*']}
- {}
"""
DRY_RUN = '  annotations: {istio.io/dry-run: "true"}\n'

CORPUS: dict[str, str] = {
    "seed": SEED_POLICY,
    "full-allow": policy(FULL_SPEC),
    "full-deny": policy("action: DENY" + FULL_SPEC),
    "full-audit": policy("action: AUDIT" + FULL_SPEC),
    "allow-nothing": policy("{}"),
    "allow-all": policy("rules: [{}]"),
    "every-action-and-dry-run": (
        policy("action: DENY\nrules: [{to: [{operation: {paths: [/admin]}}]}]", "deny")
        + "---\n"
        + policy("action: DENY\nrules: [{}]", "deny-trial", extra_meta=DRY_RUN)
        + "---\n"
        + policy("rules: [{}]", "allow-trial", extra_meta=DRY_RUN)
        + "---\n"
        + policy("action: AUDIT\nrules: [{}]", "audit")
        + "---\n"
        + policy("{}", "mesh", "istio-system")
    ),
    "only-dry-run": policy("rules: [{}]", extra_meta=DRY_RUN),
}


def inbound_listener(
    http_filters: Sequence[hcm.HttpFilter], network_filters: Sequence[lc.Filter]
) -> listener_pb2.Listener:
    """An inbound-like listener: RBAC first on an HTTP chain and on a TCP chain."""
    manager = hcm.HttpConnectionManager()
    inline_connection_manager(
        "inbound_0.0.0.0_8080", route_pb2.RouteConfiguration(name="inbound|8080||")
    ).typed_config.Unpack(manager)
    existing = list(manager.http_filters)
    del manager.http_filters[:]
    manager.http_filters.extend([*http_filters, *existing])
    listener = listener_pb2.Listener(
        name="virtualInbound", address=socket_address("0.0.0.0", 15006)
    )
    http = http_chain("inbound_http", lc.Filter(name=HCM_FILTER, typed_config=pack(manager)))
    http.filter_chain_match.destination_port.value = 8080
    tcp = tcp_chain("inbound_tcp", tcp_proxy("inbound|5432||", "inbound|5432||"), port=5432)
    proxy = list(tcp.filters)
    del tcp.filters[:]
    tcp.filters.extend([*network_filters, *proxy])
    listener.filter_chains.extend([http, tcp])
    return listener


@pytest.mark.envoy
@pytest.mark.parametrize("case", sorted(CORPUS))
@pytest.mark.parametrize(
    ("trust_domain", "aliases"), [("cluster.local", ()), ("example.org", ("old.td",))]
)
def test_envoy_accepts_the_filters(case: str, trust_domain: str, aliases: tuple[str, ...]) -> None:
    entries = policies(CORPUS[case])
    http_filters = http_rbac_filters(entries, trust_domain, aliases)
    network_filters = network_rbac_filters(entries, trust_domain, aliases)
    assert http_filters and network_filters

    validate_resources(listeners=[inbound_listener(http_filters, network_filters)])

"""Which VirtualService routes a host for a proxy, and what happens when none does.

Istio's rules for sidecars: mesh-bound and exported VirtualServices only; short hosts
relative to the VirtualService's namespace; exact hosts (oldest first, the first that
yields routes for the proxy wins) before the most specific wildcard; a VirtualService
with no rule for this proxy and port leaves the service its default route.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

import yaml
from _build import mesh_from_yaml

from isthmus.api.networking import VirtualService
from isthmus.model.snapshot import ConfigEntry, MeshSnapshot
from isthmus.model.types import Proxy
from isthmus.pilot.generators.routes import service_routes, vs_routes
from isthmus.pilot.virtual_service import (
    VirtualServiceIndex,
    applies_to_mesh,
    virtual_service_index,
    visible_virtual_services,
)

INVENTORY = "inventory-service.production.svc.cluster.local"
PRICING = "pricing.production.svc.cluster.local"
SUFFIX = "cluster.local"

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: inventory-service, namespace: production}
spec:
  clusterIP: 10.96.0.12
  selector: {app: inventory}
  ports: [{name: http, port: 8080}, {name: http-admin, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: pricing, namespace: production}
spec:
  clusterIP: 10.96.0.13
  selector: {app: pricing}
  ports: [{name: http, port: 8080}]
"""


def _vs(name: str, namespace: str, spec: str) -> str:
    return (
        "---\napiVersion: networking.istio.io/v1beta1\nkind: VirtualService\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n"
    )


def _mesh(*virtual_services: str) -> tuple[MeshSnapshot, Proxy]:
    return mesh_from_yaml(SERVICES + "".join(virtual_services))


def _for(
    host: str,
    candidates: Sequence[ConfigEntry[VirtualService]],
    known: Collection[str] = (),
) -> list[ConfigEntry[VirtualService]]:
    """The VirtualServices Istio tries for `host`, in order."""
    return VirtualServiceIndex(candidates, SUFFIX, known).for_host(host)


def _first(
    host: str,
    candidates: Sequence[ConfigEntry[VirtualService]],
    known: Collection[str] = (),
) -> ConfigEntry[VirtualService] | None:
    found = _for(host, candidates, known)
    return found[0] if found else None


def _names(entries: list[ConfigEntry[VirtualService]]) -> list[str]:
    return [e.name for e in entries]


def _route_names(mesh: MeshSnapshot, proxy: Proxy, host: str, port: int = 8080) -> list[str]:
    svc = mesh.services.get(host)
    assert svc is not None
    index = virtual_service_index(mesh, proxy.namespace)
    return [r.name for r in service_routes(svc, mesh, proxy, port, index)]


ROUTE_ALL = "{hosts: [%s], http: [{name: %s, route: [{destination: {host: %s}}]}]}"


def _catch_all(name: str, host: str, namespace: str = "production") -> str:
    return _vs(name, namespace, ROUTE_ALL % (host, name, host))


def test_gateways_decide_whether_a_virtual_service_is_for_the_mesh() -> None:
    def vs(gateways: str) -> VirtualService:
        return VirtualService.model_validate(
            yaml.safe_load(_vs("v", "production", f"{{hosts: [a], gateways: {gateways}}}"))
        )

    assert applies_to_mesh(vs("[]"))
    assert applies_to_mesh(vs("[mesh]"))
    assert applies_to_mesh(vs("[mesh, istio-system/ingress]"))
    assert not applies_to_mesh(vs("[istio-system/ingress]"))


def test_export_to_limits_who_sees_a_virtual_service() -> None:
    mesh, _ = _mesh(
        _vs("everyone", "production", "{hosts: [a]}"),
        _vs("own-namespace", "production", "{hosts: [a], exportTo: [.]}"),
        _vs("for-shop", "production", "{hosts: [a], exportTo: [shop]}"),
        _vs("ingress", "production", "{hosts: [a], gateways: [istio-system/ingress]}"),
    )
    assert _names(list(visible_virtual_services(mesh, "production"))) == [
        "everyone",
        "own-namespace",
    ]
    assert _names(list(visible_virtual_services(mesh, "shop"))) == ["everyone", "for-shop"]
    assert _names(list(visible_virtual_services(mesh, "other"))) == ["everyone"]


def test_exact_hosts_oldest_first_and_before_any_wildcard() -> None:
    mesh, _ = _mesh(
        _vs("wild", "production", "{hosts: ['*.production.svc.cluster.local']}"),
        _vs("older", "production", "{hosts: [inventory-service]}"),
        _vs("newer", "production", f"{{hosts: [{INVENTORY}]}}"),
    )
    candidates = visible_virtual_services(mesh, "production")
    assert _names(_for(INVENTORY, candidates)) == ["older", "newer"]
    found = _first(INVENTORY, candidates)
    assert found is not None and found.name == "older"
    # No exact VirtualService for pricing: the wildcard.
    assert _names(_for(PRICING, candidates)) == ["wild"]


def test_most_specific_wildcard_wins_then_the_oldest() -> None:
    mesh, _ = _mesh(
        _vs("svc", "production", "{hosts: ['*.svc.cluster.local']}"),
        _vs("ns-old", "production", "{hosts: ['*.production.svc.cluster.local']}"),
        _vs("ns-new", "production", "{hosts: ['*.production.svc.cluster.local']}"),
        _vs("local", "production", "{hosts: ['*.local']}"),
    )
    candidates = visible_virtual_services(mesh, "production")
    assert _names(_for(PRICING, candidates)) == ["ns-old"]
    assert _for("api.example.com", candidates) == []


def test_short_hosts_are_relative_to_the_virtual_service_namespace() -> None:
    mesh, _ = _mesh(_vs("elsewhere", "shop", "{hosts: [inventory-service]}"))
    candidates = visible_virtual_services(mesh, "production")
    assert _for(INVENTORY, candidates) == []
    shop = "inventory-service.shop.svc.cluster.local"
    assert _names(_for(shop, candidates)) == ["elsewhere"]


def test_first_exact_virtual_service_with_routes_for_the_proxy_wins() -> None:
    mesh, proxy = _mesh(
        _vs(
            "billing-only",
            "production",
            "{hosts: [inventory-service], http: [{name: billing, match: [{sourceLabels: "
            "{app: billing}}], route: [{destination: {host: inventory-service}}]}]}",
        ),
        _catch_all("everyone", "inventory-service"),
    )
    order = replace(proxy, labels=(("app", "order"),))
    billing = replace(proxy, labels=(("app", "billing"),))
    assert _route_names(mesh, order, INVENTORY) == ["everyone"]
    assert _route_names(mesh, billing, INVENTORY) == ["billing"]


def test_no_rule_for_the_proxy_means_the_default_route_not_a_404() -> None:
    mesh, proxy = _mesh(
        _vs(
            "other-namespace-only",
            "production",
            "{hosts: [inventory-service], http: [{name: shop, match: [{sourceNamespace: shop}],"
            " route: [{destination: {host: inventory-service}}]}]}",
        ),
        # The wildcard is not a fallback for a host named exactly elsewhere.
        _catch_all("wild", "'*.production.svc.cluster.local'"),
    )
    assert _route_names(mesh, proxy, INVENTORY) == ["default"]
    shop_proxy = replace(proxy, namespace="shop")
    assert _route_names(mesh, shop_proxy, INVENTORY) == ["shop"]


def test_port_matches_select_rules_per_listener_port() -> None:
    mesh, proxy = _mesh(
        _vs(
            "by-port",
            "production",
            "{hosts: [inventory-service], http: ["
            "{name: admin, match: [{port: 9080}],"
            " route: [{destination: {host: inventory-service}}]},"
            "{name: api, match: [{port: 8080, uri: {prefix: /api}}],"
            " route: [{destination: {host: inventory-service}}]}]}",
        )
    )
    assert _route_names(mesh, proxy, INVENTORY, 9080) == ["admin"]
    # On 8080 only /api is routed; other paths get no route (Istio adds no fallback).
    assert _route_names(mesh, proxy, INVENTORY, 8080) == ["api"]


def test_mesh_gateway_matches_ignore_source_labels() -> None:
    """Istio's sourceMatchHTTP: with gateways in a match, sourceLabels are not consulted."""
    mesh, proxy = _mesh(
        _vs(
            "gw",
            "production",
            "{hosts: [inventory-service], http: ["
            "{name: mesh, match: [{gateways: [mesh], sourceLabels: {app: nobody}}],"
            " route: [{destination: {host: inventory-service}}]}]}",
        )
    )
    assert _route_names(mesh, proxy, INVENTORY) == ["mesh"]


def test_match_for_another_gateway_never_applies_to_a_sidecar() -> None:
    mesh, proxy = _mesh(
        _vs(
            "gw",
            "production",
            "{hosts: [inventory-service], http: ["
            "{name: ingress, match: [{gateways: [istio-system/ingress]}],"
            " route: [{destination: {host: inventory-service}}]},"
            "{name: rest, route: [{destination: {host: inventory-service}}]}]}",
        )
    )
    assert _route_names(mesh, proxy, INVENTORY) == ["rest"]


def test_routes_stop_at_the_first_catch_all() -> None:
    mesh, proxy = _mesh(
        _vs(
            "catch",
            "production",
            "{hosts: [inventory-service], http: [{name: first, match: ["
            "{uri: {prefix: /a}}, {uri: {prefix: /}}, {uri: {prefix: /never}}],"
            " route: [{destination: {host: inventory-service}}]},"
            "{name: unreachable, route: [{destination: {host: inventory-service}}]}]}",
        )
    )
    entry = _first(INVENTORY, visible_virtual_services(mesh, "production"))
    assert entry is not None
    names = [r.name for r in vs_routes(entry, mesh, proxy, 8080)]
    assert names == ["first.match[0]", "first.match[1]"]


def test_namespace_qualified_hosts_resolve_to_the_service() -> None:
    """`name.ns` and `name.ns.svc` name the service when no service is called that
    literally (beyond Istio, which takes them literally; a Kubernetes resolver expands them)."""
    mesh, proxy = _mesh(
        _vs(
            "by-ns",
            "other",
            "{hosts: [inventory-service.production], http: [{route: "
            "[{destination: {host: pricing.production.svc, subset: v1}}]}]}",
        )
    )
    candidates = visible_virtual_services(mesh, "production")
    found = _first(INVENTORY, candidates, mesh.services.by_host)
    assert found is not None and found.name == "by-ns"
    assert _first(INVENTORY, candidates) is None  # literal without known hosts
    index = virtual_service_index(mesh, "production")
    routes = service_routes(mesh.services.get(INVENTORY), mesh, proxy, 8080, index)  # type: ignore[arg-type]
    assert routes[0].route.cluster == f"outbound|8080|v1|{PRICING}"

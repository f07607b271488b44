"""RDS for a gateway pod: route configuration `http.PORT` of a port's plaintext servers, or
an HTTPS server's own (Istio's buildGatewayHTTPRouteConfig).

For each server on the port, the VirtualServices bound to its Gateway (by `gateways`,
visible to the gateway pod's namespace by exportTo) are matched against the server's hosts;
each host both name (the more specific of the two, when one is a wildcard) gets a virtual
host with the routes of every such VirtualService, oldest first, catch-all routes last.
Unlike sidecars, a gateway merges several VirtualServices for one host. A server with
`tls.httpsRedirect` makes its hosts' virtual hosts answer 301 to https. With nothing to
serve, one virtual host answers every request with 404, as Istio's `blackhole:PORT`.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf import wrappers_pb2

from isthmus.api.networking import VirtualService
from isthmus.model.hosts import host_matches
from isthmus.model.snapshot import ConfigEntry, MeshSnapshot, is_exported_to
from isthmus.model.types import Proxy
from isthmus.pilot.gateway.servers import GatewayServer
from isthmus.pilot.generators.routes import (
    MAX_DIRECT_RESPONSE_BODY_BYTES,
    HashPolicyLookup,
    is_catch_all,
    resolve_gateway_name,
    vs_routes,
)
from isthmus.pilot.virtual_service import resolved_hosts


def bound_virtual_services(
    mesh: MeshSnapshot, proxy_namespace: str, gateway: str
) -> list[ConfigEntry[VirtualService]]:
    """VirtualServices naming `gateway` (`namespace/name`) that the gateway pod's namespace
    may use, oldest first (Istio's VirtualServicesForGateway)."""
    return [
        e
        for e in mesh.virtual_services
        if any(resolve_gateway_name(g, e.namespace) == gateway for g in e.resource.spec.gateways)
        and is_exported_to(e.resource.spec.export_to or ["*"], e.namespace, proxy_namespace)
    ]


def intersect_hosts(server_hosts: Sequence[str], vs_hosts: Sequence[str]) -> list[str]:
    """Istio's host.Names.Intersection: for each pair where one covers the other, the
    more specific one, once, in order."""
    out: list[str] = []
    for server_host in server_hosts:
        for vs_host in vs_hosts:
            if host_matches(vs_host, server_host):
                found = server_host
            elif host_matches(server_host, vs_host):
                found = vs_host
            else:
                continue
            if found.lower() not in out:
                out.append(found.lower())
    return out


def gateway_route_config(
    name: str,
    mesh: MeshSnapshot,
    proxy: Proxy,
    port: int,
    servers: Sequence[GatewayServer],
    hash_lookup: HashPolicyLookup,
) -> route_pb2.RouteConfiguration:
    """Route configuration `name` (`http.PORT`, or one HTTPS server's) for the gateway pod
    `proxy`, from `servers`."""
    vhosts: dict[str, rc.VirtualHost] = {}
    built: dict[tuple[str, str, str], list[rc.Route]] = {}
    for item in servers:
        redirect = item.server.tls is not None and item.server.tls.https_redirect
        for entry in bound_virtual_services(mesh, proxy.namespace, item.gateway):
            hosts = intersect_hosts(
                item.hosts_for(entry.namespace),
                resolved_hosts(entry, mesh.config.domain_suffix, mesh.services.by_host),
            )
            if not hosts:
                continue
            key = (item.gateway, entry.namespace, entry.name)
            if key not in built:
                gateways = frozenset({item.gateway})
                built[key] = vs_routes(entry, mesh, proxy, port, hash_lookup, gateways)
            for host in hosts:
                vhost = vhosts.setdefault(host, _virtual_host(host, port))
                vhost.routes.extend(built[key])
                if redirect:
                    vhost.require_tls = rc.VirtualHost.ALL
        if redirect:
            for host in item.hosts_for_any_namespace():
                vhosts.setdefault(host, _virtual_host(host, port)).require_tls = rc.VirtualHost.ALL
    for vhost in vhosts.values():
        routes = list(vhost.routes)
        del vhost.routes[:]
        vhost.routes.extend([r for r in routes if not is_catch_all(r)])
        vhost.routes.extend([r for r in routes if is_catch_all(r)])
    out = sorted(vhosts.values(), key=lambda v: v.name)
    if not out:
        out = [rc.VirtualHost(name=f"blackhole:{port}", domains=["*"])]
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=out,
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        ignore_port_in_host_matching=True,
        max_direct_response_body_size_bytes=wrappers_pb2.UInt32Value(
            value=MAX_DIRECT_RESPONSE_BODY_BYTES
        ),
    )


def _virtual_host(host: str, port: int) -> rc.VirtualHost:
    return rc.VirtualHost(name=f"{host}:{port}", domains=[host], include_request_attempt_count=True)

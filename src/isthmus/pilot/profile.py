"""Compose the per-type generators into one proxy's Snapshot, sharing work across proxies.

Most of a sidecar's config depends only on its SidecarScope (outbound clusters, listeners,
endpoints: the namespace and the Sidecar that applies, which proxies of a namespace share
unless a workload-specific Sidecar picks them) or on its scope and labels (routes, when
some VirtualService uses sourceLabels). Those parts are built and packed once per view
key, kept across mesh versions while the mesh fields they were built from are unchanged
(pilot.views), and the same PreparedResource objects are handed to every proxy that
shares the view. Where locality load balancing makes endpoints depend on where a proxy
is (pilot.locality_lb), the endpoint view (and the outbound clusters, when DNS clusters
are ranked) is keyed by the part of the proxy's place the scope's clusters read, and
nothing more.
Generators run in a fixed order; a failure names the generator that failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf.message import Message

from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Proxy
from isthmus.pilot.consistency import dangling_references, listener_rds_names
from isthmus.pilot.destination_rule import DestinationRuleIndex, route_consistent_hash
from isthmus.pilot.envoy.load_balancer import hash_policy_for
from isthmus.pilot.gateway.listeners import gateway_listeners
from isthmus.pilot.gateway.routes import gateway_route_config
from isthmus.pilot.gateway.servers import is_gateway_route, servers_by_route
from isthmus.pilot.generators.clusters import (
    PlacedCluster,
    eds_cluster_names,
    generate_inbound_clusters,
    inbound_ports,
    outbound_clusters,
)
from isthmus.pilot.generators.endpoints import AssignmentInputs, endpoint_inputs
from isthmus.pilot.generators.inbound_listener import generate_inbound_listener
from isthmus.pilot.generators.listeners import (
    generate_http_proxy_listener,
    generate_outbound_listeners,
)
from isthmus.pilot.generators.routes import (
    generate_http_proxy_route_config,
    generate_port_route_config,
)
from isthmus.pilot.locality_lb import LocalityNeeds, ProxyPlace
from isthmus.pilot.naming import parse_cluster_name
from isthmus.pilot.resources import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    Layer,
    Layers,
    PreparedResource,
    Snapshot,
)
from isthmus.pilot.sidecar_scope import SidecarScope, default_scope, sidecar_scope
from isthmus.pilot.telemetry.connection import ProxyTelemetry
from isthmus.pilot.telemetry.policy import proxy_telemetry
from isthmus.pilot.views import Memo, Views
from isthmus.pilot.virtual_service import visible_virtual_services

V = TypeVar("V")


CAPTURE_LISTENERS = frozenset({"virtualOutbound", "virtualInbound"})


class GeneratorError(Exception):
    """A generator failed for a proxy; the message names the generator and the proxy."""


@dataclass(frozen=True)
class _OutboundParts:
    """A scope's outbound clusters: the shared ones packed, the EDS names among them, the
    DNS clusters finished per place, and what of a proxy's place they (and the EDS
    assignments) read."""

    shared: Layer
    eds_names: list[str]
    placed: tuple[PlacedCluster, ...]
    needs: LocalityNeeds


def _prepare(messages: Iterable[Message]) -> Layer:
    out = {}
    for m in messages:
        # ClusterLoadAssignment is named by cluster_name; every other type by name.
        name = m.cluster_name if isinstance(m, ClusterLoadAssignment) else m.name  # type: ignore[attr-defined]
        out[name] = PreparedResource.of(name, m)
    return Layer(out)


class ConfigGenerator:
    """Builds Snapshots for proxies from the current MeshSnapshot (pure, cached)."""

    def __init__(self) -> None:
        self.views = Views()
        self._assignments: Memo[AssignmentInputs, PreparedResource] = Memo(self.views)

    def snapshot(self, mesh: MeshSnapshot, proxy: Proxy) -> Snapshot:
        """The proxy's Snapshot. Proxies with the same view (namespace, labels, served ports,
        explicit proxy port, capture) get the very same Snapshot object: its versions are
        hashed once and its resources packed once, however many pods share it."""
        views = self.views
        mesh = views.bind(mesh)
        key = (
            "snapshot",
            proxy.sds,
            proxy.namespace,
            proxy.labels,
            proxy.inbound_ports,
            proxy.http_proxy_port,
            proxy.capture,
            proxy.zipkin,
            proxy.locality,
            proxy.router,
            proxy.published_ports,
            proxy.host_netns,
        )
        return views.get(key, lambda: self._build(views, mesh, proxy))

    def _build(self, views: Views, mesh: MeshSnapshot, proxy: Proxy) -> Snapshot:
        steps: Sequence[tuple[str, Callable[[], Layers]]] = (
            ("clusters", lambda: self._clusters(views, mesh, proxy)),
            ("listeners", lambda: self._listeners(views, mesh, proxy)),
        )
        out: dict[str, Layers] = {}
        for name, step in steps:
            try:
                out[CLUSTER if name == "clusters" else LISTENER] = step()
            except Exception as exc:
                raise GeneratorError(
                    f"generator {name} failed for proxy {proxy.id}: {exc!r}"
                ) from exc
        for name, type_url, step in (
            ("endpoints", ENDPOINT, lambda: self._endpoints(views, mesh, proxy)),
            ("routes", ROUTE, lambda: self._routes(views, mesh, proxy, out[LISTENER])),
        ):
            try:
                out[type_url] = step()
            except Exception as exc:
                raise GeneratorError(
                    f"generator {name} failed for proxy {proxy.id}: {exc!r}"
                ) from exc
        snapshot = Snapshot(resources=out)
        errors = self._consistency(views, mesh, proxy, snapshot)
        if errors:
            raise GeneratorError(f"inconsistent snapshot for proxy {proxy.id}: {'; '.join(errors)}")
        return snapshot

    def _consistency(
        self, views: Views, mesh: MeshSnapshot, proxy: Proxy, snapshot: Snapshot
    ) -> list[str]:
        """The shared consistency check, fed with the names each cached view already knows,
        so nothing is unpacked per proxy. Which EDS clusters lack an assignment is found
        once per pair of shared cluster and endpoint layers, not per proxy."""
        outbound, eds_names = self._cds(views, mesh, proxy)
        assignments = snapshot.of_type(ENDPOINT)
        assert isinstance(assignments, Layers)
        unassigned = views.get(
            ("eds-unassigned", outbound.digest, assignments.digest),
            lambda: [name for name in eds_names if name not in assignments],
        )
        return dangling_references(
            snapshot,
            rds_by_listener=self._rds_by_listener(views, snapshot.of_type(LISTENER)),
            eds_clusters=unassigned,
        )

    def _rds_by_listener(
        self, views: Views, listeners: Mapping[str, PreparedResource]
    ) -> dict[str, frozenset[str]]:
        return {
            name: views.get(("rds-names", res.version), lambda res=res: listener_rds_names(res))  # type: ignore[misc]
            for name, res in listeners.items()
        }

    # --- clusters ------------------------------------------------------------------

    def _scope(self, views: Views, mesh: MeshSnapshot, proxy: Proxy) -> SidecarScope:
        """The Sidecar scope of the proxy: a hashable value that keys its outbound views.
        A gateway pod sees every service exported to its namespace (Sidecars do not apply
        to gateways, as in Istio)."""
        if proxy.router:
            return views.get(
                ("gateway-scope", proxy.namespace),
                lambda: default_scope(mesh, proxy.namespace),
            )
        return views.get(
            ("sidecar-scope", proxy.namespace, proxy.labels),
            lambda: sidecar_scope(mesh, proxy.namespace, proxy.labels),
        )

    def _cds(self, views: Views, mesh: MeshSnapshot, proxy: Proxy) -> tuple[Layer, list[str]]:
        """The scope's outbound clusters for the proxy's place, packed, and the EDS ones
        among them: the shared layer itself unless DNS clusters are ranked by place."""
        parts = self._outbound_parts(views, mesh, proxy)
        if not parts.placed:
            return parts.shared, parts.eds_names
        scope = self._scope(views, mesh, proxy)
        place = self._place(parts, proxy)

        def placed() -> Layer:
            # Fetched inside the build, so that what it read is what this view depends on.
            built = self._outbound_parts(views, mesh, proxy)
            here = place or ProxyPlace()
            return Layer({**built.shared, **_prepare(c.at(here) for c in built.placed)})

        return views.get(("cds-placed", scope, proxy.sds, place), placed), parts.eds_names

    def _outbound_parts(self, views: Views, mesh: MeshSnapshot, proxy: Proxy) -> _OutboundParts:
        scope = self._scope(views, mesh, proxy)

        def build() -> _OutboundParts:
            rules = _rules(views, mesh)
            found = outbound_clusters(mesh, proxy.namespace, rules, proxy.sds, scope=scope)
            return _OutboundParts(
                _prepare(found.shared),
                eds_cluster_names(found.shared),
                tuple(found.placed),
                found.needs,
            )

        return views.get(("cds", scope, proxy.sds), build)

    def _place(self, parts: _OutboundParts, proxy: Proxy) -> ProxyPlace | None:
        """The part of the proxy's place its scope's clusters read: a view key."""
        return ProxyPlace.of(proxy).narrowed(parts.needs)

    def _clusters(self, views: Views, mesh: MeshSnapshot, proxy: Proxy) -> Layers:
        outbound, _ = self._cds(views, mesh, proxy)
        if proxy.router:
            return Layers(outbound)
        ports = proxy.inbound_ports
        # Everything a build uses is fetched inside it, so its reads are its dependencies.
        inbound = views.get(
            ("cds-in", proxy.namespace, proxy.labels, ports),
            lambda: _prepare(
                generate_inbound_clusters(
                    ports,
                    inbound_ports(mesh, proxy, _rules(views, mesh)),
                    mesh.config.connect_timeout,
                )
            ),
        )
        return Layers(outbound, inbound)

    def _endpoints(self, views: Views, mesh: MeshSnapshot, proxy: Proxy) -> Layers:
        place = self._place(self._outbound_parts(views, mesh, proxy), proxy)
        return Layers(
            views.get(
                ("eds", self._scope(views, mesh, proxy), place),
                lambda: Layer(
                    {
                        inputs.cluster_name: self._assignments.get(inputs, _prepare_assignment)
                        for inputs in endpoint_inputs(
                            mesh,
                            proxy.namespace,
                            self._outbound_parts(views, mesh, proxy).eds_names,
                            _rules(views, mesh),
                            place,
                        )
                    }
                ),
            )
        )

    # --- listeners and routes -------------------------------------------------------

    def _labels_key(
        self, views: Views, mesh: MeshSnapshot, proxy: Proxy
    ) -> tuple[tuple[str, str], ...]:
        uses = views.get(
            ("uses-source-labels", proxy.namespace),
            lambda: _uses_source_labels(mesh, proxy.namespace),
        )
        return proxy.labels if uses else ()

    def _telemetry(self, views: Views, mesh: MeshSnapshot, proxy: Proxy) -> ProxyTelemetry:
        return views.get(
            ("telemetry", proxy.namespace, proxy.labels, proxy.zipkin),
            lambda: proxy_telemetry(mesh, proxy),
        )

    def _listeners(self, views: Views, mesh: MeshSnapshot, proxy: Proxy) -> Layers:
        labels = self._labels_key(views, mesh, proxy)
        telemetry = self._telemetry(views, mesh, proxy)
        if proxy.router:
            return Layers(
                views.get(
                    (
                        "lds-gateway",
                        proxy.namespace,
                        proxy.labels,
                        proxy.published_ports,
                        proxy.host_netns,
                        telemetry.client,
                    ),
                    lambda: _prepare(gateway_listeners(mesh, proxy, telemetry)),
                )
            )
        scope = self._scope(views, mesh, proxy)
        outbound = views.get(
            ("lds", scope, labels, telemetry.client),
            lambda: _prepare(
                generate_outbound_listeners(
                    mesh, proxy.namespace, dict(labels), telemetry, scope=scope
                )
            ),
        )
        inbound = views.get(
            ("lds-in", proxy.namespace, proxy.inbound_ports, proxy.labels, proxy.sds, telemetry),
            lambda: _prepare(
                [generate_inbound_listener(mesh, proxy, sds=proxy.sds, telemetry=telemetry)]
            ),
        )
        layers = [outbound, inbound]
        if not proxy.capture:
            # Nothing is redirected to this proxy: bind no capture ports (15001/15006).
            layers = [
                views.get(
                    ("lds-no-capture", scope, labels, telemetry.client),
                    lambda: Layer(
                        {n: r for n, r in outbound.items() if n not in CAPTURE_LISTENERS}
                    ),
                )
            ]
        if proxy.http_proxy_port:
            port = proxy.http_proxy_port
            layers.append(
                views.get(
                    ("lds-proxy", port, telemetry.client),
                    lambda: _prepare([generate_http_proxy_listener(port, telemetry)]),
                )
            )
        return Layers(*layers)

    def _routes(
        self,
        views: Views,
        mesh: MeshSnapshot,
        proxy: Proxy,
        listeners: Layers,
    ) -> Layers:
        labels = self._labels_key(views, mesh, proxy)
        scope = self._scope(views, mesh, proxy)

        def hashes() -> Callable[[str], Sequence[rc.RouteAction.HashPolicy]]:
            # A new lookup per route configuration: it reads the mesh as routes are built,
            # so it must not outlive the build (see pilot.views).
            return _hash_lookup(mesh, proxy.namespace, _rules(views, mesh))

        wanted = set().union(*self._rds_by_listener(views, listeners).values())
        out: list[Layer] = []
        for name in sorted(wanted):
            if is_gateway_route(name):
                out.append(
                    views.get(
                        ("rds-gateway", proxy.namespace, proxy.labels, name),
                        lambda name=name: _prepare(
                            [_gateway_route_config(name, mesh, proxy, hashes())]
                        ),  # type: ignore[misc]
                    )
                )
            elif name.isdigit():
                port = int(name)
                out.append(
                    views.get(
                        ("rds", scope, labels, port),
                        lambda port=port: _prepare(
                            [generate_port_route_config(mesh, proxy, port, hashes(), scope)]
                        ),  # type: ignore[misc]
                    )
                )
            else:
                out.append(
                    views.get(
                        ("rds-proxy", scope, labels),
                        lambda: _prepare(
                            [generate_http_proxy_route_config(mesh, proxy, hashes(), scope)]
                        ),
                    )
                )
        return Layers(*out)


def _gateway_route_config(
    name: str,
    mesh: MeshSnapshot,
    proxy: Proxy,
    hashes: Callable[[str], Sequence[rc.RouteAction.HashPolicy]],
) -> route_pb2.RouteConfiguration:
    port, servers = servers_by_route(mesh, proxy).get(name, (0, []))
    return gateway_route_config(name, mesh, proxy, port, servers, hashes)


def _prepare_assignment(inputs: AssignmentInputs) -> PreparedResource:
    return PreparedResource.of(inputs.cluster_name, inputs.build())


def _uses_source_labels(mesh: MeshSnapshot, namespace: str) -> bool:
    for entry in visible_virtual_services(mesh, namespace):
        spec = entry.resource.spec
        if any(m.source_labels for r in spec.http for m in r.match):
            return True
        if any(m.source_labels for r in spec.tcp for m in r.match):
            return True
    return False


def _rules(views: Views, mesh: MeshSnapshot) -> DestinationRuleIndex:
    return views.get(("dr-index",), lambda: DestinationRuleIndex.of(mesh))


def _hash_lookup(
    mesh: MeshSnapshot, namespace: str, index: DestinationRuleIndex
) -> Callable[[str], Sequence[rc.RouteAction.HashPolicy]]:
    memo: dict[str, Sequence[rc.RouteAction.HashPolicy]] = {}

    def lookup(cluster: str) -> Sequence[rc.RouteAction.HashPolicy]:
        if cluster not in memo:
            key = parse_cluster_name(cluster)
            svc = mesh.services.get(key.hostname) if key else None
            if key is None or svc is None:
                memo[cluster] = ()
            else:
                rule = index.lookup(key.hostname, svc.namespace, namespace)
                consistent = route_consistent_hash(rule, key.port, key.subset or None)
                memo[cluster] = hash_policy_for(consistent) if consistent else ()
        return memo[cluster]

    return lookup

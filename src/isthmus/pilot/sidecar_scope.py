"""Which services a sidecar sees outbound: Istio's SidecarScope.

The Sidecar that applies to a proxy is, as in Istio: the oldest Sidecar of the proxy's
namespace whose workloadSelector matches its labels, else the oldest Sidecar of its
namespace without a selector, else the oldest Sidecar of the root namespace without a
selector, else none (every service exported to the namespace is visible, and the mesh's
outboundTrafficPolicy applies).

A scope is a small hashable value, so views keyed by it are shared by every proxy the
same Sidecar (or none) applies to. Hosts are imported as Istio's egress listeners do:
`ns/host` with `.` the proxy's namespace, `*` any namespace and `~` none; a namespace
named explicitly takes precedence over `*/...`. A listener with a port imports services
only on that port and owns that port's outbound listener, built with the listener's
protocol for every host it imports (unset: sniffed, as Istio's protocol.Parse("")); the
catch-all listener (no port) imports on every other port. Clusters are the union of what
the listeners import, plus the destinations of the VirtualServices they import (Istio's
CDS does the same), with the services' own protocols.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from isthmus.api.networking import VirtualService
from isthmus.api.sidecar import OutboundTrafficPolicyMode, Sidecar
from isthmus.model.hosts import host_matches, resolve_config_host
from isthmus.model.protocol import parse_protocol
from isthmus.model.snapshot import ConfigEntry, MeshSnapshot
from isthmus.model.types import Protocol, Service
from isthmus.pilot.virtual_service import resolved_hosts, visible_virtual_services

Import = tuple[str, str]  # (namespace or "*", host pattern)


@dataclass(frozen=True)
class EgressListener:
    """One egress listener: its port (None for the catch-all), its imports, and the
    protocol of its port: Istio's protocol.Parse of `port.protocol`, so an unset one is
    UNSUPPORTED (sniffed); None for the catch-all."""

    port: int | None
    imports: tuple[Import, ...]
    protocol: Protocol | None = None

    def imports_host(self, namespace: str, hostname: str) -> bool:
        """Istio's selectServices: `namespace/...` imports if present, else `*/...`."""
        explicit = [h for ns, h in self.imports if ns == namespace]
        patterns = explicit or [h for ns, h in self.imports if ns == "*"]
        return any(host_matches(p, hostname) for p in patterns)

    def imports_virtual_service(self, namespace: str, hosts: Iterable[str]) -> bool:
        """Istio's SelectVirtualServices: a VirtualService host meets an import of the
        VirtualService's namespace (or `*`), in either direction for wildcards."""
        patterns = [h for ns, h in self.imports if ns in (namespace, "*")]
        return any(
            host_matches(p, host) or host_matches(host, p) for host in hosts for p in patterns
        )


@dataclass(frozen=True)
class SidecarScope:
    """What a proxy sees outbound. `egress` None is Istio's default scope (`*/*`)."""

    namespace: str
    egress: tuple[EgressListener, ...] | None = None
    registry_only: bool = False
    # "namespace/name" of the Sidecar, for messages; not part of the scope's identity, so
    # equal scopes of different Sidecars share their views.
    sidecar: str = field(default="", compare=False)

    def listener_for(self, port: int) -> EgressListener | None:
        """The listener that owns `port`: the one with that port, else the catch-all."""
        if self.egress is None:
            return None
        for listener in self.egress:
            if listener.port == port:
                return listener
        return next((listener for listener in self.egress if listener.port is None), None)

    def port_protocols(self) -> dict[int, Protocol]:
        """The protocol of each port a port-specific listener owns: Istio builds that
        port's outbound listener with it for every host the listener imports, whatever
        the services declare (their clusters keep the services' own protocol)."""
        if self.egress is None:
            return {}
        return {
            listener.port: listener.protocol
            for listener in self.egress
            if listener.port is not None and listener.protocol is not None
        }

    def sees(self, service: Service, port: int) -> bool:
        """Whether outbound listeners and routes of `port` include `service`."""
        if self.egress is None:
            return True
        listener = self.listener_for(port)
        return listener is not None and listener.imports_host(service.namespace, service.hostname)

    def has_cluster(self, service: Service, port: int) -> bool:
        """Whether some listener imports `service` on `port` (CDS is their union)."""
        if self.egress is None:
            return True
        return any(
            listener.port in (None, port)
            and listener.imports_host(service.namespace, service.hostname)
            for listener in self.egress
        )


def default_scope(mesh: MeshSnapshot, namespace: str) -> SidecarScope:
    """The scope of a proxy no Sidecar applies to: everything, the mesh's policy."""
    return SidecarScope(namespace, registry_only=_mesh_registry_only(mesh))


def _mesh_registry_only(mesh: MeshSnapshot) -> bool:
    return mesh.config.outbound_traffic_policy == OutboundTrafficPolicyMode.REGISTRY_ONLY.value


def sidecar_scope(
    mesh: MeshSnapshot, namespace: str, labels: Sequence[tuple[str, str]]
) -> SidecarScope:
    """The scope of a proxy in `namespace` with `labels` (see the module docstring)."""
    entry = applicable_sidecar(mesh.sidecars, namespace, dict(labels), mesh.config.root_namespace)
    mesh_registry_only = _mesh_registry_only(mesh)
    if entry is None:
        return SidecarScope(namespace, registry_only=mesh_registry_only)
    spec = entry.resource.spec
    policy = spec.outbound_traffic_policy
    registry_only = (
        mesh_registry_only
        if policy is None
        else policy.mode is OutboundTrafficPolicyMode.REGISTRY_ONLY
    )
    egress = None
    if spec.egress:
        egress = tuple(
            EgressListener(
                listener.port.number if listener.port else None,
                tuple(_import(host, namespace) for host in listener.hosts),
                parse_protocol(listener.port.protocol) if listener.port else None,
            )
            for listener in spec.egress
        )
    return SidecarScope(namespace, egress, registry_only, f"{entry.namespace}/{entry.name}")


def _import(host: str, namespace: str) -> Import:
    ns, _, name = host.partition("/")
    return (namespace if ns == "." else ns, name)


def applicable_sidecar(
    sidecars: Sequence[ConfigEntry[Sidecar]],
    namespace: str,
    labels: dict[str, str],
    root_namespace: str,
) -> ConfigEntry[Sidecar] | None:
    """Workload Sidecar, then namespace Sidecar, then the root namespace's; oldest first
    (entries come oldest first from the model)."""
    own = [e for e in sidecars if e.namespace == namespace]
    for entry in own:
        selector = entry.resource.spec.workload_selector
        if (
            selector is not None
            and selector.labels
            and all(labels.get(k) == v for k, v in selector.labels.items())
        ):
            return entry
    for entry in own:
        if entry.resource.spec.workload_selector is None:
            return entry
    for entry in sidecars:
        if entry.namespace == root_namespace and entry.resource.spec.workload_selector is None:
            return entry
    return None


def outbound_services(mesh: MeshSnapshot, scope: SidecarScope) -> list[Service]:
    """Services exported to the proxy's namespace, trimmed to the ports on which the
    scope's listeners see them (outbound listeners and route configurations), each port a
    port-specific listener owns carrying that listener's protocol."""
    services = _trimmed(mesh.services.visible_to(scope.namespace), scope.sees, scope)
    protocols = scope.port_protocols()
    if not protocols:
        return services
    return [_with_protocols(service, protocols) for service in services]


def _with_protocols(service: Service, protocols: dict[int, Protocol]) -> Service:
    ports = tuple(
        dataclasses.replace(p, protocol=protocols[p.port])
        if p.port in protocols and p.protocol is not protocols[p.port]
        else p
        for p in service.ports
    )
    return service if ports == service.ports else dataclasses.replace(service, ports=ports)


def cluster_services(mesh: MeshSnapshot, scope: SidecarScope) -> list[Service]:
    """Services to build clusters for: what the listeners import on each port, plus the
    destinations of the VirtualServices they import."""
    visible = mesh.services.visible_to(scope.namespace)
    if scope.egress is None:
        return visible
    wanted = _virtual_service_destinations(mesh, scope)

    def keep(service: Service, port: int) -> bool:
        return (
            scope.has_cluster(service, port)
            or (service.hostname, port) in wanted
            or ((service.hostname, None) in wanted)
        )

    return _trimmed(visible, keep, scope)


def _trimmed(
    services: Iterable[Service], keep: Callable[[Service, int], bool], scope: SidecarScope
) -> list[Service]:
    if scope.egress is None:
        return list(services)
    out = []
    for service in services:
        ports = tuple(p for p in service.ports if keep(service, p.port))
        if ports:
            out.append(
                service if ports == service.ports else dataclasses.replace(service, ports=ports)
            )
    return out


def _virtual_service_destinations(
    mesh: MeshSnapshot, scope: SidecarScope
) -> set[tuple[str, int | None]]:
    """(host, port) of every destination of the VirtualServices the scope imports; the
    port is the listener's when the listener has one, else None (every port)."""
    assert scope.egress is not None
    domain_suffix = mesh.config.domain_suffix
    known = mesh.services.by_host
    out: set[tuple[str, int | None]] = set()
    for entry in visible_virtual_services(mesh, scope.namespace):
        hosts = resolved_hosts(entry, domain_suffix, known)
        for listener in scope.egress:
            if listener.imports_virtual_service(entry.namespace, hosts):
                for host in _destination_hosts(entry):
                    resolved = resolve_config_host(host, entry.namespace, known, domain_suffix)
                    out.add((resolved, listener.port))
    return out


def _destination_hosts(entry: ConfigEntry[VirtualService]) -> list[str]:
    """Istio's virtualServiceDestinationHosts: route and mirror destinations."""
    spec = entry.resource.spec
    hosts: list[str] = []
    for http in spec.http:
        hosts.extend(d.destination.host for d in http.route)
        if http.mirror is not None:
            hosts.append(http.mirror.host)
        hosts.extend(m.destination.host for m in http.mirrors)
    for tcp in spec.tcp:
        hosts.extend(d.destination.host for d in tcp.route)
    return hosts

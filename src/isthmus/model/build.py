"""Build the immutable MeshSnapshot from user config objects and running workloads.

This is the one place Kubernetes/Istio object shapes become the platform-neutral model:
Services and ServiceEntry hosts become `Service`s, WorkloadEntries and pods become
`Workload`s, and selectors join them into `Endpoint`s per service port.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from isthmus.api.authorization import AuthorizationPolicy
from isthmus.api.base import Resource
from isthmus.api.core import Namespace
from isthmus.api.core import Service as KubeService
from isthmus.api.gateway import Gateway
from isthmus.api.networking import (
    DestinationRule,
    ServiceEntry,
    ServiceEntryLocation,
    ServiceEntryResolution,
    VirtualService,
    WorkloadEntry,
)
from isthmus.api.request_authentication import RequestAuthentication
from isthmus.api.secret import Secret
from isthmus.api.security import PeerAuthentication
from isthmus.api.sidecar import Sidecar
from isthmus.api.telemetry import Telemetry
from isthmus.model.addresses import normalized_all
from isthmus.model.credentials import SecretIndex
from isthmus.model.hosts import service_fqdn
from isthmus.model.jwks import JwksSource, jwks_sources
from isthmus.model.protocol import parse_protocol, select_protocol
from isthmus.model.snapshot import (
    ConfigEntry,
    EndpointIndex,
    MeshConfig,
    MeshSnapshot,
    ServiceIndex,
)
from isthmus.model.topology import topology_labels, workload_locality
from isthmus.model.types import Endpoint, Resolution, Service, ServicePort, Workload


@dataclass(frozen=True)
class ConfigObject:
    """A parsed user object with the store revision that created it (for precedence)."""

    resource: Resource
    created_revision: int = 0


def build_snapshot(
    objects: Iterable[ConfigObject],
    workloads: Iterable[Workload] = (),
    config: MeshConfig | None = None,
    jwks: Mapping[JwksSource, str | None] | None = None,
) -> MeshSnapshot:
    """Normalize config objects and workloads into a MeshSnapshot with a content version.

    `jwks` holds the key sets fetched for RequestAuthentications; only those the current
    ones name are kept, so a stale entry never changes the version."""
    config = config or MeshConfig()
    objs = sorted(objects, key=_precedence_key)
    all_workloads = list(workloads)
    all_workloads.extend(
        _workload_from_entry(o.resource) for o in objs if isinstance(o.resource, WorkloadEntry)
    )
    by_label = _index_by_label(all_workloads)

    services: dict[str, Service] = {}
    endpoints: dict[tuple[str, int], list[Endpoint]] = defaultdict(list)
    vss: list[ConfigEntry[VirtualService]] = []
    drs: list[ConfigEntry[DestinationRule]] = []
    ses: list[ConfigEntry[ServiceEntry]] = []
    pas: list[ConfigEntry[PeerAuthentication]] = []
    aps: list[ConfigEntry[AuthorizationPolicy]] = []
    ras: list[ConfigEntry[RequestAuthentication]] = []
    telemetries: list[ConfigEntry[Telemetry]] = []
    sidecars: list[ConfigEntry[Sidecar]] = []
    gateways: list[ConfigEntry[Gateway]] = []
    namespaces: set[str] = set()

    for obj in objs:
        res = obj.resource
        ns = res.metadata.namespace or ""
        if isinstance(res, Namespace):
            namespaces.add(res.metadata.name)
        elif isinstance(res, KubeService):
            svc, target_ports = _service_from_kube(res, config)
            # A Kubernetes Service takes its host over from any ServiceEntry, endpoints
            # included (Istio's guard against squatting on a Service's name).
            services[svc.hostname] = svc
            for key in [k for k in endpoints if k[0] == svc.hostname]:
                del endpoints[key]
            _select_endpoints(svc, target_ports, by_label, endpoints)
        elif isinstance(res, ServiceEntry):
            ses.append(ConfigEntry(res.metadata.name, ns, res, obj.created_revision))
            for svc, eps in _services_from_entry(res):
                # First (oldest) definition of a host wins, as in Istio.
                services.setdefault(svc.hostname, svc)
                if services[svc.hostname] is svc:
                    for key, found in eps.items():
                        endpoints[key].extend(found)
        elif isinstance(res, VirtualService):
            vss.append(ConfigEntry(res.metadata.name, ns, res, obj.created_revision))
        elif isinstance(res, DestinationRule):
            drs.append(ConfigEntry(res.metadata.name, ns, res, obj.created_revision))
        elif isinstance(res, PeerAuthentication):
            pas.append(ConfigEntry(res.metadata.name, ns, res, obj.created_revision))
        elif isinstance(res, AuthorizationPolicy):
            aps.append(ConfigEntry(res.metadata.name, ns, res, obj.created_revision))
        elif isinstance(res, RequestAuthentication):
            ras.append(ConfigEntry(res.metadata.name, ns, res, obj.created_revision))
        elif isinstance(res, Telemetry):
            telemetries.append(ConfigEntry(res.metadata.name, ns, res, obj.created_revision))
        elif isinstance(res, Sidecar):
            sidecars.append(ConfigEntry(res.metadata.name, ns, res, obj.created_revision))
        elif isinstance(res, Gateway):
            gateways.append(ConfigEntry(res.metadata.name, ns, res, obj.created_revision))

    if config.service_cidr:
        services = allocate_cluster_ips(services, config.service_cidr)
    frozen_endpoints = {
        key: tuple(sorted(eps, key=lambda e: (e.address, e.port))) for key, eps in endpoints.items()
    }
    snapshot = MeshSnapshot(
        config=config,
        services=ServiceIndex(dict(sorted(services.items()))),
        endpoints=EndpointIndex(frozen_endpoints),
        virtual_services=tuple(vss),
        destination_rules=tuple(drs),
        service_entries=tuple(ses),
        peer_authentications=tuple(pas),
        authorization_policies=tuple(aps),
        request_authentications=tuple(ras),
        telemetries=tuple(telemetries),
        sidecars=tuple(sidecars),
        gateways=tuple(gateways),
        jwks=_referenced_jwks(ras, jwks or {}),
        namespaces=frozenset(namespaces),
        secrets=SecretIndex(o.resource for o in objs if isinstance(o.resource, Secret)),
    )
    return snapshot


def _referenced_jwks(
    policies: Sequence[ConfigEntry[RequestAuthentication]],
    fetched: Mapping[JwksSource, str | None],
) -> dict[JwksSource, str | None]:
    wanted = jwks_sources(entry.resource for entry in policies)
    return {source: fetched[source] for source in wanted if source in fetched}


def allocate_cluster_ips(services: dict[str, Service], cidr: str) -> dict[str, Service]:
    """Give Services without a clusterIP a stable virtual IP from `cidr`.

    The address is a hash of the host name, probed linearly past collisions in creation
    order, so it survives restarts and an older Service keeps its address when a newer one
    collides. The network and broadcast addresses and the first host (the gateway) are
    never handed out; explicit clusterIPs are reserved first.
    """
    network = ipaddress.ip_network(cidr)
    size = network.num_addresses
    taken = {s.address for s in services.values() if s.address}
    out = dict(services)
    for host, svc in services.items():
        if (
            svc.address
            or svc.source_kind != "Service"
            or svc.resolution is not Resolution.CLIENT_SIDE_LB
        ):
            continue
        start = int.from_bytes(hashlib.blake2b(host.encode(), digest_size=8).digest(), "big")
        for probe in range(size):
            offset = (start + probe) % size
            if offset < 2 or offset == size - 1:
                continue
            candidate = str(network[offset])
            if candidate not in taken:
                taken.add(candidate)
                out[host] = replace(svc, address=candidate)
                break
    return out


def _precedence_key(obj: ConfigObject) -> tuple[int, str, str]:
    """Istio orders config by creation time, then namespace/name."""
    meta = obj.resource.metadata
    return (obj.created_revision, meta.namespace or "", meta.name)


def _service_from_kube(
    res: KubeService, config: MeshConfig
) -> tuple[Service, dict[int, int | str | None]]:
    ns = res.metadata.namespace or "default"
    ports: list[ServicePort] = []
    target_ports: dict[int, int | str | None] = {}
    for p in res.spec.ports:
        protocol = select_protocol(p.name, p.app_protocol, p.protocol, p.port)
        target = p.target_port if isinstance(p.target_port, int) else None
        ports.append(
            ServicePort(name=p.name or "", port=p.port, protocol=protocol, target_port=target)
        )
        target_ports[p.port] = p.target_port
    headless = res.spec.cluster_ip == "None"
    svc = Service(
        hostname=service_fqdn(res.metadata.name, ns, config.domain_suffix),
        namespace=ns,
        name=res.metadata.name,
        ports=tuple(ports),
        address=None if headless else res.spec.cluster_ip,
        selector=tuple(sorted(res.spec.selector.items())) if res.spec.selector else None,
        resolution=Resolution.PASSTHROUGH if headless else Resolution.CLIENT_SIDE_LB,
        export_to=_service_export_to(res),
    )
    return svc, target_ports


EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"


def _service_export_to(res: KubeService) -> frozenset[str]:
    """Istio's `networking.istio.io/exportTo` annotation on a Kubernetes Service."""
    raw = res.metadata.annotations.get(EXPORT_TO_ANNOTATION, "")
    targets = frozenset(t.strip() for t in raw.split(",") if t.strip())
    return targets or frozenset({"*"})


# Workloads by (namespace, label, value), in their original order.
LabelIndex = Mapping[tuple[str, str, str], Sequence[Workload]]


def _index_by_label(workloads: Iterable[Workload]) -> LabelIndex:
    """Each workload under every one of its labels: a Service's selector then looks at the
    workloads carrying one of its labels, not at every workload of the mesh (quadratic at
    1000 services)."""
    out: dict[tuple[str, str, str], list[Workload]] = defaultdict(list)
    for wl in workloads:
        for key, value in wl.labels:
            out[wl.namespace, key, value].append(wl)
    return out


def _select_endpoints(
    svc: Service,
    target_ports: dict[int, int | str | None],
    by_label: LabelIndex,
    out: dict[tuple[str, int], list[Endpoint]],
) -> None:
    """Kubernetes' endpoints controller: selector-matching workloads in the namespace."""
    if not svc.selector:
        return
    selector = dict(svc.selector)
    key, value = next(iter(selector.items()))
    for wl in by_label.get((svc.namespace, key, value), ()):
        labels = wl.label_dict
        if not all(labels.get(k) == v for k, v in selector.items()):
            continue
        if not wl.address:
            # A WorkloadEntry with a network and no address is reached only through that
            # network's gateway; isthmus has none, so, as Istio then, it gets no traffic.
            continue
        named = dict(wl.port_map)
        for port in svc.ports:
            target = target_ports.get(port.port)
            if port.name and port.name in named:
                number = named[port.name]
            elif isinstance(target, str):
                if target not in named:
                    continue  # the workload does not expose that named port
                number = named[target]
            elif isinstance(target, int):
                number = target
            else:
                number = port.port
            out[(svc.hostname, port.port)].append(
                Endpoint(
                    address=wl.address,
                    port=number,
                    labels=wl.labels,
                    service_account=wl.service_account,
                    namespace=wl.namespace,
                    ready=wl.ready,
                    weight=wl.weight,
                    workload_name=wl.workload_name,
                    locality=wl.locality,
                )
            )


def _workload_from_entry(res: Resource) -> Workload:
    assert isinstance(res, WorkloadEntry)
    spec = res.spec
    locality = workload_locality(spec.locality, spec.labels)
    return Workload(
        name=res.metadata.name,
        namespace=res.metadata.namespace or "default",
        address=spec.address or "",
        labels=topology_labels(spec.labels, locality, spec.network),
        locality=locality,
        service_account=spec.service_account or "default",
        ready=True,
        port_map=tuple(sorted(spec.ports.items())),
        weight=spec.weight,
        workload_name=res.metadata.name,
    )


_SE_RESOLUTION = {
    ServiceEntryResolution.NONE: Resolution.PASSTHROUGH,
    ServiceEntryResolution.STATIC: Resolution.CLIENT_SIDE_LB,
    ServiceEntryResolution.DNS: Resolution.DNS,
    ServiceEntryResolution.DNS_ROUND_ROBIN: Resolution.DNS,
}


def _services_from_entry(
    res: ServiceEntry,
) -> list[tuple[Service, dict[tuple[str, int], list[Endpoint]]]]:
    """One Service per ServiceEntry host; endpoints from spec.endpoints (or the host for DNS)."""
    spec = res.spec
    ns = res.metadata.namespace or "default"
    ports = tuple(
        ServicePort(
            name=p.name,
            port=p.number,
            protocol=parse_protocol(p.protocol),
            target_port=p.target_port,
        )
        for p in spec.ports
    )
    # Istio makes a service per (host, address), CIDR blocks included; isthmus keeps a
    # host's addresses on its one Service (the listeners and routes use every one).
    addresses = normalized_all(spec.addresses)
    out = []
    for host in spec.hosts:
        svc = Service(
            hostname=host,
            namespace=ns,
            name=host,
            ports=ports,
            address=addresses[0] if addresses else None,
            extra_addresses=addresses[1:],
            selector=None,
            resolution=_SE_RESOLUTION[spec.resolution],
            mesh_external=spec.location == ServiceEntryLocation.MESH_EXTERNAL,
            export_to=frozenset(spec.export_to) if spec.export_to else frozenset({"*"}),
            source_kind="ServiceEntry",
        )
        eps: dict[tuple[str, int], list[Endpoint]] = defaultdict(list)
        for port in ports:
            if spec.endpoints:
                for we in spec.endpoints:
                    if not we.address:
                        continue  # reached only through its network's gateway (see above)
                    number = we.ports.get(port.name, port.target_port or port.port)
                    locality = workload_locality(we.locality, we.labels)
                    eps[(host, port.port)].append(
                        Endpoint(
                            address=we.address,
                            port=number,
                            labels=topology_labels(we.labels, locality, we.network),
                            service_account=we.service_account or "",
                            namespace=ns,
                            weight=we.weight,
                            locality=locality,
                        )
                    )
            elif svc.resolution is Resolution.DNS:
                eps[(host, port.port)].append(
                    Endpoint(
                        address=host,
                        port=port.target_port or port.port,
                        labels=(),
                        service_account="",
                        namespace=ns,
                    )
                )
        out.append((svc, eps))
    return out

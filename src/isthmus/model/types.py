"""Value types of the normalized mesh: services, workloads, endpoints, proxies.

Everything is frozen and hashable so indexes can be content-hashed and views cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from isthmus.model.topology import UNKNOWN_LOCALITY, Locality


class Protocol(StrEnum):
    """Istio's protocol names (protocol selection by port name prefix or appProtocol)."""

    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    GRPC_WEB = "GRPC-Web"
    HTTPS = "HTTPS"
    TLS = "TLS"
    TCP = "TCP"
    MONGO = "Mongo"
    REDIS = "Redis"
    MYSQL = "MySQL"
    UDP = "UDP"
    UNSUPPORTED = "UnsupportedProtocol"

    @property
    def is_http(self) -> bool:
        return self in (Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB)

    @property
    def is_http2(self) -> bool:
        """Istio's IsHTTP2: HTTP/2 to the upstream (gRPC-Web included)."""
        return self in (Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB)


class Resolution(StrEnum):
    """How a client proxy finds a service's endpoints (Istio's model.Resolution)."""

    CLIENT_SIDE_LB = "ClientSideLB"  # EDS
    DNS = "DNS"  # STRICT_DNS / LOGICAL_DNS
    PASSTHROUGH = "Passthrough"  # ORIGINAL_DST


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    protocol: Protocol
    target_port: int | None = None


@dataclass(frozen=True)
class Service:
    """A service by its FQDN host, from a Kubernetes Service or a ServiceEntry host."""

    hostname: str  # inventory-service.production.svc.cluster.local
    namespace: str
    name: str
    ports: tuple[ServicePort, ...]
    # The cluster IP, or a ServiceEntry's first address (an IP, or a CIDR block as
    # `network/prefix`: model.addresses); None for headless and address-less services.
    address: str | None = None
    selector: tuple[tuple[str, str], ...] | None = None  # None: no selector (ServiceEntry)
    resolution: Resolution = Resolution.CLIENT_SIDE_LB
    mesh_external: bool = False
    export_to: frozenset[str] = frozenset({"*"})
    source_kind: str = "Service"
    # A ServiceEntry's further addresses, in the same form (Istio: a service per address).
    extra_addresses: tuple[str, ...] = ()

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address of the service, the first one first."""
        return (self.address, *self.extra_addresses) if self.address else self.extra_addresses


@dataclass(frozen=True)
class Workload:
    """A running instance that can serve traffic: a pod or a WorkloadEntry."""

    name: str
    namespace: str
    address: str
    labels: tuple[tuple[str, str], ...] = ()
    service_account: str = "default"
    ready: bool = True
    # Named ports (WorkloadEntry.ports): service port name -> workload port.
    port_map: tuple[tuple[str, int], ...] = ()
    weight: int | None = None
    # Istio's workload name (the pod's Deployment, a WorkloadEntry's name): telemetry's
    # source_workload/destination_workload. Empty when unknown.
    workload_name: str = ""
    locality: Locality = UNKNOWN_LOCALITY

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class Endpoint:
    """One (workload, service port) pair as Envoy sees it in a ClusterLoadAssignment."""

    address: str
    port: int
    labels: tuple[tuple[str, str], ...]
    service_account: str
    namespace: str
    ready: bool = True
    weight: int | None = None
    workload_name: str = ""
    locality: Locality = UNKNOWN_LOCALITY

    def matches(self, selector: dict[str, str]) -> bool:
        labels = dict(self.labels)
        return all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class Proxy:
    """A connected sidecar as it identifies itself in its Envoy node metadata."""

    id: str  # sidecar~10.44.0.7~order-7d9f.production~production.svc.cluster.local
    namespace: str
    ip: str = "127.0.0.1"
    labels: tuple[tuple[str, str], ...] = ()
    service_account: str = "default"
    workload_name: str = ""
    # Istio's MeshConfig proxyHttpPort: an explicit HTTP proxy listener on 127.0.0.1.
    http_proxy_port: int | None = None
    # Ports the workload serves (inbound); empty for a client-only proxy.
    inbound_ports: tuple[int, ...] = field(default=())
    # Istio's INTERCEPTION_MODE: REDIRECT (iptables capture, the default) or NONE (no
    # capture: no virtualOutbound/virtualInbound listeners are bound, as for a proxy on
    # the host's loopback that apps use explicitly).
    capture: bool = True
    # The proxy's agent serves certificates over SDS (`sds-grpc`). A proxy without one
    # can hold no certificate: it gets no mTLS, and a STRICT port refuses everything.
    sds: bool = False
    # The proxy's bootstrap has the `zipkin` cluster (the agent relays spans to isthmusd's
    # collector): only then can it be given a tracer.
    zipkin: bool = False
    # Where the proxy runs (model.topology.proxy_locality): locality load balancing ranks
    # endpoints by their distance from it.
    locality: Locality = UNKNOWN_LOCALITY
    # A gateway pod's Envoy (Istio's `router` node type), not a sidecar: it gets the
    # listeners of the Gateways that select its labels, and no capture or inbound ones.
    router: bool = False
    # A router's ports published on the host's loopback, (host port, gateway port), and
    # the file naming the host's network namespace, where those listeners open.
    published_ports: tuple[tuple[int, int], ...] = ()
    host_netns: str = ""

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

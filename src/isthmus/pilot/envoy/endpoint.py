"""Mesh endpoints -> Envoy LbEndpoints and ClusterLoadAssignments.

As Istio sends them: only ready endpoints, each HEALTHY with a weight (1 unless the
workload sets one), grouped by locality (region/zone/subzone; one group when no
workload names one), each group weighted by the sum of its endpoints' weights. An endpoint labelled
`security.istio.io/tlsMode` carries it as transport-socket-match metadata, which is how
clusters pick mTLS per endpoint; an endpoint of a known workload carries who it is
(workload, namespace, app, version, canonical names) for the client's telemetry.
Order is by address and port so output is stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeAlias

from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2

from isthmus.model.identity import PeerLabels
from isthmus.model.snapshot import TLS_MODE_LABEL
from isthmus.model.topology import UNKNOWN_LOCALITY, Locality
from isthmus.model.types import Endpoint
from isthmus.pilot.envoy.cluster import ISTIO_METADATA

ClusterLoadAssignment: TypeAlias = endpoint_pb2.ClusterLoadAssignment
LbEndpoint: TypeAlias = endpoint_components_pb2.LbEndpoint
LocalityLbEndpoints: TypeAlias = endpoint_components_pb2.LocalityLbEndpoints
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"
# Whether an endpoint's own PeerAuthentication DISABLEs mTLS on its port: then clients
# must not send it mTLS, whatever its tlsMode label says (Istio's mtlsChecker).
MtlsDisabled: TypeAlias = Callable[[Endpoint], bool]


def serving_endpoints(
    endpoints: Iterable[Endpoint], selector: Mapping[str, str] | None = None
) -> list[Endpoint]:
    """Ready endpoints whose labels match `selector` (a subset's labels), sorted."""
    chosen = [e for e in endpoints if e.ready and e.matches(dict(selector or {}))]
    return sorted(chosen, key=lambda e: (e.address, e.port))


def lb_endpoint(endpoint: Endpoint, mtls_disabled: MtlsDisabled | None = None) -> LbEndpoint:
    out = LbEndpoint(health_status=health_check_pb2.HEALTHY)
    address = out.endpoint.address.socket_address
    address.address = endpoint.address
    address.port_value = endpoint.port
    out.load_balancing_weight.value = endpoint.weight or 1
    labels = dict(endpoint.labels)
    tls_mode = labels.get(TLS_MODE_LABEL)
    if tls_mode and not (mtls_disabled and mtls_disabled(endpoint)):
        out.metadata.filter_metadata[TRANSPORT_SOCKET_MATCH].update({"tlsMode": tls_mode})
    if endpoint.workload_name:
        peer = PeerLabels.of(labels, endpoint.workload_name, endpoint.namespace)
        # Who the endpoint is, for the client's telemetry (destination_workload, ...).
        out.metadata.filter_metadata[ISTIO_METADATA].update(peer.as_dict())
    return out


def group_by_locality(endpoints: Sequence[Endpoint]) -> list[tuple[Locality, list[Endpoint]]]:
    """The endpoints of each locality, in locality order (endpoints keep theirs)."""
    by_locality: dict[Locality, list[Endpoint]] = {}
    for endpoint in endpoints:
        by_locality.setdefault(endpoint.locality, []).append(endpoint)
    ordered = sorted(by_locality, key=lambda loc: (loc.region, loc.zone, loc.subzone))
    return [(locality, by_locality[locality]) for locality in ordered]


def locality_lb_endpoints(
    endpoints: Sequence[Endpoint], mtls_disabled: MtlsDisabled | None = None
) -> list[LocalityLbEndpoints]:
    """One group per locality (`group_by_locality`); none at all when there are no
    endpoints."""
    out = []
    for locality, members in group_by_locality(endpoints):
        group = LocalityLbEndpoints(lb_endpoints=[lb_endpoint(e, mtls_disabled) for e in members])
        if locality != UNKNOWN_LOCALITY:
            group.locality.region = locality.region
            group.locality.zone = locality.zone
            group.locality.sub_zone = locality.subzone
        group.load_balancing_weight.value = sum(
            e.load_balancing_weight.value for e in group.lb_endpoints
        )
        out.append(group)
    return out


def cluster_load_assignment(
    cluster_name: str, endpoints: Sequence[Endpoint], mtls_disabled: MtlsDisabled | None = None
) -> ClusterLoadAssignment:
    """The EDS resource for one cluster; sent even when empty, since Envoy waits for it."""
    return ClusterLoadAssignment(
        cluster_name=cluster_name, endpoints=locality_lb_endpoints(endpoints, mtls_disabled)
    )

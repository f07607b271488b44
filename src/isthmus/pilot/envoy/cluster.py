"""Envoy Cluster skeletons: EDS, DNS, original-destination, static, and Istio's fixed ones.

Each builder sets one aspect; traffic policy aspects (load balancer, connection pool,
outlier detection) live in their own modules and act on a `ClusterDraft`, which keeps the
upstream HTTP protocol options apart until `finish()` packs them, as Envoy reads them
only from `typed_extension_protocol_options`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeAlias

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.core.v3 import protocol_pb2 as core_protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2
from envoy.extensions.network.dns_resolver.cares.v3 import cares_dns_resolver_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, duration_pb2, struct_pb2

from isthmus.model.types import Protocol, Service
from isthmus.pilot.naming import (
    BLACK_HOLE_CLUSTER,
    INBOUND_PASSTHROUGH_CLUSTER,
    PASSTHROUGH_CLUSTER,
)

Cluster: TypeAlias = cluster_pb2.Cluster
HttpProtocolOptions: TypeAlias = http_protocol_options_pb2.HttpProtocolOptions
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
ISTIO_METADATA = "istio"
# Keys of a cluster's `istio` metadata that telemetry reads as destination_service*.
SERVICE_HOST_KEY = "service_host"
SERVICE_NAME_KEY = "service_name"
SERVICE_NAMESPACE_KEY = "service_namespace"
# Istio binds inbound passthrough connections to this address so iptables lets them out.
INBOUND_PASSTHROUGH_BIND = "127.0.0.6"
# Istio's defaults for DNS clusters (MeshConfig.dnsRefreshRate, PILOT_DNS_* features).
DNS_REFRESH_RATE = timedelta(seconds=60)
DNS_JITTER = timedelta(milliseconds=100)
DNS_UDP_MAX_QUERIES = 100
PASSTHROUGH_IDLE_TIMEOUT = timedelta(minutes=5)


def duration(value: timedelta) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromTimedelta(value)
    return out


@dataclass
class ClusterDraft:
    """A cluster under construction plus its upstream HTTP options, packed at the end."""

    cluster: Cluster
    http_options: HttpProtocolOptions | None = None

    def http(self) -> HttpProtocolOptions:
        if self.http_options is None:
            self.http_options = HttpProtocolOptions()
        return self.http_options

    def finish(self) -> Cluster:
        """Pack HTTP options (HTTP/1 when no protocol was chosen) and EDS config."""
        if self.http_options is not None:
            if not self.http_options.HasField("upstream_protocol_options"):
                self.http_options.explicit_http_config.http_protocol_options.SetInParent()
            packed = any_pb2.Any()
            packed.Pack(self.http_options)
            self.cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(packed)
        if self.cluster.type == Cluster.EDS:
            apply_eds_config(self.cluster)
        return self.cluster


def new_cluster(name: str, discovery_type: int) -> ClusterDraft:
    """Istio's buildCluster start: name, discovery type, an empty common LB config."""
    cluster = Cluster(name=name, type=discovery_type)  # type: ignore[arg-type]
    cluster.common_lb_config.SetInParent()
    return ClusterDraft(cluster)


def apply_eds_config(cluster: Cluster) -> None:
    """Endpoints come over ADS, named like the cluster; never wait for the first ones."""
    eds = cluster.eds_cluster_config
    eds.service_name = cluster.name
    eds.eds_config.ads.SetInParent()
    eds.eds_config.initial_fetch_timeout.CopyFrom(duration(timedelta(0)))
    eds.eds_config.resource_api_version = config_source_pb2.V3


def apply_dns_resolution(cluster: Cluster) -> None:
    """Istio's settings for STRICT_DNS clusters: IPv4, c-ares, honour TTLs, jitter."""
    cluster.dns_lookup_family = Cluster.V4_ONLY
    resolver = cares_dns_resolver_pb2.CaresDnsResolverConfig()
    resolver.udp_max_queries.value = DNS_UDP_MAX_QUERIES
    cluster.typed_dns_resolver_config.name = "envoy.network.dns_resolver.cares"
    cluster.typed_dns_resolver_config.typed_config.Pack(resolver)
    cluster.dns_jitter.CopyFrom(duration(DNS_JITTER))
    cluster.dns_refresh_rate.CopyFrom(duration(DNS_REFRESH_RATE))
    cluster.respect_dns_ttl = True


def set_load_assignment(
    cluster: Cluster, endpoints: Iterable[endpoint_components_pb2.LocalityLbEndpoints]
) -> None:
    """Inline endpoints for STATIC and STRICT_DNS clusters."""
    cluster.load_assignment.cluster_name = cluster.name
    cluster.load_assignment.endpoints.extend(endpoints)


def set_h2(draft: ClusterDraft) -> None:
    """Speak HTTP/2 upstream, unless a protocol was already chosen (Istio's setH2Options)."""
    options = draft.http()
    if not options.HasField("upstream_protocol_options"):
        options.explicit_http_config.http2_protocol_options.SetInParent()


def set_use_downstream_protocol(draft: ClusterDraft) -> None:
    """Use the client's HTTP version upstream (useClientProtocol, sniffed ports)."""
    options = draft.http()
    http1 = core_protocol_pb2.Http1ProtocolOptions()
    if options.explicit_http_config.HasField("http_protocol_options"):
        http1.CopyFrom(options.explicit_http_config.http_protocol_options)
    config = options.use_downstream_protocol_config
    config.http_protocol_options.CopyFrom(http1)
    config.http2_protocol_options.SetInParent()


def limit_concurrent_streams(draft: ClusterDraft, limit: int) -> None:
    """maxConcurrentStreams: at most `limit` streams on one upstream HTTP/2 connection (more
    concurrent requests open more connections). A cluster that cannot speak HTTP/2 upstream
    is left alone, as in Istio."""
    options = draft.http_options
    if options is None:
        return
    for config in (options.explicit_http_config, options.use_downstream_protocol_config):
        if config.HasField("http2_protocol_options"):
            config.http2_protocol_options.max_concurrent_streams.value = limit


def set_upstream_protocol(draft: ClusterDraft, protocol: Protocol) -> None:
    """HTTP/2 for http2/grpc ports; the client's protocol for sniffed (unnamed) ports."""
    if protocol.is_http2:
        set_h2(draft)
    elif protocol == Protocol.UNSUPPORTED:
        set_use_downstream_protocol(draft)


def _istio_metadata(cluster: Cluster) -> struct_pb2.Struct:
    return cluster.metadata.filter_metadata[ISTIO_METADATA]


def add_service_metadata(cluster: Cluster, service: Service) -> None:
    """`istio.services`: which service a cluster serves, for telemetry labels; the first
    one also flat (`service_host`, ...), where Envoy's access log formatter can read it."""
    entry = struct_pb2.Struct()
    entry.update({"host": service.hostname, "name": service.name, "namespace": service.namespace})
    meta = _istio_metadata(cluster)
    meta.get_or_create_list("services").append(entry)
    if SERVICE_HOST_KEY not in meta:
        set_telemetry_service(cluster, service.hostname, service.name, service.namespace)
    if service.mesh_external:
        _istio_metadata(cluster)["external"] = True


def set_telemetry_service(cluster: Cluster, host: str, name: str, namespace: str) -> None:
    """What telemetry reports as destination_service(_name, _namespace) for this cluster."""
    _istio_metadata(cluster).update(
        {SERVICE_HOST_KEY: host, SERVICE_NAME_KEY: name, SERVICE_NAMESPACE_KEY: namespace}
    )


def add_config_metadata(cluster: Cluster, namespace: str, name: str, subset: str = "") -> None:
    """`istio.config` names the DestinationRule that shaped the cluster (and its subset)."""
    meta = _istio_metadata(cluster)
    meta["config"] = f"/apis/networking.istio.io/v1/namespaces/{namespace}/destination-rule/{name}"
    if subset:
        meta["subset"] = subset


def _socket(address: str, port: int) -> address_pb2.Address:
    out = address_pb2.Address()
    out.socket_address.address = address
    out.socket_address.port_value = port
    return out


def black_hole_cluster(connect_timeout: timedelta) -> Cluster:
    """A cluster without endpoints: traffic routed here fails fast (no route matched)."""
    cluster = Cluster(
        name=BLACK_HOLE_CLUSTER,
        type=Cluster.STATIC,
        connect_timeout=duration(connect_timeout),
        lb_policy=Cluster.ROUND_ROBIN,
    )
    set_telemetry_service(cluster, BLACK_HOLE_CLUSTER, BLACK_HOLE_CLUSTER, "unknown")
    return cluster


def _passthrough_http_options() -> HttpProtocolOptions:
    options = HttpProtocolOptions()
    options.common_http_protocol_options.idle_timeout.CopyFrom(duration(PASSTHROUGH_IDLE_TIMEOUT))
    options.use_downstream_protocol_config.http_protocol_options.SetInParent()
    options.use_downstream_protocol_config.http2_protocol_options.SetInParent()
    return options


def passthrough_cluster(name: str, connect_timeout: timedelta) -> ClusterDraft:
    """Original-destination cluster: forward to wherever the client was connecting."""
    cluster = Cluster(
        name=name,
        type=Cluster.ORIGINAL_DST,
        connect_timeout=duration(connect_timeout),
        lb_policy=Cluster.CLUSTER_PROVIDED,
    )
    return ClusterDraft(cluster, _passthrough_http_options())


def outbound_passthrough_cluster(connect_timeout: timedelta) -> ClusterDraft:
    """`PassthroughCluster`: egress to destinations the mesh does not know (telemetry
    names it as Istio does: destination_service_name PassthroughCluster)."""
    draft = passthrough_cluster(PASSTHROUGH_CLUSTER, connect_timeout)
    set_telemetry_service(draft.cluster, PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER, "unknown")
    return draft


def inbound_passthrough_cluster(connect_timeout: timedelta) -> ClusterDraft:
    """`InboundPassthroughCluster`: to the local app on ports no service declares, bound
    to 127.0.0.6 so the capture rules do not send it back into Envoy."""
    draft = passthrough_cluster(INBOUND_PASSTHROUGH_CLUSTER, connect_timeout)
    bind = address_pb2.BindConfig()
    bind.source_address.address = INBOUND_PASSTHROUGH_BIND
    bind.source_address.port_value = 0
    draft.cluster.upstream_bind_config.CopyFrom(bind)
    return draft


def inbound_cluster(name: str, port: int) -> ClusterDraft:
    """`inbound|PORT||`: STATIC to the app on 127.0.0.1:PORT inside the pod."""
    draft = new_cluster(name, Cluster.STATIC)
    lb_endpoint = endpoint_components_pb2.LbEndpoint()
    lb_endpoint.endpoint.address.CopyFrom(_socket("127.0.0.1", port))
    locality = endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[lb_endpoint])
    set_load_assignment(draft.cluster, [locality])
    return draft

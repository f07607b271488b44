"""DestinationRule connectionPool -> circuit breakers, timeouts, keepalive, HTTP options.

Istio always sets circuit-breaker thresholds, at 2^32-1 where the DestinationRule says
nothing, because Envoy's own defaults (1024 connections, 3 retries) trip during
ordinary pod churn. A value of 0 counts as unset, as in Istio.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeAlias

from envoy.config.cluster.v3 import circuit_breaker_pb2

from isthmus.api.networking import (
    ConnectionPoolSettings,
    ConnectionPoolSettings_TCPSettings,
    H2UpgradePolicy,
)
from isthmus.pilot.envoy.cluster import (
    Cluster,
    ClusterDraft,
    duration,
    limit_concurrent_streams,
    set_h2,
    set_use_downstream_protocol,
)

UNLIMITED = 2**32 - 1

Thresholds: TypeAlias = circuit_breaker_pb2.CircuitBreakers.Thresholds


def default_thresholds() -> Thresholds:
    """Istio's thresholds when nothing is configured: effectively unlimited."""
    out = Thresholds(track_remaining=True)
    for name in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
        getattr(out, name).value = UNLIMITED
    return out


def circuit_breaker_thresholds(settings: ConnectionPoolSettings | None) -> Thresholds:
    """maxConnections, http1MaxPendingRequests, http2MaxRequests, maxRetries."""
    out = default_thresholds()
    tcp = settings.tcp if settings else None
    http = settings.http if settings else None
    if tcp is not None and tcp.max_connections:
        out.max_connections.value = tcp.max_connections
    if http is not None:
        if http.http1_max_pending_requests:
            out.max_pending_requests.value = http.http1_max_pending_requests
        if http.http2_max_requests:
            out.max_requests.value = http.http2_max_requests
        if http.max_retries:
            out.max_retries.value = http.max_retries
    return out


def apply_connection_pool(
    draft: ClusterDraft, settings: ConnectionPoolSettings | None, connect_timeout: timedelta
) -> None:
    """Istio's applyConnectionPool; `connect_timeout` is the MeshConfig default."""
    cluster = draft.cluster
    tcp = settings.tcp if settings else None
    http = settings.http if settings else None
    cluster.connect_timeout.CopyFrom(duration(connect_timeout))
    if tcp is not None and tcp.connect_timeout is not None:
        cluster.connect_timeout.CopyFrom(duration(tcp.connect_timeout))
    apply_tcp_keepalive(cluster, tcp)
    cluster.circuit_breakers.thresholds.append(circuit_breaker_thresholds(settings))

    idle_timeout = http.idle_timeout if http else None
    if idle_timeout is None and tcp is not None:
        idle_timeout = tcp.idle_timeout
    max_duration = tcp.max_connection_duration if tcp else None
    per_connection = http.max_requests_per_connection if http else None
    if idle_timeout is not None or max_duration is not None or per_connection:
        common = draft.http().common_http_protocol_options
        if idle_timeout is not None:
            common.idle_timeout.CopyFrom(duration(idle_timeout))
        if per_connection:
            common.max_requests_per_connection.value = per_connection
        if max_duration is not None:
            common.max_connection_duration.CopyFrom(duration(max_duration))
    if http is not None and http.use_client_protocol:
        set_use_downstream_protocol(draft)
    if http is not None and http.max_concurrent_streams:
        limit_concurrent_streams(draft, http.max_concurrent_streams)


def apply_tcp_keepalive(cluster: Cluster, tcp: ConnectionPoolSettings_TCPSettings | None) -> None:
    """tcpKeepalive -> upstream_connection_options; time and interval in whole seconds."""
    keepalive = tcp.tcp_keepalive if tcp else None
    if keepalive is None:
        return
    out = cluster.upstream_connection_options.tcp_keepalive
    out.SetInParent()
    if keepalive.probes:
        out.keepalive_probes.value = keepalive.probes
    if keepalive.time is not None:
        out.keepalive_time.value = int(keepalive.time.total_seconds())
    if keepalive.interval is not None:
        out.keepalive_interval.value = int(keepalive.interval.total_seconds())


def should_h2_upgrade(settings: ConnectionPoolSettings | None) -> bool:
    """Istio's shouldH2Upgrade with the mesh default DO_NOT_UPGRADE: only an explicit
    UPGRADE upgrades (any port: the user asserts it is HTTP), useClientProtocol never."""
    http = settings.http if settings else None
    if http is None or http.use_client_protocol:
        return False
    return http.h2_upgrade_policy == H2UpgradePolicy.UPGRADE


def apply_h2_upgrade(draft: ClusterDraft, settings: ConnectionPoolSettings | None) -> None:
    """h2UpgradePolicy UPGRADE: HTTP/2 upstream unless a protocol is already chosen."""
    if should_h2_upgrade(settings):
        set_h2(draft)

"""What each kind of connection records: the telemetry of an outbound or inbound HTTP
connection manager and of a tcp_proxy, at the source or destination reporter.

Outbound configuration is shared by every proxy of a namespace, so it holds nothing
proxy-specific (the proxy's own labels come from its environment); inbound configuration
is the proxy's own and names the service it serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.extensions.filters.http.grpc_stats.v3 import config_pb2 as grpc_stats_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from isthmus.pilot.envoy.http_connection_manager import HcmTelemetry
from isthmus.pilot.envoy.typed import pack
from isthmus.pilot.telemetry.labels import (
    DestinationService,
    destination_reporter,
    source_reporter,
)
from isthmus.pilot.telemetry.metrics import (
    DEFAULT_METRICS,
    GRPC_STATS_FILTER,
    REQUEST_MESSAGES,
    RESPONSE_MESSAGES,
    MetricsSettings,
    http_metrics,
    tcp_metrics,
)
from isthmus.pilot.telemetry.peer_metadata import peer_metadata_filter


@dataclass(frozen=True)
class ProxyTelemetry:
    """The telemetry settings in effect for one proxy (mesh config and Telemetry)."""

    metrics: MetricsSettings = DEFAULT_METRICS


DEFAULT_TELEMETRY = ProxyTelemetry()


def _grpc_stats(settings: MetricsSettings) -> list[hcm.HttpFilter]:
    """Counts gRPC messages into filter state for the message metrics; only if wanted."""
    if not (settings.enabled(REQUEST_MESSAGES) or settings.enabled(RESPONSE_MESSAGES)):
        return []
    config = grpc_stats_pb2.FilterConfig(emit_filter_state=True)
    config.stats_for_all_methods.value = False
    return [hcm.HttpFilter(name=GRPC_STATS_FILTER, typed_config=pack(config))]


def outbound_http(telemetry: ProxyTelemetry = DEFAULT_TELEMETRY) -> HcmTelemetry:
    metrics = telemetry.metrics
    return HcmTelemetry(
        access_logs=http_metrics(source_reporter(), metrics),
        filters=_grpc_stats(metrics),
    )


def inbound_http(
    service: DestinationService, mutual_tls: bool, telemetry: ProxyTelemetry = DEFAULT_TELEMETRY
) -> HcmTelemetry:
    metrics = telemetry.metrics
    return HcmTelemetry(
        access_logs=http_metrics(destination_reporter(service, mutual_tls), metrics),
        filters=[*([peer_metadata_filter()] if mutual_tls else []), *_grpc_stats(metrics)],
    )


def outbound_tcp(telemetry: ProxyTelemetry = DEFAULT_TELEMETRY) -> list[accesslog_pb2.AccessLog]:
    return tcp_metrics(source_reporter(), telemetry.metrics)


def inbound_tcp(
    service: DestinationService, mutual_tls: bool, telemetry: ProxyTelemetry = DEFAULT_TELEMETRY
) -> list[accesslog_pb2.AccessLog]:
    return tcp_metrics(destination_reporter(service, mutual_tls), telemetry.metrics)

"""What each kind of connection records: the telemetry of an outbound or inbound HTTP
connection manager and of a tcp_proxy, at the source or destination reporter.

Outbound configuration is shared by every proxy of a namespace, so it holds nothing
proxy-specific (the proxy's own labels come from its environment); inbound configuration
is the proxy's own and names the service it serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.data.accesslog.v3 import accesslog_pb2 as access_data
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from isthmus.pilot.envoy.http_connection_manager import HcmTelemetry
from isthmus.pilot.telemetry.access_log import AccessLogSettings, file_access_log
from isthmus.pilot.telemetry.grpc_messages import grpc_message_filters
from isthmus.pilot.telemetry.labels import (
    DestinationService,
    destination_reporter,
    source_reporter,
)
from isthmus.pilot.telemetry.metrics import (
    DEFAULT_METRICS,
    REQUEST_MESSAGES,
    RESPONSE_MESSAGES,
    MetricsSettings,
    http_metrics,
    tcp_metrics,
)
from isthmus.pilot.telemetry.peer_metadata import peer_metadata_filter
from isthmus.pilot.telemetry.tracing import TracingSettings, zipkin_tracing

STDOUT_LOG = AccessLogSettings()


@dataclass(frozen=True)
class SideTelemetry:
    """What one side of a proxy records: as a client (outbound) or as a server (inbound).
    `access_log` None: no access log; `tracing` None: no tracer."""

    metrics: MetricsSettings = DEFAULT_METRICS
    access_log: AccessLogSettings | None = STDOUT_LOG
    tracing: TracingSettings | None = None


DEFAULT_SIDE = SideTelemetry()


@dataclass(frozen=True)
class ProxyTelemetry:
    """The telemetry in effect for one proxy (mesh config and Telemetry resources)."""

    client: SideTelemetry = DEFAULT_SIDE
    server: SideTelemetry = DEFAULT_SIDE


DEFAULT_TELEMETRY = ProxyTelemetry()


def _file_logs(side: SideTelemetry) -> list[accesslog_pb2.AccessLog]:
    return [] if side.access_log is None else [file_access_log(side.access_log)]


def _tracing(side: SideTelemetry) -> hcm.HttpConnectionManager.Tracing | None:
    if side.tracing is None or not side.tracing.report:
        return None
    return zipkin_tracing(side.tracing)


def _grpc_stats(settings: MetricsSettings) -> list[hcm.HttpFilter]:
    """Counts gRPC messages into filter state for the message metrics; only if wanted."""
    if not (settings.enabled(REQUEST_MESSAGES) or settings.enabled(RESPONSE_MESSAGES)):
        return []
    return grpc_message_filters()


def outbound_http(telemetry: ProxyTelemetry = DEFAULT_TELEMETRY) -> HcmTelemetry:
    side = telemetry.client
    return HcmTelemetry(
        access_logs=[*http_metrics(source_reporter(), side.metrics), *_file_logs(side)],
        filters=_grpc_stats(side.metrics),
        tracing=_tracing(side),
    )


def inbound_http(
    service: DestinationService, mutual_tls: bool, telemetry: ProxyTelemetry = DEFAULT_TELEMETRY
) -> HcmTelemetry:
    side = telemetry.server
    reporter = destination_reporter(service, mutual_tls)
    return HcmTelemetry(
        access_logs=[*http_metrics(reporter, side.metrics), *_file_logs(side)],
        filters=[*([peer_metadata_filter()] if mutual_tls else []), *_grpc_stats(side.metrics)],
        tracing=_tracing(side),
    )


def _tcp(side: SideTelemetry, reporter: dict[str, str]) -> list[accesslog_pb2.AccessLog]:
    """tcp_proxy also logs when it connects upstream: the file log only at the end."""
    logs = _file_logs(side)
    for log in logs:
        log.filter.log_type_filter.types.append(access_data.TcpConnectionEnd)
    return [*tcp_metrics(reporter, side.metrics), *logs]


def outbound_tcp(telemetry: ProxyTelemetry = DEFAULT_TELEMETRY) -> list[accesslog_pb2.AccessLog]:
    return _tcp(telemetry.client, source_reporter())


def inbound_tcp(
    service: DestinationService, mutual_tls: bool, telemetry: ProxyTelemetry = DEFAULT_TELEMETRY
) -> list[accesslog_pb2.AccessLog]:
    return _tcp(telemetry.server, destination_reporter(service, mutual_tls))

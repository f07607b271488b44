"""Istio's standard metrics, recorded by Envoy's stats access logger.

Each request (or TCP connection) that ends adds to counters and histograms whose names
are Istio's and whose tags are the labels of pilot.telemetry.labels; Envoy keeps them in
its stats store, under the stat prefix `istio` (Prometheus: `envoy_istio_*`, which the
agent's merged endpoint on 15020 serves as `istio_*`). Histogram buckets are Envoy's
defaults, which are Istio's.

HTTP: one access log for gRPC requests (content-type application/grpc: request_protocol
`grpc`, grpc_response_status and message counts from the grpc_stats filter, see
grpc_messages)
and one for the rest, selected by a header filter, so each request is counted once.
TCP: `opened` when the upstream connection is established (tcp_proxy flushes its access
log then), `closed` and the byte counters when the connection ends. Request and response
sizes are body bytes (Envoy's BYTES_RECEIVED/BYTES_SENT); Istio's include headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.data.accesslog.v3 import accesslog_pb2 as access_data
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.type.matcher.v3 import string_pb2

from isthmus.pilot.envoy.typed import pack
from isthmus.pilot.telemetry.grpc_messages import (
    GRPC_CONTENT_TYPE,
    MESSAGES_METADATA,
    REQUEST_MESSAGES_KEY,
    RESPONSE_MESSAGES_KEY,
)
from isthmus.pilot.telemetry.labels import http_labels, tcp_labels

STATS_ACCESS_LOGGER = "envoy.access_loggers.stats"
STAT_PREFIX = "istio"

REQUESTS_TOTAL = "requests_total"
REQUEST_DURATION = "request_duration_milliseconds"
REQUEST_BYTES = "request_bytes"
RESPONSE_BYTES = "response_bytes"
REQUEST_MESSAGES = "request_messages_total"
RESPONSE_MESSAGES = "response_messages_total"
TCP_OPENED = "tcp_connections_opened_total"
TCP_CLOSED = "tcp_connections_closed_total"
TCP_SENT = "tcp_sent_bytes_total"
TCP_RECEIVED = "tcp_received_bytes_total"
HTTP_METRICS = (
    REQUESTS_TOTAL,
    REQUEST_DURATION,
    REQUEST_BYTES,
    RESPONSE_BYTES,
    REQUEST_MESSAGES,
    RESPONSE_MESSAGES,
)
TCP_METRICS = (TCP_OPENED, TCP_CLOSED, TCP_SENT, TCP_RECEIVED)
STANDARD_METRICS = (*HTTP_METRICS, *TCP_METRICS)

_Unit = stats_pb2.Config.Histogram.Unit
_HISTOGRAMS = (
    (REQUEST_DURATION, _Unit.Milliseconds, "%DURATION%"),
    (REQUEST_BYTES, _Unit.Bytes, "%BYTES_RECEIVED%"),
    (RESPONSE_BYTES, _Unit.Bytes, "%BYTES_SENT%"),
)
_GRPC_MESSAGES = (
    (REQUEST_MESSAGES, f"%DYNAMIC_METADATA({MESSAGES_METADATA}:{REQUEST_MESSAGES_KEY})%"),
    (RESPONSE_MESSAGES, f"%DYNAMIC_METADATA({MESSAGES_METADATA}:{RESPONSE_MESSAGES_KEY})%"),
)


@dataclass(frozen=True)
class MetricsSettings:
    """Which standard metrics a proxy reports, and label overrides per metric (the
    Telemetry kind's `metrics.overrides`): (metric, tag, value) in order; a value of
    None removes the tag, else it is the tag's format string."""

    disabled: frozenset[str] = frozenset()
    tag_overrides: tuple[tuple[str, str, str | None], ...] = ()

    def enabled(self, metric: str) -> bool:
        return metric not in self.disabled

    def tags(self, metric: str, labels: Mapping[str, str]) -> dict[str, str]:
        out = dict(labels)
        for name, tag, value in self.tag_overrides:
            if name != metric:
                continue
            if value is None:
                out.pop(tag, None)
            else:
                out[tag] = value
        return out


DEFAULT_METRICS = MetricsSettings()


def _stat(target: stats_pb2.Config.Stat, name: str, tags: Mapping[str, str]) -> None:
    target.name = name
    for tag, value in tags.items():
        target.tags.add(name=tag, value_format=value)


def _counter(
    config: stats_pb2.Config, name: str, tags: Mapping[str, str], value: str | None = None
) -> None:
    counter = config.counters.add()
    _stat(counter.stat, name, tags)
    if value is None:
        counter.value_fixed.value = 1
    else:
        counter.value_format = value


def _access_log(
    config: stats_pb2.Config, log_filter: accesslog_pb2.AccessLogFilter
) -> accesslog_pb2.AccessLog:
    return accesslog_pb2.AccessLog(
        name=STATS_ACCESS_LOGGER, filter=log_filter, typed_config=pack(config)
    )


def _grpc_filter(grpc: bool) -> accesslog_pb2.AccessLogFilter:
    matcher = rc.HeaderMatcher(
        name="content-type",
        string_match=string_pb2.StringMatcher(prefix=GRPC_CONTENT_TYPE),
        invert_match=not grpc,
        treat_missing_header_as_empty=True,
    )
    return accesslog_pb2.AccessLogFilter(header_filter=accesslog_pb2.HeaderFilter(header=matcher))


def _http_stats(
    reporter: Mapping[str, str], grpc: bool, settings: MetricsSettings
) -> stats_pb2.Config | None:
    labels = http_labels(reporter, grpc)
    config = stats_pb2.Config(stat_prefix=STAT_PREFIX)
    if settings.enabled(REQUESTS_TOTAL):
        _counter(config, REQUESTS_TOTAL, settings.tags(REQUESTS_TOTAL, labels))
    for name, unit, value in _HISTOGRAMS:
        if settings.enabled(name):
            histogram = config.histograms.add(unit=unit, value_format=value)
            _stat(histogram.stat, name, settings.tags(name, labels))
    if grpc:
        for name, value in _GRPC_MESSAGES:
            if settings.enabled(name):
                _counter(config, name, settings.tags(name, labels), value)
    if not config.counters and not config.histograms:
        return None
    return config


def http_metrics(
    reporter: Mapping[str, str], settings: MetricsSettings = DEFAULT_METRICS
) -> list[accesslog_pb2.AccessLog]:
    """The access logs that record Istio's HTTP metrics for one connection manager."""
    out = []
    for grpc in (False, True):
        config = _http_stats(reporter, grpc, settings)
        if config is not None:
            out.append(_access_log(config, _grpc_filter(grpc)))
    return out


def _log_type(kind: int) -> accesslog_pb2.AccessLogFilter:
    return accesslog_pb2.AccessLogFilter(log_type_filter=accesslog_pb2.LogTypeFilter(types=[kind]))


def tcp_metrics(
    reporter: Mapping[str, str], settings: MetricsSettings = DEFAULT_METRICS
) -> list[accesslog_pb2.AccessLog]:
    """The access logs that record Istio's TCP metrics for one tcp_proxy (which must
    flush its access log on connect for `opened` to be counted)."""
    labels = tcp_labels(reporter)
    out = []
    opened = stats_pb2.Config(stat_prefix=STAT_PREFIX)
    if settings.enabled(TCP_OPENED):
        _counter(opened, TCP_OPENED, settings.tags(TCP_OPENED, labels))
        out.append(_access_log(opened, _log_type(access_data.TcpUpstreamConnected)))
    ended = stats_pb2.Config(stat_prefix=STAT_PREFIX)
    for name, value in (
        (TCP_CLOSED, None),
        (TCP_SENT, "%BYTES_SENT%"),
        (TCP_RECEIVED, "%BYTES_RECEIVED%"),
    ):
        if settings.enabled(name):
            _counter(ended, name, settings.tags(name, labels), value)
    if ended.counters:
        out.append(_access_log(ended, _log_type(access_data.TcpConnectionEnd)))
    return out

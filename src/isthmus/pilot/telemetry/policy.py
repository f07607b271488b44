"""The telemetry in effect for one proxy: MeshConfig's defaults, then the Telemetry
resources that apply to it, as Istio chooses them: the root namespace's without a
selector, the proxy namespace's without a selector, then the one in its namespace whose
selector matches the workload (the oldest at each level). Later levels override earlier
ones field by field: sampling percentage, span reporting and access logging by the most
specific that sets them, custom tags by name, metric overrides in order. Each rule
applies to the client side (outbound), the server side (inbound) or both, by its mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from isthmus.api.checks_telemetry import cel_string_literal
from isthmus.api.telemetry import (
    CustomTag as CustomTagSpec,
)
from isthmus.api.telemetry import (
    IstioMetric,
    MetricSelector,
    TagOperation,
    TagOverride,
    Telemetry,
    WorkloadMode,
)
from isthmus.model.hosts import resolve_config_host
from isthmus.model.snapshot import ConfigEntry, MeshSnapshot
from isthmus.model.types import Proxy
from isthmus.pilot.naming import outbound_cluster_name
from isthmus.pilot.telemetry.access_log import AccessLogSettings
from isthmus.pilot.telemetry.connection import ProxyTelemetry, SideTelemetry
from isthmus.pilot.telemetry.metrics import (
    REQUEST_BYTES,
    REQUEST_DURATION,
    REQUEST_MESSAGES,
    REQUESTS_TOTAL,
    RESPONSE_BYTES,
    RESPONSE_MESSAGES,
    STANDARD_METRICS,
    TCP_CLOSED,
    TCP_OPENED,
    TCP_RECEIVED,
    TCP_SENT,
    MetricsSettings,
)
from isthmus.pilot.telemetry.tracing import ZIPKIN_CLUSTER, CustomTag, TracingSettings
from isthmus.pilot.workload_policies import selects

CLIENT, SERVER = WorkloadMode.CLIENT, WorkloadMode.SERVER
_METRICS = {
    IstioMetric.REQUEST_COUNT: (REQUESTS_TOTAL,),
    IstioMetric.REQUEST_DURATION: (REQUEST_DURATION,),
    IstioMetric.REQUEST_SIZE: (REQUEST_BYTES,),
    IstioMetric.RESPONSE_SIZE: (RESPONSE_BYTES,),
    IstioMetric.TCP_OPENED_CONNECTIONS: (TCP_OPENED,),
    IstioMetric.TCP_CLOSED_CONNECTIONS: (TCP_CLOSED,),
    IstioMetric.TCP_SENT_BYTES: (TCP_SENT,),
    IstioMetric.TCP_RECEIVED_BYTES: (TCP_RECEIVED,),
    IstioMetric.GRPC_REQUEST_MESSAGES: (REQUEST_MESSAGES,),
    IstioMetric.GRPC_RESPONSE_MESSAGES: (RESPONSE_MESSAGES,),
    IstioMetric.ALL_METRICS: STANDARD_METRICS,
}


def _collector(mesh: MeshSnapshot, namespace: str, zipkin: bool) -> tuple[str, str] | None:
    """The cluster (and host name) spans go to; None when there is none to use: no
    `zipkin` bootstrap cluster, or MeshConfig's zipkin address is no service this
    proxy's namespace can see."""
    address = mesh.config.zipkin_address
    if address is None:
        return (ZIPKIN_CLUSTER, "") if zipkin else None
    host, _, port = address.rpartition(":")
    suffix = mesh.config.domain_suffix
    known = {svc.hostname: svc for svc in mesh.services.visible_to(namespace)}
    fqdn = resolve_config_host(host, namespace, known, suffix)
    service = known.get(fqdn)
    if service is None or service.port(int(port)) is None:
        return None
    return outbound_cluster_name(int(port), "", fqdn), host


def mesh_defaults(mesh: MeshSnapshot, namespace: str, zipkin: bool) -> SideTelemetry:
    """MeshConfig's accessLogFile/Encoding/Format and tracing settings."""
    config = mesh.config
    access_log = (
        AccessLogSettings(
            config.access_log_file, config.access_log_encoding, config.access_log_format
        )
        if config.access_log_file
        else None
    )
    collector = _collector(mesh, namespace, zipkin) if config.enable_tracing else None
    tracing = None
    if collector is not None:
        tracing = TracingSettings(config.trace_sampling, collector[0], collector[1])
    return SideTelemetry(access_log=access_log, tracing=tracing)


def applicable_telemetries(
    entries: Sequence[ConfigEntry[Telemetry]],
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str,
) -> list[Telemetry]:
    """Root, namespace and workload level, in that order (at most one each)."""
    oldest_first = sorted(entries, key=lambda e: (e.created_revision, e.name))

    def first(scope: str, with_selector: bool) -> Telemetry | None:
        for entry in oldest_first:
            spec = entry.resource.spec
            if entry.namespace != scope or (spec.selector is not None) != with_selector:
                continue
            if not with_selector or selects(entry.resource, labels):
                return entry.resource
        return None

    levels = [first(root_namespace, False)]
    if namespace != root_namespace:
        levels.append(first(namespace, False))
    levels.append(first(namespace, True))
    return [t for t in levels if t is not None]


class _Match(Protocol):
    @property
    def mode(self) -> WorkloadMode: ...


def _mode(match: _Match | None) -> WorkloadMode:
    return match.mode if match is not None else WorkloadMode.CLIENT_AND_SERVER


def _applies(mode: WorkloadMode, side: WorkloadMode) -> bool:
    return mode in (WorkloadMode.CLIENT_AND_SERVER, side)


def _custom_tag(name: str, spec: CustomTagSpec) -> CustomTag:
    if spec.literal is not None:
        return CustomTag(name, "literal", spec.literal.value)
    if spec.environment is not None:
        return CustomTag(
            name, "environment", spec.environment.name, spec.environment.default_value or ""
        )
    assert spec.header is not None  # validation: exactly one kind is set
    return CustomTag(name, "header", spec.header.name, spec.header.default_value or "")


@dataclass
class _Side:
    """One side's settings while the levels are merged."""

    base: SideTelemetry
    sampling: float | None = None
    report: bool = True
    tags: dict[str, CustomTag] = field(default_factory=dict)
    access_log: bool | None = None
    disabled: set[str] = field(default_factory=set)
    overrides: list[tuple[str, str, str | None]] = field(default_factory=list)

    def merge(self, telemetry: Telemetry, side: WorkloadMode) -> None:
        spec = telemetry.spec
        for tracing in spec.tracing:
            if not _applies(
                tracing.match.mode if tracing.match else WorkloadMode.CLIENT_AND_SERVER, side
            ):
                continue
            if tracing.random_sampling_percentage is not None:
                self.sampling = tracing.random_sampling_percentage
            if tracing.disable_span_reporting is not None:
                self.report = not tracing.disable_span_reporting
            for name, tag in tracing.custom_tags.items():
                self.tags[name] = _custom_tag(name, tag)
        for logging in spec.access_logging:
            if _applies(_mode(logging.match), side):
                self.access_log = not logging.disabled
        for metrics in spec.metrics:
            for override in metrics.overrides:
                self._override(override.match, override.disabled, override.tag_overrides, side)

    def _override(
        self,
        match: MetricSelector | None,
        disabled: bool | None,
        tag_overrides: Mapping[str, TagOverride],
        side: WorkloadMode,
    ) -> None:
        mode = match.mode if match is not None else WorkloadMode.CLIENT_AND_SERVER
        if not _applies(mode, side):
            return
        metric = (
            match.metric
            if match is not None and match.metric is not None
            else IstioMetric.ALL_METRICS
        )
        names = _METRICS[metric]
        if disabled is not None:
            if disabled:
                self.disabled.update(names)
            else:
                self.disabled.difference_update(names)
        for tag, override in tag_overrides.items():
            value = None
            if override.operation is not TagOperation.REMOVE:
                literal = cel_string_literal(override.value or "")
                # A literal, not a format: Envoy's `%` must not start a command.
                value = None if literal is None else literal.replace("%", "%%")
            for name in names:
                self.overrides.append((name, tag, value))

    def result(self) -> SideTelemetry:
        base = self.base
        access_log = base.access_log
        if self.access_log is False:
            access_log = None
        elif self.access_log is True and access_log is None:
            access_log = AccessLogSettings()
        tracing = base.tracing
        if tracing is not None:
            tracing = dataclasses.replace(
                tracing,
                sampling=tracing.sampling if self.sampling is None else self.sampling,
                custom_tags=tuple(self.tags.values()),
                report=self.report,
            )
        metrics = MetricsSettings(frozenset(self.disabled), tuple(self.overrides))
        return SideTelemetry(metrics=metrics, access_log=access_log, tracing=tracing)


def _side(base: SideTelemetry, levels: Iterable[Telemetry], side: WorkloadMode) -> SideTelemetry:
    merged = _Side(base)
    for telemetry in levels:
        merged.merge(telemetry, side)
    return merged.result()


def proxy_telemetry(mesh: MeshSnapshot, proxy: Proxy) -> ProxyTelemetry:
    base = mesh_defaults(mesh, proxy.namespace, proxy.zipkin)
    levels = applicable_telemetries(
        mesh.telemetries, proxy.namespace, proxy.label_dict, mesh.config.root_namespace
    )
    if not levels:
        return ProxyTelemetry(client=base, server=base)
    return ProxyTelemetry(client=_side(base, levels, CLIENT), server=_side(base, levels, SERVER))

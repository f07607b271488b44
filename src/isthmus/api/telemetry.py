"""telemetry.istio.io Telemetry: how workloads' sidecars trace, log and count requests.

Field names follow Istio's protos (telemetry/v1alpha1/telemetry.proto, served as v1 and
v1alpha1). A Telemetry in the root namespace without a selector applies to the mesh,
one in another namespace without a selector to that namespace, one with a selector to
the workloads it picks; the narrower scope overrides the wider one field by field.

isthmus has no meshConfig extensionProviders, only Istio's built-in default providers
(`zipkin`, `envoy`, `prometheus`). Fields of Istio's API isthmus does not translate yet
are refused ("not supported yet"); the semantic checks live in `checks_telemetry`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict

from isthmus.api.base import IstioModel, Resource
from isthmus.api.networking import WorkloadSelector

TELEMETRY_API_VERSIONS = ("telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1")

# Istio's standard metric labels (https://istio.io/latest/docs/reference/config/metrics/),
# in Istio's order; pilot.telemetry.labels gives each its value at both reporters.
ISTIO_METRIC_LABELS = (
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_cluster",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)


class WorkloadMode(StrEnum):
    """The workload's role in the traffic: CLIENT (outbound), SERVER (inbound) or both."""

    CLIENT_AND_SERVER = "CLIENT_AND_SERVER"
    CLIENT = "CLIENT"
    SERVER = "SERVER"


class IstioMetric(StrEnum):
    """MetricSelector.IstioMetric: Istio's standard metrics (ALL_METRICS is every one)."""

    ALL_METRICS = "ALL_METRICS"
    REQUEST_COUNT = "REQUEST_COUNT"
    REQUEST_DURATION = "REQUEST_DURATION"
    REQUEST_SIZE = "REQUEST_SIZE"
    RESPONSE_SIZE = "RESPONSE_SIZE"
    TCP_OPENED_CONNECTIONS = "TCP_OPENED_CONNECTIONS"
    TCP_CLOSED_CONNECTIONS = "TCP_CLOSED_CONNECTIONS"
    TCP_SENT_BYTES = "TCP_SENT_BYTES"
    TCP_RECEIVED_BYTES = "TCP_RECEIVED_BYTES"
    GRPC_REQUEST_MESSAGES = "GRPC_REQUEST_MESSAGES"
    GRPC_RESPONSE_MESSAGES = "GRPC_RESPONSE_MESSAGES"


class TagOperation(StrEnum):
    """MetricsOverrides.TagOverride.Operation."""

    UPSERT = "UPSERT"
    REMOVE = "REMOVE"


Mode = Annotated[WorkloadMode, Strict(False)]


class ProviderRef(IstioModel):
    """A telemetry provider by name (MeshConfig extensionProviders in Istio)."""

    name: str


class TracingSelector(IstioModel):
    mode: Mode = WorkloadMode.CLIENT_AND_SERVER


class Literal(IstioModel):
    """Tracing.Literal: the same value on every span."""

    value: str


class Environment(IstioModel):
    """Tracing.Environment: the value of an environment variable of the sidecar."""

    name: str
    default_value: str | None = None


class RequestHeader(IstioModel):
    """Tracing.RequestHeader: the value of a request header."""

    name: str
    default_value: str | None = None


class CustomTag(IstioModel):
    """Exactly one of literal, environment, header (Istio's oneof)."""

    not_supported_fields = frozenset({"formatter"})

    literal: Literal | None = None
    environment: Environment | None = None
    header: RequestHeader | None = None


class Tracing(IstioModel):
    """Sampling, span reporting and custom span tags of the selected workloads.

    None means "inherit from the wider scope" (Istio's wrapper types)."""

    not_supported_fields = frozenset(
        {"useRequestIdForTraceSampling", "enableIstioTags", "disableContextPropagation"}
    )

    match: TracingSelector | None = None
    providers: list[ProviderRef] = Field(default_factory=list)
    random_sampling_percentage: float | None = None
    disable_span_reporting: bool | None = None
    custom_tags: dict[str, CustomTag] = Field(default_factory=dict)


class AccessLogSelector(IstioModel):
    """AccessLogging.LogSelector."""

    mode: Mode = WorkloadMode.CLIENT_AND_SERVER


class AccessLogFilter(IstioModel):
    """AccessLogging.Filter: a CEL expression selecting what is logged."""

    expression: str


class AccessLogging(IstioModel):
    """Access logs on or off for the selected workloads (None inherits)."""

    match: AccessLogSelector | None = None
    providers: list[ProviderRef] = Field(default_factory=list)
    disabled: bool | None = None
    filter: AccessLogFilter | None = None


class MetricSelector(IstioModel):
    """Which metric(s) and reporter(s) an override applies to; `metric` None is every
    standard metric (ALL_METRICS, the proto's default)."""

    not_supported_fields = frozenset({"customMetric"})

    metric: Annotated[IstioMetric, Strict(False)] | None = None
    mode: Mode = WorkloadMode.CLIENT_AND_SERVER


class TagOverride(IstioModel):
    """MetricsOverrides.TagOverride: upsert a label with `value` or remove it.

    `value` is a CEL expression in Istio; isthmus accepts CEL string literals only
    (see checks_telemetry.cel_string_literal)."""

    operation: Annotated[TagOperation, Strict(False)] = TagOperation.UPSERT
    value: str | None = None


class MetricsOverrides(IstioModel):
    """Without `match`, applies to every standard metric at both reporters."""

    match: MetricSelector | None = None
    disabled: bool | None = None
    tag_overrides: dict[str, TagOverride] = Field(default_factory=dict)


class Metrics(IstioModel):
    not_supported_fields = frozenset({"reportingInterval"})

    providers: list[ProviderRef] = Field(default_factory=list)
    overrides: list[MetricsOverrides] = Field(default_factory=list)


class TelemetrySpec(IstioModel):
    not_supported_fields = frozenset({"targetRef", "targetRefs"})

    selector: WorkloadSelector | None = None
    tracing: list[Tracing] = Field(default_factory=list)
    access_logging: list[AccessLogging] = Field(default_factory=list)
    metrics: list[Metrics] = Field(default_factory=list)


class Telemetry(Resource):
    """Applies to the workloads its selector picks in its namespace (all of them without
    a selector); in the root namespace without a selector, to every workload."""

    spec: TelemetrySpec = Field(default_factory=TelemetrySpec)

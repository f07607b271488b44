"""Distributed tracing: Envoy's Zipkin tracer on every HTTP connection manager.

As Istio's sidecars: B3 headers are propagated (and W3C traceparent alongside), trace ids
are 128-bit, client and server spans are separate (shared_span_context off), and the
decision to sample is made once, at the first sidecar a request meets, with the
configured percentage (MeshConfig defaultConfig.tracing.sampling, Istio's default 1%;
overridden by the Telemetry kind); an incoming sampled B3 or traceparent header is
honoured. Spans go to the `zipkin` cluster, which the agent points at isthmusd's
collector (a proxy whose bootstrap has no such cluster gets no tracer), or, with
MeshConfig's defaultConfig.tracing.zipkin.address, to that mesh service through the
proxy's own outbound cluster for it (with automatic mTLS, as any call).
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.trace.v3 import http_tracer_pb2, zipkin_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.type.tracing.v3 import custom_tag_pb2
from google.protobuf import wrappers_pb2

from isthmus.pilot.envoy.typed import pack

ZIPKIN_TRACER = "envoy.tracers.zipkin"
ZIPKIN_CLUSTER = "zipkin"
ZIPKIN_ENDPOINT = "/api/v2/spans"
DEFAULT_SAMPLING = 1.0  # percent, Istio's default


@dataclass(frozen=True)
class CustomTag:
    """A span tag: a literal, an environment variable of the proxy, or a request header
    (with the value used when it is missing)."""

    name: str
    kind: str  # "literal" | "environment" | "header"
    value: str
    default: str = ""


@dataclass(frozen=True)
class TracingSettings:
    sampling: float = DEFAULT_SAMPLING
    # Where spans go: the bootstrap's `zipkin` cluster (isthmusd's collector), or the
    # outbound cluster of the mesh service MeshConfig's zipkin.address names.
    cluster: str = ZIPKIN_CLUSTER
    hostname: str = ""
    custom_tags: tuple[CustomTag, ...] = ()
    # Telemetry `disableSpanReporting`: no tracer at all, so nothing is reported; the
    # app's own trace headers still pass through untouched.
    report: bool = True


def _custom_tag(tag: CustomTag) -> custom_tag_pb2.CustomTag:
    out = custom_tag_pb2.CustomTag(tag=tag.name)
    if tag.kind == "literal":
        out.literal.value = tag.value
    elif tag.kind == "environment":
        out.environment.name = tag.value
        out.environment.default_value = tag.default
    else:
        out.request_header.name = tag.value
        out.request_header.default_value = tag.default
    return out


def zipkin_tracing(settings: TracingSettings) -> hcm.HttpConnectionManager.Tracing:
    tracing = hcm.HttpConnectionManager.Tracing(
        custom_tags=[_custom_tag(t) for t in settings.custom_tags]
    )
    tracing.random_sampling.value = settings.sampling
    tracing.client_sampling.value = 100.0
    tracing.overall_sampling.value = 100.0
    tracing.spawn_upstream_span.value = False
    config = zipkin_pb2.ZipkinConfig(
        collector_cluster=settings.cluster,
        collector_hostname=settings.hostname,
        collector_endpoint=ZIPKIN_ENDPOINT,
        collector_endpoint_version=zipkin_pb2.ZipkinConfig.HTTP_JSON,
        trace_id_128bit=True,
        shared_span_context=wrappers_pb2.BoolValue(value=False),
        trace_context_option=zipkin_pb2.ZipkinConfig.USE_B3_WITH_W3C_PROPAGATION,
    )
    tracing.provider.CopyFrom(
        http_tracer_pb2.Tracing.Http(name=ZIPKIN_TRACER, typed_config=pack(config))
    )
    return tracing

"""Which telemetry a proxy gets from MeshConfig and Telemetry resources: Istio's levels
(root, namespace, workload), modes (client/server) and overrides."""

from __future__ import annotations

import dataclasses

from _build import mesh_from_yaml

from isthmus.api.mesh_config import parse_mesh_config
from isthmus.pilot.telemetry.connection import ProxyTelemetry
from isthmus.pilot.telemetry.metrics import REQUESTS_TOTAL, STANDARD_METRICS, TCP_OPENED
from isthmus.pilot.telemetry.policy import proxy_telemetry

PROXY = """
kind: Proxy
namespace: production
labels: {app: inventory, version: v1}
---
"""


def telemetry(text: str, zipkin: bool = True) -> ProxyTelemetry:
    mesh, proxy = mesh_from_yaml(PROXY + text)
    return proxy_telemetry(mesh, dataclasses.replace(proxy, zipkin=zipkin))


def doc(namespace: str, name: str, spec: str) -> str:
    return (
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}\n---\n"
    )


def test_mesh_defaults_log_to_stdout_and_sample_one_percent() -> None:
    out = telemetry("")
    assert out.client == out.server
    assert out.client.access_log is not None and out.client.access_log.path == "/dev/stdout"
    assert out.client.tracing is not None and out.client.tracing.sampling == 1.0
    assert out.client.metrics.disabled == frozenset()


def test_a_proxy_without_the_zipkin_cluster_gets_no_tracer() -> None:
    assert (
        telemetry(
            doc("istio-system", "all", "  tracing: [{randomSamplingPercentage: 100}]"), zipkin=False
        ).client.tracing
        is None
    )


def test_workload_overrides_namespace_overrides_root() -> None:
    text = (
        doc("istio-system", "mesh", "  tracing: [{randomSamplingPercentage: 100}]")
        + doc("production", "ns", "  tracing: [{randomSamplingPercentage: 50}]")
        + doc(
            "production",
            "wl",
            "  selector: {matchLabels: {app: inventory}}\n"
            "  tracing: [{randomSamplingPercentage: 7, match: {mode: SERVER}}]",
        )
        + doc(
            "production",
            "other",
            "  selector: {matchLabels: {app: cart}}\n  tracing: [{randomSamplingPercentage: 3}]",
        )
    )
    out = telemetry(text)
    assert out.client.tracing is not None and out.client.tracing.sampling == 50
    assert out.server.tracing is not None and out.server.tracing.sampling == 7


def test_access_logging_disabled_for_the_namespace_is_the_seeds_dev_null() -> None:
    out = telemetry(
        doc(
            "production", "quiet", "  accessLogging: [{providers: [{name: envoy}], disabled: true}]"
        )
    )
    assert out.client.access_log is None and out.server.access_log is None


def test_metric_overrides_disable_and_rewrite_tags_per_mode() -> None:
    spec = (
        "  metrics:\n  - providers: [{name: prometheus}]\n    overrides:\n"
        "    - match: {metric: REQUEST_COUNT, mode: CLIENT}\n      disabled: true\n"
        "    - match: {metric: ALL_METRICS}\n      tagOverrides:\n"
        "        request_protocol: {operation: REMOVE}\n"
        "        team: {value: \"'50%'\"}\n"
    )
    out = telemetry(doc("istio-system", "mesh", spec))
    assert out.client.metrics.disabled == {REQUESTS_TOTAL}
    assert out.server.metrics.disabled == frozenset()
    tags = out.server.metrics.tags(TCP_OPENED, {"request_protocol": "tcp", "reporter": "x"})
    # A literal is not a format: `%` is escaped for Envoy.
    assert tags == {"reporter": "x", "team": "50%%"}
    assert len(out.server.metrics.tag_overrides) == 2 * len(STANDARD_METRICS)


def test_disable_span_reporting_keeps_no_tracer() -> None:
    out = telemetry(doc("istio-system", "mesh", "  tracing: [{disableSpanReporting: true}]"))
    assert out.client.tracing is not None and not out.client.tracing.report


JAEGER = """
apiVersion: v1
kind: Service
metadata: {name: jaeger, namespace: observability}
spec:
  selector: {app: jaeger}
  ports: [{name: http-zipkin, port: 9411}]
---
"""


def with_mesh_config(text: str, yaml: str) -> ProxyTelemetry:
    mesh, proxy = mesh_from_yaml(PROXY + text)
    config = mesh.config.with_file(parse_mesh_config(yaml, "mesh.yaml"))
    mesh = dataclasses.replace(mesh, config=config)
    return proxy_telemetry(mesh, dataclasses.replace(proxy, zipkin=True))


def test_mesh_config_zipkin_address_sends_spans_through_the_services_outbound_cluster() -> None:
    yaml = "defaultConfig: {tracing: {sampling: 100, zipkin: {address: jaeger.observability:9411}}}"
    tracing = with_mesh_config(JAEGER, yaml).client.tracing
    assert tracing is not None
    assert tracing.cluster == "outbound|9411||jaeger.observability.svc.cluster.local"
    assert tracing.hostname == "jaeger.observability" and tracing.sampling == 100
    # No such service (or port): no tracer rather than one Envoy would refuse.
    assert with_mesh_config("", yaml).client.tracing is None
    wrong_port = yaml.replace("9411", "9412")
    assert with_mesh_config(JAEGER, wrong_port).client.tracing is None


def test_mesh_config_can_turn_access_logs_and_tracing_off() -> None:
    out = with_mesh_config("", "accessLogFile: ''\nenableTracing: false")
    assert out.client.access_log is None and out.client.tracing is None

"""A gateway pod (container istio-proxy with image: auto): the runtime runs its agent as a
router and nothing else, captures nothing, and hands it the published ports with the
host's network namespace reference; what it reports is a pod with one container,
istio-proxy."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_pod_record import context, make_pod, running

from isthmus.api.core import PodSpec, PodTemplateSpec
from isthmus.model.pods import pod_view
from isthmus.model.snapshot import TLS_MODE_LABEL
from isthmus.runtime.controller import injected, pod_labels
from isthmus.runtime.pod import SIDECAR, Pod
from isthmus.runtime.security_context import ContainerConfigError

GATEWAY_SPEC = {
    "serviceAccountName": "istio-ingressgateway-service-account",
    "containers": [
        {
            "name": "istio-proxy",
            "image": "auto",
            "ports": [{"containerPort": 80, "name": "http2"}, {"containerPort": 443}],
        }
    ],
}
LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}


def gateway_pod(annotations: dict[str, str] | None = None) -> Pod:
    return Pod(
        name="istio-ingressgateway-abc-x1",
        namespace="istio-system",
        deployment="istio-ingressgateway",
        template_hash="abc",
        labels={**LABELS, "pod-template-hash": "abc"},
        annotations=annotations or {},
        spec=PodSpec.model_validate(GATEWAY_SPEC),
        inject=True,
        ip="10.44.0.8",
        netns="m-istio-system.istio-ingressgateway-abc-x1",
        phase="Running",
    )


def _flag(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == name]


def test_its_only_container_is_the_agent() -> None:
    pod = gateway_pod()
    assert pod.gateway
    assert pod.app_containers == []
    assert pod.container_names == [SIDECAR]
    assert pod.container_ports() == []  # the proxy's ports are not an app's inbound ports


def test_the_agent_is_a_router_without_inbound_ports(tmp_path: Path) -> None:
    argv = gateway_pod()._agent_argv(context(tmp_path))
    assert "--router" in argv
    assert "--inbound-ports" not in argv
    assert "--publish" not in argv and "--host-netns" not in argv
    assert _flag(argv, "--service-account") == ["istio-ingressgateway-service-account"]
    assert _flag(argv, "--workload") == ["istio-ingressgateway"]
    assert _flag(argv, "--token-file")  # mutual TLS and its identity as for a sidecar


def test_published_ports_come_with_the_host_netns_reference(tmp_path: Path) -> None:
    made: list[Path] = []
    reference = tmp_path / "run" / "host-netns"

    def host_netns() -> Path:
        made.append(reference)
        return reference

    ctx = dataclasses.replace(context(tmp_path), host_netns=host_netns)
    pod = gateway_pod({"isthmus.io/published-ports": "8443:443,8080:80"})
    argv = pod._agent_argv(ctx)
    assert _flag(argv, "--publish") == ["8080:80", "8443:443"]
    assert _flag(argv, "--host-netns") == [str(reference)]
    assert made == [reference]


@pytest.mark.parametrize(
    ("value", "has_reference", "message"),
    [
        ("8080", True, "annotation isthmus.io/published-ports: '8080' is not HOSTPORT:PORT"),
        ("8080:80", False, "this runtime publishes no ports"),
    ],
)
def test_ports_that_can_not_be_published_refuse_the_proxy(
    tmp_path: Path, value: str, has_reference: bool, message: str
) -> None:
    ctx = context(tmp_path)
    if has_reference:
        ctx = dataclasses.replace(ctx, host_netns=lambda: tmp_path / "host-netns")
    pod = gateway_pod({"isthmus.io/published-ports": value})
    with pytest.raises(ContainerConfigError, match=message):
        pod._agent_argv(ctx)


def test_a_failing_reference_refuses_the_proxy(tmp_path: Path) -> None:
    def host_netns() -> Path:
        raise PermissionError(1, "Operation not permitted")

    ctx = dataclasses.replace(context(tmp_path), host_netns=host_netns)
    pod = gateway_pod({"isthmus.io/published-ports": "8080:80"})
    with pytest.raises(ContainerConfigError, match="no reference to the host's network namespace"):
        pod._agent_argv(ctx)


def test_a_sidecar_pod_ignores_the_annotation(tmp_path: Path) -> None:
    pod = make_pod()
    pod.annotations["isthmus.io/published-ports"] = "8080:80"
    argv = pod._agent_argv(context(tmp_path))
    assert "--router" not in argv and "--publish" not in argv
    assert _flag(argv, "--inbound-ports") == ["8080,9090"]


def test_the_control_plane_sees_one_container_istio_proxy_with_its_ports(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    pod = gateway_pod()
    pod.states = {SIDECAR: running(SIDECAR, 0)}
    pod.ready = True
    document = json.loads(json.dumps(pod.document("m-node", ctx)))
    assert [c["name"] for c in document["spec"]["containers"]] == [SIDECAR]
    view = pod_view(document)
    assert [c.name for c in view.containers] == [SIDECAR]
    assert dict(view.named_ports) == {"http2": 80}
    assert view.ready
    # With a sidecar's agent on 15020, as Istio's gateway pods are scraped.
    assert document["metadata"]["annotations"]["prometheus.io/port"] == "15020"


def test_a_refused_proxy_is_reported_as_kubernetes_does(tmp_path: Path) -> None:
    pod = gateway_pod()
    pod.refused[SIDECAR] = "annotation isthmus.io/published-ports: ..."
    (status,) = pod.document("m-node", context(tmp_path))["status"]["containerStatuses"]
    assert status["state"]["waiting"]["reason"] == "CreateContainerConfigError"


def test_the_record_keeps_it_a_gateway(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    pod = gateway_pod({"isthmus.io/published-ports": "8080:80"})
    pod.save(ctx)
    (record,) = ctx.records.load_all()
    again = Pod.from_record(json.loads(json.dumps(record)))
    assert again.gateway and again.container_names == [SIDECAR]
    assert again.annotations == {"isthmus.io/published-ports": "8080:80"}


def _template(
    spec: dict[str, object], annotations: dict[str, str] | None = None
) -> PodTemplateSpec:
    return PodTemplateSpec.model_validate(
        {"metadata": {"labels": LABELS, "annotations": annotations or {}}, "spec": spec}
    )


def test_a_gateway_always_gets_its_agent_and_no_tls_mode_label() -> None:
    gateway = _template(GATEWAY_SPEC, {"sidecar.istio.io/inject": "false"})
    assert injected(gateway, inject_ns=False)
    labels = pod_labels(gateway, "abc", inject=True)
    assert labels == {**LABELS, "pod-template-hash": "abc"}
    assert TLS_MODE_LABEL not in labels


def test_an_ordinary_pod_keeps_istios_injection_rules() -> None:
    app = {"containers": [{"name": "app", "command": ["sleep", "1000"]}]}
    assert injected(_template(app), inject_ns=True)
    assert not injected(_template(app), inject_ns=False)
    assert not injected(_template(app, {"sidecar.istio.io/inject": "false"}), inject_ns=True)
    assert pod_labels(_template(app), "abc", inject=True)[TLS_MODE_LABEL] == "istio"
    assert TLS_MODE_LABEL not in pod_labels(_template(app), "abc", inject=False)

"""Istio's gateway injection: a Deployment whose template has a container `istio-proxy`
with `image: auto` is a gateway pod. It needs no `command` (the container is the agent),
refuses what would change the agent, and only it may publish ports on the host's loopback.
The manifest Istio documents (istio.io/latest/docs/setup/additional-setup/gateway/) is
accepted, apart from what isthmus refuses everywhere (pod sysctls, LoadBalancer
Services, RBAC kinds)."""

from __future__ import annotations

import pytest
from _apihelp import load, load_errors

from isthmus.api.core import Deployment
from isthmus.api.published_ports import (
    PublishedPort,
    PublishedPortError,
    format_published_ports,
    parse_published_port,
    parse_published_ports,
)

# Istio's documented gateway Deployment, as a user copies it, without the pod's
# `securityContext.sysctls` (net.ipv4.ip_unprivileged_port_start), which isthmus refuses
# as not supported yet (its gateway's Envoy runs as root and needs no sysctl to bind 80).
ISTIO_GATEWAY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istio-ingressgateway
  namespace: istio-ingress
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  template:
    metadata:
      annotations:
        inject.istio.io/templates: gateway
      labels:
        istio: ingressgateway
        sidecar.istio.io/inject: "true"
    spec:
      containers:
      - name: istio-proxy
        image: auto
        securityContext:
          capabilities:
            drop:
            - ALL
          runAsUser: 1337
          runAsGroup: 1337
"""


def gateway(container_extra: str = "", *, annotations: str = "", more: str = "") -> str:
    text = ISTIO_GATEWAY.replace(
        "        inject.istio.io/templates: gateway\n",
        "        inject.istio.io/templates: gateway\n" + annotations,
    )
    return text + container_extra + more


def test_istios_documented_gateway_deployment_is_accepted() -> None:
    (loaded,) = load(ISTIO_GATEWAY)
    deployment = loaded.resource
    assert isinstance(deployment, Deployment)
    assert deployment.spec.template.spec.gateway


def test_its_pod_sysctls_are_refused_as_everywhere() -> None:
    text = ISTIO_GATEWAY.replace(
        "    spec:\n      containers:",
        "    spec:\n      securityContext:\n        sysctls:\n"
        "        - {name: net.ipv4.ip_unprivileged_port_start, value: '0'}\n"
        "      containers:",
    )
    (line,) = load_errors(text)
    assert "spec.template.spec.securityContext.sysctls" in line and "not supported" in line


def test_an_istio_proxy_container_with_another_image_is_an_ordinary_container() -> None:
    (line,) = load_errors(ISTIO_GATEWAY.replace("image: auto", "image: docker.io/istio/proxyv2"))
    assert "spec.template.spec.containers[0].command: is required" in line


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("        command: [envoy]\n", "command"),
        ("        args: [proxy, router]\n", "args"),
        ("        env: [{name: A, value: b}]\n", "env"),
        ("        workingDir: /tmp\n", "workingDir"),
        (
            "        readinessProbe: {httpGet: {path: /healthz/ready, port: 15021}}\n",
            "readinessProbe",
        ),
        ("        livenessProbe: {tcpSocket: {port: 15021}}\n", "livenessProbe"),
    ],
)
def test_what_would_change_the_agent_is_refused(extra: str, field: str) -> None:
    (line,) = load_errors(gateway(extra))
    assert f"spec.template.spec.containers[0].{field}: is not supported yet on a gateway" in line


def test_ports_resources_and_pull_policy_are_kept() -> None:
    extra = (
        "        imagePullPolicy: IfNotPresent\n"
        "        resources: {limits: {cpu: '2'}}\n"
        "        ports: [{containerPort: 80, name: http2}, {containerPort: 15021}]\n"
    )
    (loaded,) = load(gateway(extra))
    assert isinstance(loaded.resource, Deployment)
    (container,) = loaded.resource.spec.template.spec.containers
    assert [p.container_port for p in container.ports] == [80, 15021]


def test_a_gateway_pod_runs_its_proxy_only() -> None:
    app = "      - {name: app, image: app, command: [sleep, '1000']}\n"
    (line,) = load_errors(gateway(app))
    assert line.endswith(
        "spec.template.spec.containers[1]: a gateway pod (container istio-proxy with image: "
        "auto) runs its proxy only: other containers are not supported yet"
    ), line


def test_published_ports_annotation_on_a_gateway() -> None:
    (loaded,) = load(gateway(annotations='        isthmus.io/published-ports: "8080:80"\n'))
    assert isinstance(loaded.resource, Deployment)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8080", "'8080' is not HOSTPORT:PORT (e.g. 8080:80)"),
        ("8080:80:1", "is not HOSTPORT:PORT"),
        ("0:80", "host port 0 is out of range 1-65535"),
        ("8080:x", "port 'x' is not a port number"),
        ("8080:80,8080:443", "host port 8080 is published twice"),
        ("127.0.0.1:8080:80", "is not HOSTPORT:PORT"),
    ],
)
def test_a_bad_published_ports_annotation_is_refused(value: str, message: str) -> None:
    (line,) = load_errors(gateway(annotations=f'        isthmus.io/published-ports: "{value}"\n'))
    assert "spec.template.metadata.annotations[isthmus.io/published-ports]" in line, line
    assert message in line, line


def test_only_a_gateway_may_publish_ports() -> None:
    text = gateway(annotations='        isthmus.io/published-ports: "8080:80"\n').replace(
        "image: auto", "image: app\n        command: [sleep, '1000']"
    )
    (line,) = load_errors(text)
    assert "annotations[isthmus.io/published-ports]: is honoured only on a gateway pod" in line


def test_published_ports_round_trip() -> None:
    ports = parse_published_ports(" 8443:443, 8080:80 ,")
    assert ports == (PublishedPort(8080, 80), PublishedPort(8443, 443))
    assert format_published_ports(ports) == "8080:80,8443:443"
    assert parse_published_ports("") == ()
    assert str(parse_published_port("1:65535")) == "1:65535"
    with pytest.raises(PublishedPortError, match="out of range"):
        parse_published_port("8080:65536")

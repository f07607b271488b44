"""The ingress gateway `isthmus up` installs (unless `--no-ingress-gateway`), and removes
with `down`.

What istioctl's default profile installs, in Istio's names: ServiceAccount
`istio-ingressgateway-service-account`, Deployment and Service `istio-ingressgateway` in
`istio-system` (a Namespace object is made when there is none), labelled
`app: istio-ingressgateway`, `istio: ingressgateway`, the Service with ports `http2` 80 and
`https` 443. The Deployment is Istio's gateway injection: template label
`sidecar.istio.io/inject: "true"`, annotation `inject.istio.io/templates: gateway` and one
container `istio-proxy` with `image: auto`, which the runtime runs as isthmus-agent in
router mode (runtime.pod). Its Envoy binds 80 and 443 itself (it runs as root), so the
Service's ports are its container's ports. Ports published with `--ingress-port
HOSTPORT:PORT` go in the template's annotation `isthmus.io/published-ports`.

Every object carries `app.kubernetes.io/managed-by: isthmus`, and `down` deletes only
objects that carry it, so that the next `up` does not start a gateway it was told not to.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any

from isthmus.api.core import GATEWAY_IMAGE, PROXY_CONTAINER
from isthmus.api.published_ports import (
    PUBLISHED_ADDRESS,
    PUBLISHED_PORTS_ANNOTATION,
    PublishedPort,
    format_published_ports,
)
from isthmus.cli.errors import UserError
from isthmus.daemon.client import DaemonClient, DaemonError, DaemonNotRunning, Document
from isthmus.home import MeshHome

NAMESPACE = "istio-system"
NAME = "istio-ingressgateway"
SERVICE_ACCOUNT = "istio-ingressgateway-service-account"
SELECTOR = {"app": NAME, "istio": "ingressgateway"}
SERVER_PORTS = (("http2", 80), ("https", 443))
INJECT_LABEL = "sidecar.istio.io/inject"
TEMPLATES_ANNOTATION = "inject.istio.io/templates"
MANAGED_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "isthmus"


def manifest(published: Sequence[PublishedPort] = ()) -> list[dict[str, Any]]:
    """ServiceAccount, Service and Deployment of the ingress gateway (module docstring)."""
    labels = {**SELECTOR, MANAGED_LABEL: MANAGED_BY}

    def metadata() -> dict[str, Any]:
        return {"name": NAME, "namespace": NAMESPACE, "labels": dict(labels)}

    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {**metadata(), "name": SERVICE_ACCOUNT},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(),
        "spec": {
            "selector": dict(SELECTOR),
            "ports": [{"name": name, "port": port} for name, port in SERVER_PORTS],
        },
    }
    annotations = {TEMPLATES_ANNOTATION: "gateway"}
    if published:
        annotations[PUBLISHED_PORTS_ANNOTATION] = format_published_ports(published)
    container = {
        "name": PROXY_CONTAINER,
        "image": GATEWAY_IMAGE,
        "ports": [
            *({"name": name, "containerPort": port} for name, port in SERVER_PORTS),
            {"name": "status-port", "containerPort": 15021},
            {"name": "http-envoy-prom", "containerPort": 15090},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": {
                "metadata": {
                    "labels": {**SELECTOR, INJECT_LABEL: "true"},
                    "annotations": annotations,
                },
                "spec": {"serviceAccountName": SERVICE_ACCOUNT, "containers": [container]},
            },
        },
    }
    return [account, service, deployment]


def namespace_document() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {MANAGED_LABEL: MANAGED_BY}},
    }


def install_ingress_gateway(client: DaemonClient, published: Sequence[PublishedPort]) -> str:
    """Apply the gateway's objects (and its Namespace, when missing) and wait until its pod
    is ready; a line for the user saying how to reach it."""
    bodies = manifest(published)
    if not client.get("Namespace", "", NAMESPACE):
        bodies.insert(0, namespace_document())
    client.apply(Document(f"ingress gateway {body['kind']}", json.dumps(body)) for body in bodies)
    _wait_ready(client)
    if not published:
        return (
            f"{NAMESPACE}/{NAME} ready; no port published on the host (`isthmus up "
            "--ingress-port 8080:80` publishes one)"
        )
    reach = ", ".join(
        f"http://{PUBLISHED_ADDRESS}:{p.host_port} -> port {p.port}" for p in published
    )
    return f"{NAMESPACE}/{NAME} ready; {reach}"


def _wait_ready(client: DaemonClient) -> None:
    deadline = time.monotonic() + client.timeout
    while time.monotonic() < deadline:
        pods = client.request("GET", "/v1/pods")["pods"]
        mine = [p for p in pods if p["namespace"] == NAMESPACE and p["deployment"] == NAME]
        if any(p["ready"] for p in mine):
            return
        time.sleep(0.3)
    raise UserError(
        f"the ingress gateway ({NAMESPACE}/{NAME}) is not ready after {client.timeout:.0f}s; "
        f"see `isthmus get pods -n {NAMESPACE}` and `isthmus logs -n {NAMESPACE} POD -c "
        f"{PROXY_CONTAINER}` (or start the mesh with --no-ingress-gateway)"
    )


def remove_ingress_gateway(home: MeshHome, timeout: float) -> None:
    """Delete the gateway's objects that `up` made (by name and label; the Namespace stays,
    as other objects may live in it); nothing if isthmusd does not answer."""
    with (
        contextlib.suppress(DaemonNotRunning, DaemonError),
        DaemonClient(home, timeout=timeout) as client,
    ):
        names = {"ServiceAccount": SERVICE_ACCOUNT, "Service": NAME, "Deployment": NAME}
        keys = [
            (kind, NAMESPACE, name)
            for kind, name in names.items()
            for body in client.get(kind, NAMESPACE, name)
            if body.get("metadata", {}).get("labels", {}).get(MANAGED_LABEL) == MANAGED_BY
        ]
        if keys:
            client.delete_keys(keys)

"""Test inputs for pilot: YAML documents -> (MeshSnapshot, Proxy).

The config kinds go through the real model builder; one test-only kind, `Proxy`, says
which sidecar the output is generated for (namespace, labels, served ports; its locality
comes from its labels, else from `locality`, as its Envoy node would report it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from isthmus.api.authorization import AuthorizationPolicy
from isthmus.api.base import Resource
from isthmus.api.core import Service
from isthmus.api.gateway import Gateway
from isthmus.api.networking import DestinationRule, ServiceEntry, VirtualService, WorkloadEntry
from isthmus.api.request_authentication import RequestAuthentication
from isthmus.api.secret import Secret
from isthmus.api.security import PeerAuthentication
from isthmus.api.sidecar import Sidecar
from isthmus.api.telemetry import Telemetry
from isthmus.model.build import ConfigObject, build_snapshot
from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.topology import Locality, proxy_locality
from isthmus.model.types import Proxy

KINDS: dict[str, type[Resource]] = {
    "Service": Service,
    "DestinationRule": DestinationRule,
    "ServiceEntry": ServiceEntry,
    "WorkloadEntry": WorkloadEntry,
    "VirtualService": VirtualService,
    "PeerAuthentication": PeerAuthentication,
    "AuthorizationPolicy": AuthorizationPolicy,
    "RequestAuthentication": RequestAuthentication,
    "Telemetry": Telemetry,
    "Sidecar": Sidecar,
    "Gateway": Gateway,
    "Secret": Secret,
}


def mesh_from_yaml(text: str) -> tuple[MeshSnapshot, Proxy]:
    """Documents in order are created in order (older first), as in a store."""
    objects: list[ConfigObject] = []
    proxy = Proxy(
        id="sidecar~10.44.0.1~client.production~production.svc.cluster.local",
        namespace="production",
    )
    for revision, document in enumerate(d for d in yaml.safe_load_all(text) if d):
        if document["kind"] == "Proxy":
            proxy = _proxy(document)
            continue
        resource = KINDS[document["kind"]].model_validate(document)
        objects.append(ConfigObject(resource, created_revision=revision + 1))
    return build_snapshot(objects), proxy


def mesh_from_file(path: Path) -> tuple[MeshSnapshot, Proxy]:
    return mesh_from_yaml(path.read_text())


def _proxy(document: dict[str, Any]) -> Proxy:
    namespace = document.get("namespace", "production")
    ip = document.get("ip", "10.44.0.1")
    router = bool(document.get("router", False))
    node_type = "router" if router else "sidecar"
    published = document.get("publishedPorts", {})
    return Proxy(
        id=f"{node_type}~{ip}~client.{namespace}~{namespace}.svc.cluster.local",
        namespace=namespace,
        ip=ip,
        labels=tuple(sorted(document.get("labels", {}).items())),
        inbound_ports=tuple(document.get("inboundPorts", ())),
        zipkin=bool(document.get("zipkin", False)),
        locality=proxy_locality(
            document.get("labels", {}), Locality.parse(document.get("locality", ""))
        ),
        router=router,
        capture=not router,
        published_ports=tuple(sorted((int(h), int(p)) for h, p in published.items())),
        host_netns="/run/netns/host-for-tests" if published else "",
    )

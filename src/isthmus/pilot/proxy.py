"""Who is asking: an Envoy Node (id + metadata) -> model.Proxy.

Node ids follow Istio: `sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local`.
Metadata keys follow Istio's where it has them (NAMESPACE, LABELS, SERVICE_ACCOUNT,
WORKLOAD_NAME, INSTANCE_IPS); isthmus adds PROXY_HTTP_PORT and INBOUND_PORTS.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from google.protobuf import json_format

from isthmus.model.types import Proxy


class InvalidNode(ValueError):
    """The node does not identify a sidecar isthmus can configure."""


def proxy_from_node(node: base_pb2.Node, default_http_proxy_port: int | None = None) -> Proxy:
    parts = node.id.split("~")
    if len(parts) != 4 or parts[0] != "sidecar":
        raise InvalidNode(
            f"node id {node.id!r} is not sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.DOMAIN"
        )
    _, ip, pod, dns_domain = parts
    meta = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
    namespace = str(meta.get("NAMESPACE") or dns_domain.split(".", 1)[0])
    if not namespace:
        raise InvalidNode(f"node {node.id!r} has no namespace")
    labels = meta.get("LABELS") or {}
    if not isinstance(labels, dict):
        raise InvalidNode(f"node {node.id!r}: metadata LABELS must be a map")
    http_port = meta.get("PROXY_HTTP_PORT", default_http_proxy_port)
    inbound = meta.get("INBOUND_PORTS") or ""
    try:
        inbound_ports = tuple(sorted({int(p) for p in str(inbound).split(",") if p.strip()}))
        proxy_http_port = int(http_port) if http_port not in (None, "", 0, "0") else None
    except ValueError as exc:
        raise InvalidNode(f"node {node.id!r}: bad port in metadata: {exc}") from None
    return Proxy(
        id=node.id,
        namespace=namespace,
        ip=ip,
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        service_account=str(meta.get("SERVICE_ACCOUNT") or "default"),
        workload_name=str(meta.get("WORKLOAD_NAME") or pod.rsplit(".", 1)[0]),
        http_proxy_port=proxy_http_port,
        inbound_ports=inbound_ports,
    )

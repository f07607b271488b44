"""Who is asking: an Envoy Node (id + metadata) -> model.Proxy.

Node ids follow Istio: `sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local`,
`router~...` for a gateway pod's Envoy (which may add PUBLISHED_PORTS, `HOSTPORT:PORT,...`
served on the host's loopback, and HOST_NETNS, the file naming the host's namespace).
Metadata keys follow Istio's where it has them (NAMESPACE, LABELS, SERVICE_ACCOUNT,
WORKLOAD_NAME, INSTANCE_IPS); isthmus adds PROXY_HTTP_PORT, INBOUND_PORTS and SDS
("true" when the agent serves certificates on the bootstrap's sds-grpc cluster) and
ZIPKIN ("true" when the bootstrap has the `zipkin` cluster that relays spans). As in
Istio's ParseServiceNodeWithMetadata, the IP comes from INSTANCE_IPS when that holds a
valid address, else from the id, and a node with no valid IP is refused. The proxy's
locality is its pod's, read from LABELS (model.topology.proxy_locality), else the node's
own `locality`.
"""

from __future__ import annotations

import ipaddress

from envoy.config.core.v3 import base_pb2
from google.protobuf import json_format

from isthmus.model.topology import Locality, proxy_locality
from isthmus.model.types import Proxy


class InvalidNode(ValueError):
    """The node does not identify a sidecar isthmus can configure."""


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _instance_ip(node_id: str, id_ip: str, meta: dict[str, object]) -> str:
    listed = [ip.strip() for ip in str(meta.get("INSTANCE_IPS") or "").split(",") if ip.strip()]
    if listed and all(_valid_ip(ip) for ip in listed):
        return listed[0]
    if _valid_ip(id_ip):
        return id_ip
    raise InvalidNode(f"node {node_id!r}: no valid IP address in the node id or INSTANCE_IPS")


def _port(node_id: str, key: str, value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a Struct holds every number as a double
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidNode(f"node {node_id!r}: metadata {key} has a bad port {value!r}") from None
    if not 1 <= number <= 65535:
        raise InvalidNode(f"node {node_id!r}: metadata {key} port {number} is out of range")
    return number


def _labels(node_id: str, labels: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(labels, dict):
        raise InvalidNode(f"node {node_id!r}: metadata LABELS must be a map")
    if not all(isinstance(v, str) for v in labels.values()):
        raise InvalidNode(f"node {node_id!r}: metadata LABELS values must be strings")
    return tuple(sorted((str(k), v) for k, v in labels.items()))


def proxy_from_node(node: base_pb2.Node, default_http_proxy_port: int | None = None) -> Proxy:
    parts = node.id.split("~")
    if len(parts) != 4 or parts[0] not in ("sidecar", "router"):
        raise InvalidNode(
            f"node id {node.id!r} is not sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.DOMAIN "
            "(or router~... for a gateway)"
        )
    router = parts[0] == "router"
    _, id_ip, pod, dns_domain = parts
    if not pod:
        raise InvalidNode(f"node id {node.id!r} names no pod")
    meta = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
    namespace = str(meta.get("NAMESPACE") or dns_domain.split(".", 1)[0])
    if not namespace:
        raise InvalidNode(f"node {node.id!r} has no namespace")
    http_port = meta.get("PROXY_HTTP_PORT", default_http_proxy_port)
    inbound = str(meta.get("INBOUND_PORTS") or "")
    interception = str(meta.get("INTERCEPTION_MODE") or "REDIRECT").upper()
    if interception not in ("REDIRECT", "NONE"):
        raise InvalidNode(f"node {node.id!r}: INTERCEPTION_MODE {interception!r} is not supported")
    labels = _labels(node.id, meta.get("LABELS") or {})
    reported = Locality(node.locality.region, node.locality.zone, node.locality.sub_zone)
    return Proxy(
        id=node.id,
        namespace=namespace,
        ip=_instance_ip(node.id, id_ip, meta),
        labels=labels,
        locality=proxy_locality(dict(labels), reported),
        service_account=str(meta.get("SERVICE_ACCOUNT") or "default"),
        workload_name=str(meta.get("WORKLOAD_NAME") or pod.rsplit(".", 1)[0]),
        http_proxy_port=(
            _port(node.id, "PROXY_HTTP_PORT", http_port)
            if http_port not in (None, "", 0, "0")
            else None
        ),
        inbound_ports=tuple(
            sorted({_port(node.id, "INBOUND_PORTS", p) for p in inbound.split(",") if p.strip()})
        ),
        capture=interception == "REDIRECT" and not router,
        sds=str(meta.get("SDS") or "").lower() == "true",
        zipkin=str(meta.get("ZIPKIN") or "").lower() == "true",
        router=router,
        published_ports=_published(node.id, meta) if router else (),
        host_netns=str(meta.get("HOST_NETNS") or "") if router else "",
    )


def _published(node_id: str, meta: dict[str, object]) -> tuple[tuple[int, int], ...]:
    """PUBLISHED_PORTS `HOSTPORT:PORT,...`; a published port needs HOST_NETNS."""
    out = []
    for pair in str(meta.get("PUBLISHED_PORTS") or "").split(","):
        if not pair.strip():
            continue
        host, colon, port = pair.partition(":")
        if not colon:
            raise InvalidNode(f"node {node_id!r}: PUBLISHED_PORTS {pair!r} is not HOSTPORT:PORT")
        out.append(
            (_port(node_id, "PUBLISHED_PORTS", host), _port(node_id, "PUBLISHED_PORTS", port))
        )
    if out and not str(meta.get("HOST_NETNS") or "").startswith("/"):
        raise InvalidNode(f"node {node_id!r}: PUBLISHED_PORTS needs an absolute HOST_NETNS")
    return tuple(sorted(set(out)))

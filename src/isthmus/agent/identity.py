"""Who the proxy is: the pod facts an agent is started with, in the shape pilot reads.

The node id and metadata keys are the contract with `isthmus.pilot.proxy`, which parses
them back into a `Proxy`: id `sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.DOMAIN`, metadata
NAMESPACE, LABELS, SERVICE_ACCOUNT, WORKLOAD_NAME, INSTANCE_IPS, INBOUND_PORTS and,
when the pod uses an explicit HTTP proxy, PROXY_HTTP_PORT.

A gateway pod's proxy is a router (Istio's `router~IP~POD.NAMESPACE~NAMESPACE.svc.DOMAIN`):
the same metadata, but no INBOUND_PORTS (nothing is captured) and INTERCEPTION_MODE
"NONE"; when the gateway publishes ports on the host's loopback, PUBLISHED_PORTS
(`HOSTPORT:PORT,...`) and HOST_NETNS (the absolute path of a file referring to the host's
network namespace, where Envoy opens 127.0.0.1:HOSTPORT for the gateway's PORT).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from isthmus.api.published_ports import (
    PublishedPort,
    check_published_ports,
    format_published_ports,
)

DEFAULT_CLUSTER_DOMAIN = "cluster.local"
SIDECAR_TYPE = "sidecar"
ROUTER_TYPE = "router"


def _check_port(what: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise ValueError(f"{what} {port} is out of range 1-65535")


def _check_name(what: str, value: str) -> None:
    # `~` and `.` separate the parts of the node id; a name holding them would not parse back.
    if not value:
        raise ValueError(f"{what} must not be empty")
    if "~" in value or any(ch.isspace() for ch in value):
        raise ValueError(f"{what} {value!r} must not contain '~' or whitespace")


@dataclass(frozen=True)
class ProxyIdentity:
    """The pod a sidecar serves, as the agent's flags describe it."""

    pod: str
    namespace: str
    ip: str
    labels: Mapping[str, str]
    service_account: str
    workload: str
    inbound_ports: tuple[int, ...]
    http_proxy_port: int | None = None
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    router: bool = False  # a gateway's standalone proxy, not a sidecar
    published_ports: tuple[PublishedPort, ...] = ()  # routers only
    host_netns: str | None = None  # with published ports: the host's namespace, as a file

    def __post_init__(self) -> None:
        _check_name("pod", self.pod)
        _check_name("namespace", self.namespace)
        if "." in self.namespace:
            raise ValueError(f"namespace {self.namespace!r} must not contain '.'")
        _check_name("service account", self.service_account)
        _check_name("workload", self.workload)
        try:
            ipaddress.ip_address(self.ip)
        except ValueError:
            raise ValueError(f"ip {self.ip!r} is not an IP address") from None
        for key, value in self.labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"label {key!r}: keys and values must be strings")
        for port in self.inbound_ports:
            _check_port("inbound port", port)
        if self.http_proxy_port is not None:
            _check_port("http proxy port", self.http_proxy_port)
        self._check_router()
        # A private copy, so a caller mutating its dict can not change a frozen identity.
        object.__setattr__(self, "labels", dict(sorted(self.labels.items())))
        object.__setattr__(self, "inbound_ports", tuple(sorted(set(self.inbound_ports))))
        object.__setattr__(self, "published_ports", check_published_ports(self.published_ports))

    def _check_router(self) -> None:
        if not self.router:
            if self.published_ports or self.host_netns is not None:
                raise ValueError("only a router (a gateway's proxy) publishes ports")
            return
        if self.inbound_ports:
            raise ValueError("a router has no inbound ports: nothing is captured")
        if self.http_proxy_port is not None:
            raise ValueError("a router has no explicit HTTP proxy port")
        if self.published_ports and self.host_netns is None:
            raise ValueError("published ports need the host's network namespace (host netns)")
        if self.host_netns is not None:
            if not self.published_ports:
                raise ValueError("a host netns is used only with published ports")
            if not self.host_netns.startswith("/") or any(
                ch.isspace() or ch == "," for ch in self.host_netns
            ):
                raise ValueError(f"host netns {self.host_netns!r} must be an absolute path")

    @property
    def proxy_type(self) -> str:
        """Istio's node type: `sidecar`, or `router` for a gateway."""
        return ROUTER_TYPE if self.router else SIDECAR_TYPE

    @property
    def node_id(self) -> str:
        """Istio's node id: `sidecar~...`, or `router~...` for a gateway."""
        return (
            f"{self.proxy_type}~{self.ip}~{self.pod}.{self.namespace}"
            f"~{self.namespace}.svc.{self.cluster_domain}"
        )

    @property
    def service_cluster(self) -> str:
        """Envoy's `--service-cluster`: `<workload>.<namespace>`, as Istio names it."""
        return f"{self.workload}.{self.namespace}"

    def node_metadata(self) -> dict[str, Any]:
        """The node metadata pilot reads; every value is a string or a string map."""
        metadata: dict[str, Any] = {
            "NAME": self.pod,
            "NAMESPACE": self.namespace,
            "LABELS": dict(self.labels),
            "SERVICE_ACCOUNT": self.service_account,
            "WORKLOAD_NAME": self.workload,
            "INSTANCE_IPS": self.ip,
        }
        if self.router:
            metadata["INTERCEPTION_MODE"] = "NONE"
            if self.published_ports:
                metadata["PUBLISHED_PORTS"] = format_published_ports(self.published_ports)
                metadata["HOST_NETNS"] = self.host_netns
            return metadata
        metadata["INBOUND_PORTS"] = ",".join(str(port) for port in self.inbound_ports)
        if self.http_proxy_port is not None:
            metadata["PROXY_HTTP_PORT"] = str(self.http_proxy_port)
        return metadata

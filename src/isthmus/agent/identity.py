"""Who the sidecar is: the pod facts an agent is started with, in the shape pilot reads.

The node id and metadata keys are the contract with `isthmus.pilot.proxy`, which parses
them back into a `Proxy`: id `sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.DOMAIN`, metadata
NAMESPACE, LABELS, SERVICE_ACCOUNT, WORKLOAD_NAME, INSTANCE_IPS, INBOUND_PORTS and,
when the pod uses an explicit HTTP proxy, PROXY_HTTP_PORT.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_CLUSTER_DOMAIN = "cluster.local"


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
        # A private copy, so a caller mutating its dict can not change a frozen identity.
        object.__setattr__(self, "labels", dict(sorted(self.labels.items())))
        object.__setattr__(self, "inbound_ports", tuple(sorted(set(self.inbound_ports))))

    @property
    def node_id(self) -> str:
        """Istio's sidecar node id."""
        return (
            f"sidecar~{self.ip}~{self.pod}.{self.namespace}"
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
            "INBOUND_PORTS": ",".join(str(port) for port in self.inbound_ports),
        }
        if self.http_proxy_port is not None:
            metadata["PROXY_HTTP_PORT"] = str(self.http_proxy_port)
        return metadata

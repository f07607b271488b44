"""Istio's standard metric labels, each as the Envoy substitution-format string that
yields its value at one reporter.

Values come from where Envoy already has them, so no Python runs per request:
- the proxy's own workload from its environment (`%ENVIRONMENT(...)%`, set by the agent
  from the pod's labels; see model.identity.PeerLabels), which keeps configuration shared
  by every proxy of a namespace byte-identical;
- the destination workload, at the client, from the chosen endpoint's `istio` metadata
  (pilot.envoy.endpoint) and the destination service from the cluster's;
- the source workload, at the server, from the dynamic metadata the peer headers were
  moved into (pilot.telemetry.peer_metadata) — only on mTLS chains, where the peer is
  authenticated; its namespace and principal from the peer certificate.
Envoy writes an empty value for what it does not know; the agent's merged metrics
endpoint shows that as Istio's `unknown`. Label order is Istio's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from isthmus.model.identity import PEER_ENVIRONMENT, UNKNOWN
from isthmus.pilot.envoy.cluster import (
    ISTIO_METADATA,
    SERVICE_HOST_KEY,
    SERVICE_NAME_KEY,
    SERVICE_NAMESPACE_KEY,
)

PEER_METADATA_NAMESPACE = "isthmus.peer"
PEER_KEYS = ("workload", "canonical_service", "canonical_revision", "app", "version", "cluster")

MUTUAL_TLS = "mutual_tls"
NONE = "none"


def _env(key: str) -> str:
    return f"%ENVIRONMENT({PEER_ENVIRONMENT[key]})%"


def _host(key: str) -> str:
    return f"%METADATA(UPSTREAM_HOST:{ISTIO_METADATA}:{key})%"


def _cluster(key: str) -> str:
    return f"%METADATA(CLUSTER:{ISTIO_METADATA}:{key})%"


def _peer(key: str) -> str:
    return f"%DYNAMIC_METADATA({PEER_METADATA_NAMESPACE}:{key})%"


def _side(prefix: str, values: Mapping[str, str], principal: str) -> dict[str, str]:
    return {
        f"{prefix}_workload": values["workload"],
        f"{prefix}_canonical_service": values["canonical_service"],
        f"{prefix}_canonical_revision": values["canonical_revision"],
        f"{prefix}_workload_namespace": values["namespace"],
        f"{prefix}_principal": principal,
        f"{prefix}_app": values["app"],
        f"{prefix}_version": values["version"],
        f"{prefix}_cluster": values["cluster"],
    }


_KEYS = ("workload", "canonical_service", "canonical_revision", "namespace", "app", "version")
_ENV = {key: _env(key) for key in (*_KEYS, "cluster")}
_HOST = {key: _host(key) for key in (*_KEYS, "cluster")}
_PEER = {key: _peer(key) for key in (*_KEYS, "cluster")}
_UNKNOWN = dict.fromkeys((*_KEYS, "cluster"), UNKNOWN)


@dataclass(frozen=True)
class DestinationService:
    """The service a server-side chain serves (pilot knows it; Envoy's inbound does not)."""

    host: str = UNKNOWN
    name: str = UNKNOWN
    namespace: str = UNKNOWN


def source_reporter() -> dict[str, str]:
    """Labels at the client sidecar: itself, the endpoint it picked, that endpoint's
    cluster's service. As Istio, the client does not claim a security policy."""
    return {
        "reporter": "source",
        **_side("source", _ENV, "%UPSTREAM_LOCAL_URI_SAN%"),
        **_side("destination", _HOST, "%UPSTREAM_PEER_URI_SAN%"),
        "destination_service": _cluster(SERVICE_HOST_KEY),
        "destination_service_name": _cluster(SERVICE_NAME_KEY),
        "destination_service_namespace": _cluster(SERVICE_NAMESPACE_KEY),
        "connection_security_policy": UNKNOWN,
    }


def destination_reporter(service: DestinationService, mutual_tls: bool) -> dict[str, str]:
    """Labels at the server sidecar. Only an mTLS peer is trusted to say who it is: on
    plaintext the source is unknown, whatever headers arrived."""
    if mutual_tls:
        source = _side("source", _PEER, "%DOWNSTREAM_PEER_URI_SAN%")
    else:
        source = _side("source", _UNKNOWN, UNKNOWN)
    return {
        "reporter": "destination",
        **source,
        **_side("destination", _ENV, "%DOWNSTREAM_LOCAL_URI_SAN%" if mutual_tls else UNKNOWN),
        "destination_service": service.host,
        "destination_service_name": service.name,
        "destination_service_namespace": service.namespace,
        "connection_security_policy": MUTUAL_TLS if mutual_tls else NONE,
    }


def _ordered(labels: Mapping[str, str], tail: Mapping[str, str]) -> dict[str, str]:
    """Istio's order: reporter, source_*, destination_*, request_protocol, response_*,
    connection_security_policy."""
    head = {k: v for k, v in labels.items() if k != "connection_security_policy"}
    return {**head, **tail, "connection_security_policy": labels["connection_security_policy"]}


def http_labels(reporter: Mapping[str, str], grpc: bool) -> dict[str, str]:
    """grpc_response_status is Istio's empty value on plain HTTP; Envoy refuses an empty
    tag, and to Prometheus an empty label and an absent one are the same series."""
    grpc_status = {"grpc_response_status": "%GRPC_STATUS_NUMBER%"} if grpc else {}
    return _ordered(
        reporter,
        {
            "request_protocol": "grpc" if grpc else "http",
            "response_code": "%RESPONSE_CODE%",
            **grpc_status,
            "response_flags": "%RESPONSE_FLAGS%",
        },
    )


def tcp_labels(reporter: Mapping[str, str]) -> dict[str, str]:
    return _ordered(reporter, {"request_protocol": "tcp", "response_flags": "%RESPONSE_FLAGS%"})

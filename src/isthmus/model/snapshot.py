"""The immutable mesh snapshot pilot translates from, and its small indexes.

No god object: each index answers one kind of question, and generators take only the
indexes they need. Every index is frozen; the snapshot carries a content version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Generic, TypeVar

from isthmus.api.authorization import AuthorizationPolicy
from isthmus.api.mesh_config import MeshConfigFile
from isthmus.api.networking import DestinationRule, ServiceEntry, VirtualService
from isthmus.api.request_authentication import RequestAuthentication
from isthmus.api.security import PeerAuthentication
from isthmus.api.telemetry import Telemetry
from isthmus.model.jwks import JwksSource
from isthmus.model.types import Endpoint, Service

T = TypeVar("T")


@dataclass(frozen=True)
class MeshConfig:
    """The subset of Istio's MeshConfig isthmus honours."""

    trust_domain: str = "cluster.local"
    domain_suffix: str = "cluster.local"
    root_namespace: str = "istio-system"
    connect_timeout: timedelta = timedelta(seconds=10)
    # Istio's MeshConfig.proxyHttpPort equivalent; proxies may also ask for it in metadata.
    proxy_http_port: int | None = None
    # When set (the local runtime sets it), Services without a clusterIP get a virtual IP
    # from this CIDR, as the Kubernetes API server allocates one.
    service_cidr: str | None = None
    # MeshConfig.pathNormalization: how inbound paths are normalized before
    # authorization matches them (NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES).
    path_normalization: str = "BASE"
    # MeshConfig accessLogFile ("" turns access logs off), accessLogEncoding (TEXT or
    # JSON) and accessLogFormat ("" for Istio's default). Istio's default profile has
    # them off; isthmus, like Istio's demo profile, writes them to the sidecar's stdout.
    access_log_file: str = "/dev/stdout"
    access_log_encoding: str = "TEXT"
    access_log_format: str = ""
    # MeshConfig enableTracing and defaultConfig.tracing.sampling (percent).
    enable_tracing: bool = True
    trace_sampling: float = 1.0
    # defaultConfig.tracing.zipkin.address: `host:port` of a mesh service that takes the
    # spans instead of isthmusd's collector.
    zipkin_address: str | None = None

    def with_file(self, file: MeshConfigFile) -> MeshConfig:
        """This config with what a MeshConfig file sets (api.mesh_config)."""
        tracing = file.default_config.tracing if file.default_config else None
        changes: dict[str, object] = {}
        if file.access_log_file is not None:
            changes["access_log_file"] = file.access_log_file
        if file.access_log_encoding is not None:
            changes["access_log_encoding"] = file.access_log_encoding.value
        if file.access_log_format is not None:
            changes["access_log_format"] = file.access_log_format
        if file.enable_tracing is not None:
            changes["enable_tracing"] = file.enable_tracing
        if tracing is not None and tracing.sampling is not None:
            changes["trace_sampling"] = tracing.sampling
        if tracing is not None and tracing.zipkin is not None:
            changes["zipkin_address"] = tracing.zipkin.address
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ConfigEntry(Generic[T]):
    """One user config object with what precedence rules need: its name and age."""

    name: str
    namespace: str
    resource: T
    created_revision: int  # store revision that created it: older wins, as in Istio


@dataclass(frozen=True)
class ServiceIndex:
    """Services by FQDN host, with exportTo visibility."""

    by_host: Mapping[str, Service]

    def get(self, hostname: str) -> Service | None:
        return self.by_host.get(hostname)

    def visible_to(self, namespace: str) -> list[Service]:
        """Services a proxy in `namespace` may see (exportTo "*", ".", or its namespace)."""
        return [
            s for s in self.by_host.values() if is_exported_to(s.export_to, s.namespace, namespace)
        ]

    def __iter__(self) -> Iterable[Service]:  # type: ignore[override]
        return iter(self.by_host.values())


def is_exported_to(export_to: Iterable[str], owner_namespace: str, namespace: str) -> bool:
    """Istio's exportTo: "*" everyone, "." the owner's namespace, or named namespaces."""
    for target in export_to:
        if target == "*" or target == namespace:
            return True
        if target == "." and owner_namespace == namespace:
            return True
    return False


@dataclass(frozen=True)
class EndpointIndex:
    """Endpoints of (FQDN host, service port number)."""

    by_service_port: Mapping[tuple[str, int], tuple[Endpoint, ...]]

    def of(self, hostname: str, port: int) -> tuple[Endpoint, ...]:
        return self.by_service_port.get((hostname, port), ())


@dataclass(frozen=True)
class MeshSnapshot:
    config: MeshConfig
    services: ServiceIndex
    endpoints: EndpointIndex
    virtual_services: tuple[ConfigEntry[VirtualService], ...] = ()
    destination_rules: tuple[ConfigEntry[DestinationRule], ...] = ()
    service_entries: tuple[ConfigEntry[ServiceEntry], ...] = ()
    peer_authentications: tuple[ConfigEntry[PeerAuthentication], ...] = ()
    authorization_policies: tuple[ConfigEntry[AuthorizationPolicy], ...] = ()
    request_authentications: tuple[ConfigEntry[RequestAuthentication], ...] = ()
    telemetries: tuple[ConfigEntry[Telemetry], ...] = ()
    # The fetched key set (JWKS text) of each source the RequestAuthentications name; None
    # when fetching failed, absent when not fetched yet. Both fail closed (see pilot jwt).
    jwks: Mapping[JwksSource, str | None] = field(default_factory=dict)
    version: str = ""
    namespaces: frozenset[str] = field(default_factory=frozenset)

"""The immutable mesh snapshot pilot translates from, and its small indexes.

No god object: each index answers one kind of question, and generators take only the
indexes they need. Every index is frozen; the snapshot carries a content version.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Generic, TypeVar

from isthmus.api.authorization import AuthorizationPolicy
from isthmus.api.gateway import Gateway
from isthmus.api.mesh_config import MeshConfigFile
from isthmus.api.networking import DestinationRule, ServiceEntry, VirtualService
from isthmus.api.request_authentication import RequestAuthentication
from isthmus.api.security import PeerAuthentication
from isthmus.api.sidecar import Sidecar
from isthmus.api.telemetry import Telemetry
from isthmus.model.credentials import SecretIndex
from isthmus.model.jwks import JwksSource
from isthmus.model.locality_lb import ISTIO_DEFAULT, LocalityLbSetting
from isthmus.model.types import Endpoint, Resolution, Service

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
    # MeshConfig outboundTrafficPolicy.mode: where a sidecar sends traffic to destinations
    # outside its registry when no Sidecar says otherwise (ALLOW_ANY: pass through;
    # REGISTRY_ONLY: BlackHoleCluster). Istio's default is ALLOW_ANY.
    outbound_traffic_policy: str = "ALLOW_ANY"
    # MeshConfig localityLbSetting: the locality load balancing of every cluster whose
    # DestinationRule sets none (None: off). Istio's default is `enabled: true`.
    locality_lb_setting: LocalityLbSetting | None = ISTIO_DEFAULT

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
        policy = file.outbound_traffic_policy
        if policy is not None and policy.mode is not None:
            changes["outbound_traffic_policy"] = policy.mode.value
        if file.locality_lb_setting is not None:
            changes["locality_lb_setting"] = LocalityLbSetting.of(file.locality_lb_setting)
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


# The endpoint label that says a workload runs a sidecar (Istio's tlsMode: "istio").
TLS_MODE_LABEL = "security.istio.io/tlsMode"


@dataclass(frozen=True)
class EndpointFacts:
    """What clusters and routes need to know of a service port's endpoints, short of the
    endpoints themselves. Kept apart from EndpointIndex so that a pod coming, going or
    changing readiness rebuilds only the endpoint assignments (Istio pushes CDS for an
    endpoint change only when the service's accounts change)."""

    # (namespace, service account) of every endpoint: the identities clients accept.
    service_accounts: tuple[tuple[str, str], ...] = ()
    # There are endpoints and every one runs a sidecar (tlsMode "istio").
    all_sidecars: bool = False
    # The endpoints of a DNS-resolved service: its clusters carry them inline.
    dns_endpoints: tuple[Endpoint, ...] = ()

    @classmethod
    def of(cls, endpoints: Iterable[Endpoint], dns: bool) -> EndpointFacts:
        found = tuple(endpoints)
        return cls(
            service_accounts=tuple(
                sorted({(e.namespace, e.service_account) for e in found if e.service_account})
            ),
            all_sidecars=bool(found)
            and all(dict(e.labels).get(TLS_MODE_LABEL) == "istio" for e in found),
            dns_endpoints=found if dns else (),
        )


NO_ENDPOINTS = EndpointFacts()


@dataclass(frozen=True)
class EndpointFactsIndex:
    """EndpointFacts of (FQDN host, service port number)."""

    by_service_port: Mapping[tuple[str, int], EndpointFacts]

    def of(self, hostname: str, port: int) -> EndpointFacts:
        return self.by_service_port.get((hostname, port), NO_ENDPOINTS)

    @classmethod
    def build(cls, services: ServiceIndex, endpoints: EndpointIndex) -> EndpointFactsIndex:
        out = {}
        for (host, port), found in endpoints.by_service_port.items():
            service = services.get(host)
            dns = service is not None and service.resolution is Resolution.DNS
            out[host, port] = EndpointFacts.of(found, dns)
        return cls(out)


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
    sidecars: tuple[ConfigEntry[Sidecar], ...] = ()
    gateways: tuple[ConfigEntry[Gateway], ...] = ()
    # The fetched key set (JWKS text) of each source the RequestAuthentications name; None
    # when fetching failed, absent when not fetched yet. Both fail closed (see pilot jwt).
    jwks: Mapping[JwksSource, str | None] = field(default_factory=dict)
    namespaces: frozenset[str] = field(default_factory=frozenset)
    # Secrets by (namespace, name), for gateway credentials (model.credentials). Their
    # repr is a keyed digest, so input_versions and debug output hold no secret byte.
    secrets: SecretIndex = field(default_factory=SecretIndex)
    # Derived from services and endpoints (see EndpointFacts).
    endpoint_facts: EndpointFactsIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        facts = EndpointFactsIndex.build(self.services, self.endpoints)
        object.__setattr__(self, "endpoint_facts", facts)

    @functools.cached_property
    def input_versions(self) -> Mapping[str, str]:
        """A content hash per input field, so a cache can keep what was built only from
        fields that did not change (pilot.views)."""
        return {name: _digest(repr(getattr(self, name))) for name in INPUT_FIELDS}

    @functools.cached_property
    def version(self) -> str:
        """A content hash of every input: equal meshes have equal versions."""
        return _digest("\0".join(f"{k}={v}" for k, v in self.input_versions.items()))


# MeshSnapshot's fields that are inputs to translation: all of them.
INPUT_FIELDS = tuple(f.name for f in dataclasses.fields(MeshSnapshot))


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

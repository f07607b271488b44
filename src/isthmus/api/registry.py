"""Which (apiVersion, kind) pairs isthmus accepts, and the model class of each.

Istio's kinds Istio serves but isthmus does not translate yet are known by name, so a
user applying a Gateway reads "not supported yet" rather than "unknown kind".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from isthmus.api.authorization import AUTHORIZATION_API_VERSIONS, AuthorizationPolicy
from isthmus.api.base import Resource
from isthmus.api.core import Deployment, Namespace, Service, ServiceAccount
from isthmus.api.networking import (
    NETWORKING_API_VERSIONS,
    DestinationRule,
    ServiceEntry,
    VirtualService,
    WorkloadEntry,
)
from isthmus.api.request_authentication import (
    REQUEST_AUTHENTICATION_API_VERSIONS,
    RequestAuthentication,
)
from isthmus.api.security import SECURITY_API_VERSIONS, PeerAuthentication
from isthmus.api.sidecar import Sidecar
from isthmus.api.telemetry import TELEMETRY_API_VERSIONS, Telemetry

__all__ = [
    "KINDS",
    "LIST_API_VERSION",
    "LIST_KIND",
    "KindInfo",
    "UnknownKindError",
    "lookup",
    "resolve_kind_name",
]

LIST_KIND = "List"
LIST_API_VERSION = "v1"


@dataclass(frozen=True)
class KindInfo:
    """A kind isthmus accepts: its served apiVersions (preferred first) and model."""

    kind: str
    api_versions: tuple[str, ...]
    model: type[Resource]
    namespaced: bool
    plural: str
    short_names: tuple[str, ...] = ()

    @property
    def preferred_api_version(self) -> str:
        return self.api_versions[0]


class UnknownKindError(ValueError):
    """The (apiVersion, kind) pair is not one isthmus accepts; str() is the user message."""


def _networking(kind: type[Resource], plural: str, *short: str) -> KindInfo:
    return KindInfo(kind.__name__, NETWORKING_API_VERSIONS, kind, True, plural, short)


KINDS: Mapping[str, KindInfo] = {
    info.kind: info
    for info in (
        _networking(VirtualService, "virtualservices", "vs"),
        _networking(DestinationRule, "destinationrules", "dr"),
        _networking(ServiceEntry, "serviceentries", "se"),
        _networking(WorkloadEntry, "workloadentries", "we"),
        _networking(Sidecar, "sidecars"),
        KindInfo(
            "PeerAuthentication",
            SECURITY_API_VERSIONS,
            PeerAuthentication,
            True,
            "peerauthentications",
            ("pa",),
        ),
        KindInfo(
            "AuthorizationPolicy",
            AUTHORIZATION_API_VERSIONS,
            AuthorizationPolicy,
            True,
            "authorizationpolicies",
            ("ap",),
        ),
        KindInfo(
            "RequestAuthentication",
            REQUEST_AUTHENTICATION_API_VERSIONS,
            RequestAuthentication,
            True,
            "requestauthentications",
            ("ra",),
        ),
        KindInfo(
            "Telemetry", TELEMETRY_API_VERSIONS, Telemetry, True, "telemetries", ("telemetry",)
        ),
        KindInfo("Namespace", ("v1",), Namespace, False, "namespaces", ("ns",)),
        KindInfo("Service", ("v1",), Service, True, "services", ("svc",)),
        KindInfo("ServiceAccount", ("v1",), ServiceAccount, True, "serviceaccounts", ("sa",)),
        KindInfo("Deployment", ("apps/v1",), Deployment, True, "deployments", ("deploy",)),
    )
}

_GATEWAY_API = ("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1")
NOT_SUPPORTED_YET: Mapping[str, tuple[str, ...]] = {
    "Gateway": (*NETWORKING_API_VERSIONS, *_GATEWAY_API),
    "EnvoyFilter": ("networking.istio.io/v1alpha3",),
    "WorkloadGroup": NETWORKING_API_VERSIONS,
    "ProxyConfig": ("networking.istio.io/v1beta1",),
    "WasmPlugin": ("extensions.istio.io/v1alpha1",),
    "HTTPRoute": _GATEWAY_API,
    "GRPCRoute": _GATEWAY_API,
    "GatewayClass": _GATEWAY_API,
    "ReferenceGrant": _GATEWAY_API,
}


def lookup(api_version: str, kind: str) -> KindInfo:
    """The KindInfo for an (apiVersion, kind); raise UnknownKindError with a clear message."""
    info = KINDS.get(kind)
    if info is not None and api_version in info.api_versions:
        return info
    unsupported = NOT_SUPPORTED_YET.get(kind)
    if unsupported is not None and api_version in unsupported:
        raise UnknownKindError(f"kind {kind} ({api_version}) is not supported yet")
    served = info.api_versions if info is not None else unsupported
    if served is not None:
        raise UnknownKindError(
            f"kind {kind} is not served by apiVersion {api_version}; use {_one_of(served)}"
        )
    accepted = ", ".join(sorted(KINDS))
    raise UnknownKindError(f"unknown kind {kind} ({api_version}); isthmus accepts {accepted}")


def resolve_kind_name(name: str) -> KindInfo | None:
    """Find a kind as typed on a command line: `VirtualService`, `virtualservices`, `vs`,
    optionally qualified by group (`virtualservices.networking.istio.io`)."""
    wanted = name.split(".", 1)[0].lower()
    for info in KINDS.values():
        if wanted in (info.kind.lower(), info.plural, *info.short_names):
            return info
    return None


def _one_of(values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return values[0]
    return "one of " + ", ".join(values)

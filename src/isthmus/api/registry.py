"""Which (apiVersion, kind) pairs isthmus accepts, and the model class of each.

Istio's kinds Istio serves but isthmus does not translate yet are known by name, so a
user applying a Gateway reads "not supported yet" rather than "unknown kind".

On a command line a kind is named as kubectl names resources: `vs`, `virtualservice`,
`virtualservices`, `VirtualService`, with its group (`virtualservices.networking.istio.io`)
or with a version and its group (`virtualservices.v1beta1.networking.istio.io`);
`resolve_resource` reads every form. Objects are shown in the version named, else in
the kind's preferred version (the first it serves), whatever version they were applied
with: every version of a kind has the same schema, as Istio's CRDs do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from isthmus.api.authorization import AUTHORIZATION_API_VERSIONS, AuthorizationPolicy
from isthmus.api.base import Resource
from isthmus.api.core import Deployment, Namespace, Service, ServiceAccount
from isthmus.api.gateway import Gateway
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
from isthmus.api.secret import Secret
from isthmus.api.security import SECURITY_API_VERSIONS, PeerAuthentication
from isthmus.api.sidecar import Sidecar
from isthmus.api.telemetry import TELEMETRY_API_VERSIONS, Telemetry

__all__ = [
    "KINDS",
    "LIST_API_VERSION",
    "LIST_KIND",
    "KindInfo",
    "ResourceRef",
    "UnknownKindError",
    "UnservedVersionError",
    "lookup",
    "resolve_kind_name",
    "resolve_resource",
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

    @property
    def group(self) -> str:
        """The API group ("networking.istio.io"; "" for core kinds such as Service)."""
        return self.preferred_api_version.rpartition("/")[0]

    def spellings(self) -> tuple[str, ...]:
        """The resource names a command line may use, lower case."""
        return (self.kind.lower(), self.plural, *self.short_names)


@dataclass(frozen=True)
class ResourceRef:
    """A kind as named on a command line, and the apiVersion it named, if any."""

    info: KindInfo
    api_version: str | None = None

    @property
    def shown_api_version(self) -> str:
        """The apiVersion to show objects in: the one named, else the preferred one."""
        return self.api_version or self.info.preferred_api_version


class UnknownKindError(ValueError):
    """The (apiVersion, kind) pair is not one isthmus accepts; str() is the user message."""


class UnservedVersionError(ValueError):
    """A command line named a version the kind does not serve; str() is the user message."""


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
        _networking(Gateway, "gateways", "gw"),
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
        KindInfo("Secret", ("v1",), Secret, True, "secrets"),
        KindInfo("Deployment", ("apps/v1",), Deployment, True, "deployments", ("deploy",)),
    )
}

_GATEWAY_API = ("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1")
NOT_SUPPORTED_YET: Mapping[str, tuple[str, ...]] = {
    "Gateway": _GATEWAY_API,
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
    """Find a kind as typed on a command line (see `resolve_resource`), or None."""
    try:
        ref = resolve_resource(name)
    except UnservedVersionError:
        return None
    return ref.info if ref is not None else None


def resolve_resource(name: str) -> ResourceRef | None:
    """The kind a command line names, as kubectl reads it (case-insensitive): `resource`,
    `resource.group` or `resource.version.group` (`services.v1.` for a core kind), where
    resource is the kind, its plural or a short name. None if no kind isthmus serves
    matches; UnservedVersionError if the kind and group match but the version is not
    one the kind serves.
    """
    resource, _, rest = name.lower().partition(".")
    if not rest:
        info = _find(resource, None)
        return ResourceRef(info) if info is not None else None
    version, _, group = rest.partition(".")
    unserved: UnservedVersionError | None = None
    if group or rest.endswith("."):  # resource.version.group, tried first as kubectl does
        info = _find(resource, group)
        if info is not None:
            api_version = f"{group}/{version}" if group else version
            if api_version in info.api_versions:
                return ResourceRef(info, api_version)
            unserved = UnservedVersionError(
                f"kind {info.kind} is not served by apiVersion {api_version} ({name}); "
                f"it serves {', '.join(info.api_versions)}"
            )
    info = _find(resource, rest)  # resource.group
    if info is not None:
        return ResourceRef(info)
    if unserved is not None:
        raise unserved
    return None


def _find(resource: str, group: str | None) -> KindInfo | None:
    for info in KINDS.values():
        if resource in info.spellings() and (group is None or group == info.group):
            return info
    return None


def _one_of(values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return values[0]
    return "one of " + ", ".join(values)

"""Kind names on the command line: every spelling kubectl accepts, as the api registry knows
them (`vs`, `virtualservices`, `VirtualService`, `virtualservices.networking.istio.io`,
`virtualservices.v1beta1.networking.istio.io`).

The daemon only ever sees the canonical kind name; the registry stays the one list of
kinds isthmus accepts.
"""

from __future__ import annotations

from isthmus.api.registry import (
    KINDS,
    KindInfo,
    ResourceRef,
    UnservedVersionError,
    resolve_resource,
)

__all__ = [
    "KindInfo",
    "ResourceRef",
    "UnknownKind",
    "group_of",
    "resolve_kind",
    "resolve_ref",
    "resource_name",
    "resource_of",
]


class UnknownKind(ValueError):
    """The user named a kind isthmus does not serve, or a version it does not serve."""

    def __init__(self, name: str, reason: str | None = None) -> None:
        spellings = sorted(s for info in KINDS.values() for s in (info.plural, *info.short_names))
        super().__init__(
            reason or f'unknown resource type "{name}"; known types: {", ".join(spellings)}'
        )


def resolve_ref(name: str) -> ResourceRef:
    """The kind (and apiVersion, if named) a user's spelling names, or UnknownKind."""
    try:
        ref = resolve_resource(name)
    except UnservedVersionError as exc:
        raise UnknownKind(name, str(exc)) from exc
    if ref is None:
        raise UnknownKind(name)
    return ref


def resolve_kind(name: str) -> KindInfo:
    """The kind a user's spelling names (case-insensitive), or UnknownKind."""
    return resolve_ref(name).info


def group_of(api_version: str) -> str:
    """The API group of an apiVersion: "networking.istio.io/v1" -> that group, "v1" -> ""."""
    return api_version.rpartition("/")[0]


def resource_name(kind: str, group: str) -> str:
    """kubectl's name of a resource type: `virtualservice.networking.istio.io`, `service`."""
    return f"{kind.lower()}.{group}" if group else kind.lower()


def resource_of(info: KindInfo) -> str:
    return resource_name(info.kind, group_of(info.preferred_api_version))

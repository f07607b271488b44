"""The kinds the CLI names, and every spelling kubectl accepts for them.

`isthmus get vs`, `get virtualservices`, `get VirtualService` and
`get virtualservices.networking.istio.io` all mean the same kind; the daemon only ever
sees the canonical kind name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindInfo:
    """One kind: its canonical name, API group, plural, short names and scope."""

    kind: str
    group: str
    plural: str
    short_names: tuple[str, ...] = ()
    namespaced: bool = True

    @property
    def resource(self) -> str:
        """kubectl's name of the resource type, e.g. `virtualservice.networking.istio.io`."""
        return resource_name(self.kind, self.group)

    def spellings(self) -> set[str]:
        singular = self.kind.lower()
        names = {singular, self.plural, *self.short_names}
        if self.group:
            names |= {f"{singular}.{self.group}", f"{self.plural}.{self.group}"}
        return names


KINDS: tuple[KindInfo, ...] = (
    KindInfo("Namespace", "", "namespaces", ("ns",), namespaced=False),
    KindInfo("Service", "", "services", ("svc",)),
    KindInfo("ServiceAccount", "", "serviceaccounts", ("sa",)),
    KindInfo("Deployment", "apps", "deployments", ("deploy",)),
    KindInfo("VirtualService", "networking.istio.io", "virtualservices", ("vs",)),
    KindInfo("DestinationRule", "networking.istio.io", "destinationrules", ("dr",)),
    KindInfo("ServiceEntry", "networking.istio.io", "serviceentries", ("se",)),
    KindInfo("WorkloadEntry", "networking.istio.io", "workloadentries", ("we",)),
    KindInfo("Gateway", "networking.istio.io", "gateways", ("gw",)),
    KindInfo("Sidecar", "networking.istio.io", "sidecars"),
    KindInfo("PeerAuthentication", "security.istio.io", "peerauthentications", ("pa",)),
    KindInfo("AuthorizationPolicy", "security.istio.io", "authorizationpolicies"),
    KindInfo("RequestAuthentication", "security.istio.io", "requestauthentications", ("ra",)),
)

_BY_SPELLING: dict[str, KindInfo] = {
    spelling: info for info in KINDS for spelling in info.spellings()
}


class UnknownKind(ValueError):
    """The user named a kind the CLI does not know."""

    def __init__(self, name: str) -> None:
        known = ", ".join(sorted(s for info in KINDS for s in (info.plural, *info.short_names)))
        super().__init__(f'unknown resource type "{name}"; known types: {known}')


def resolve_kind(name: str) -> KindInfo:
    """The kind a user's spelling names (case-insensitive), or UnknownKind."""
    info = _BY_SPELLING.get(name.lower())
    if info is None:
        raise UnknownKind(name)
    return info


def resource_name(kind: str, group: str) -> str:
    """`virtualservice.networking.istio.io` for grouped kinds, `service` for core ones."""
    return f"{kind.lower()}.{group}" if group else kind.lower()


def group_of(api_version: str) -> str:
    """The API group of an apiVersion: "networking.istio.io/v1" -> that group, "v1" -> ""."""
    return api_version.rpartition("/")[0]

"""Which VirtualService governs a host, as seen from a proxy.

Rules (Istio's for sidecars):
- A VirtualService applies to the mesh (sidecars) when `gateways` is empty or names `mesh`.
- It is visible to a proxy when its exportTo (default "*") includes the proxy's namespace.
- Short hosts resolve relative to the VirtualService's namespace; wildcards cover services.
- Several VirtualServices for one host: Istio does not merge them for sidecars; the oldest
  (first created, then namespace/name) that yields routes for the proxy wins and the
  others are ignored for that host. An exact host beats a wildcard host; among
  wildcards the most specific wins.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from isthmus.api.networking import VirtualService
from isthmus.model.hosts import host_matches, resolve_config_host
from isthmus.model.snapshot import ConfigEntry, MeshSnapshot, is_exported_to


def applies_to_mesh(vs: VirtualService) -> bool:
    gateways = vs.spec.gateways
    return not gateways or "mesh" in gateways


def resolved_hosts(
    entry: ConfigEntry[VirtualService], domain_suffix: str, known_hosts: Collection[str] = ()
) -> list[str]:
    return [
        resolve_config_host(h, entry.namespace, known_hosts, domain_suffix)
        for h in entry.resource.spec.hosts
    ]


def visible_virtual_services(
    mesh: MeshSnapshot, namespace: str
) -> Sequence[ConfigEntry[VirtualService]]:
    """Mesh-bound VirtualServices a proxy in `namespace` may use, oldest first."""
    return [
        e
        for e in mesh.virtual_services
        if applies_to_mesh(e.resource)
        and is_exported_to(e.resource.spec.export_to or ["*"], e.namespace, namespace)
    ]


class VirtualServiceIndex:
    """Candidate VirtualServices by resolved host, built once per view: each service's
    lookup is then a dict hit plus the wildcards, instead of resolving every
    VirtualService's hosts again for every service (quadratic at 1000 services)."""

    __slots__ = ("_exact", "_wildcards")

    def __init__(
        self,
        candidates: Sequence[ConfigEntry[VirtualService]],
        domain_suffix: str,
        known_hosts: Collection[str] = (),
    ) -> None:
        self._exact: dict[str, list[ConfigEntry[VirtualService]]] = {}
        self._wildcards: list[tuple[str, ConfigEntry[VirtualService]]] = []
        for entry in candidates:
            for host in dict.fromkeys(resolved_hosts(entry, domain_suffix, known_hosts)):
                if host.startswith("*"):
                    self._wildcards.append((host, entry))
                else:
                    self._exact.setdefault(host, []).append(entry)

    def for_host(self, hostname: str) -> list[ConfigEntry[VirtualService]]:
        """The VirtualServices that may route `hostname`, in the order Istio tries them.

        Every VirtualService naming the host exactly, oldest first (the first that yields
        routes for a proxy wins); with none, the one most specific wildcard (oldest for the
        same wildcard). A wildcard never applies to a host some VirtualService names
        exactly.
        """
        exact = self._exact.get(hostname)
        if exact:
            return list(exact)
        wildcard: tuple[int, ConfigEntry[VirtualService]] | None = None
        for host, entry in self._wildcards:
            if host_matches(host, hostname) and (wildcard is None or len(host) > wildcard[0]):
                wildcard = (len(host), entry)
        return [wildcard[1]] if wildcard else []


def virtual_service_index(mesh: MeshSnapshot, namespace: str) -> VirtualServiceIndex:
    """The mesh-bound VirtualServices a proxy in `namespace` sees, by host."""
    return VirtualServiceIndex(
        visible_virtual_services(mesh, namespace),
        mesh.config.domain_suffix,
        mesh.services.by_host,
    )

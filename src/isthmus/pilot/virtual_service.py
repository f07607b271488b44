"""Which VirtualService governs a host, as seen from a proxy.

Rules (Istio's for sidecars):
- A VirtualService applies to the mesh (sidecars) when `gateways` is empty or names `mesh`.
- It is visible to a proxy when its exportTo (default "*") includes the proxy's namespace.
- Short hosts resolve relative to the VirtualService's namespace; wildcards cover services.
- Several VirtualServices for one host: Istio does not merge them for sidecars; the oldest
  (first created, then namespace/name) wins and the others are ignored for that host. An
  exact host beats a wildcard host.
"""

from __future__ import annotations

from collections.abc import Sequence

from isthmus.api.networking import VirtualService
from isthmus.model.hosts import host_matches, resolve_short_name
from isthmus.model.snapshot import ConfigEntry, MeshSnapshot, is_exported_to


def applies_to_mesh(vs: VirtualService) -> bool:
    gateways = vs.spec.gateways
    return not gateways or "mesh" in gateways


def resolved_hosts(entry: ConfigEntry[VirtualService], domain_suffix: str) -> list[str]:
    return [
        resolve_short_name(h, entry.namespace, domain_suffix) for h in entry.resource.spec.hosts
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


def virtual_service_for(
    hostname: str, candidates: Sequence[ConfigEntry[VirtualService]], domain_suffix: str
) -> ConfigEntry[VirtualService] | None:
    """The VirtualService that routes `hostname`: exact host first, else the most specific
    wildcard; ties go to the oldest."""
    best: tuple[int, ConfigEntry[VirtualService]] | None = None
    for entry in candidates:
        for host in resolved_hosts(entry, domain_suffix):
            if not host_matches(host, hostname):
                continue
            specificity = 1_000_000 if host == hostname else len(host)
            if best is None or specificity > best[0]:
                best = (specificity, entry)
    return best[1] if best else None

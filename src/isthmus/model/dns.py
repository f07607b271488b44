"""What a pod's /etc/hosts says: the cluster DNS of the local runtime, from the mesh.

Each Kubernetes Service visible from the pod's namespace resolves, under every name
Kubernetes gives it (`name`, `name.ns`, `name.ns.svc`, the FQDN), to its virtual IP; a
headless Service resolves to its ready endpoints' addresses, as CoreDNS answers.
"""

from __future__ import annotations

from isthmus.model.hosts import kubernetes_alt_names
from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Resolution


def hosts_entries(mesh: MeshSnapshot, namespace: str) -> dict[str, list[str]]:
    """IP -> names for a pod in `namespace`."""
    entries: dict[str, list[str]] = {}
    for svc in mesh.services.visible_to(namespace):
        if svc.source_kind != "Service":
            continue
        names = kubernetes_alt_names(
            svc.hostname, svc.namespace, namespace, mesh.config.domain_suffix
        )
        if svc.address:
            entries.setdefault(svc.address, []).extend(names)
        elif svc.resolution is Resolution.PASSTHROUGH and svc.ports:
            for endpoint in mesh.endpoints.of(svc.hostname, svc.ports[0].port):
                if endpoint.ready:
                    entries.setdefault(endpoint.address, []).extend(names)
    return entries

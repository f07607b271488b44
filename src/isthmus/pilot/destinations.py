"""Which cluster a VirtualService destination names."""

from __future__ import annotations

from isthmus.api.networking import Destination
from isthmus.model.hosts import resolve_config_host
from isthmus.model.snapshot import MeshSnapshot
from isthmus.pilot.naming import outbound_cluster_name


def destination_host(dest: Destination, vs_namespace: str, mesh: MeshSnapshot) -> str:
    """The destination's host as a FQDN (a short name is in the VirtualService's namespace)."""
    return resolve_config_host(
        dest.host, vs_namespace, mesh.services.by_host, mesh.config.domain_suffix
    )


def destination_cluster(
    dest: Destination, vs_namespace: str, listener_port: int, mesh: MeshSnapshot
) -> str:
    """Istio's port choice: explicit port, else the service's only port, else the listener port."""
    host = destination_host(dest, vs_namespace, mesh)
    if dest.port is not None:
        port = dest.port.number
    else:
        svc = mesh.services.get(host)
        port = svc.ports[0].port if svc is not None and len(svc.ports) == 1 else listener_port
    return outbound_cluster_name(port, dest.subset or "", host)

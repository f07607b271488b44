"""The mesh controller: store objects -> MeshSnapshot -> per-proxy Snapshots for xds.

It is the daemon's SnapshotSource. A store change only marks the mesh dirty and asks the
ADS server for a (debounced) push; the MeshSnapshot is rebuilt once, lazily, when the
push asks for the first proxy's snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from envoy.config.core.v3 import base_pb2

from isthmus.model.build import ConfigObject, build_snapshot
from isthmus.model.objects import ParsedObjects
from isthmus.model.snapshot import MeshConfig, MeshSnapshot
from isthmus.model.types import Workload
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.proxy import InvalidNode, proxy_from_node
from isthmus.pilot.resources import Snapshot
from isthmus.store import ResourceStore
from isthmus.xds import ProxyRejected

log = logging.getLogger("isthmus.mesh")

# Kinds that shape proxy configuration; others (Deployment, ServiceAccount) do not.
MESH_KINDS = frozenset(
    {"Namespace", "Service", "ServiceEntry", "WorkloadEntry", "VirtualService", "DestinationRule"}
)


class MeshController:
    def __init__(self, store: ResourceStore, config: MeshConfig | None = None) -> None:
        self._store = store
        self._objects = ParsedObjects(store)
        self._config = config or MeshConfig()
        self._generator = ConfigGenerator()
        self._workloads: tuple[Workload, ...] = ()
        self._mesh: MeshSnapshot | None = None

    @property
    def config(self) -> MeshConfig:
        return self._config

    def invalidate(self) -> None:
        self._mesh = None

    def set_workloads(self, workloads: Iterable[Workload]) -> None:
        """Runtime-owned workloads (pods); replaces the previous set."""
        self._workloads = tuple(workloads)
        self.invalidate()

    @property
    def mesh(self) -> MeshSnapshot:
        if self._mesh is None:
            objects = [
                ConfigObject(resource, o.created_revision)
                for o, resource in self._objects.list()
                if o.key.kind in MESH_KINDS
            ]
            self._mesh = build_snapshot(objects, self._workloads, self._config)
            log.info(
                "mesh rebuilt version=%s services=%d revision=%d",
                self._mesh.version,
                len(self._mesh.services.by_host),
                self._store.revision,
            )
        return self._mesh

    def snapshot_for(self, node: base_pb2.Node) -> Snapshot:
        try:
            proxy = proxy_from_node(node, self._config.proxy_http_port)
        except InvalidNode as exc:
            raise ProxyRejected(str(exc)) from None
        # The generator checks each view's consistency (every RDS name a listener uses
        # exists, every EDS cluster has an assignment) before handing it out.
        return self._generator.snapshot(self.mesh, proxy)

"""The mesh controller: store objects -> MeshSnapshot -> per-proxy Snapshots for xds.

It is the daemon's SnapshotSource. A store change only marks the mesh dirty and asks the
ADS server for a (debounced) push; the MeshSnapshot is rebuilt once, lazily, when the
push asks for the first proxy's snapshot. Pushes translate in a worker thread, so this
class is thread-safe; the event loop only ever invalidates and reads pods.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2

from isthmus.model.build import ConfigObject, build_snapshot
from isthmus.model.jwks import JwksSource
from isthmus.model.objects import ParsedObjects
from isthmus.model.pods import POD_KIND, InvalidPod, PodView, pod_view
from isthmus.model.snapshot import MeshConfig, MeshSnapshot
from isthmus.model.types import Workload
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.proxy import InvalidNode, proxy_from_node
from isthmus.pilot.resources import Snapshot
from isthmus.store import ObjectKey, ResourceStore
from isthmus.xds import ProxyRejected

log = logging.getLogger("isthmus.mesh")

# Kinds that shape proxy configuration; others (Deployment, ServiceAccount) do not. Pods
# (reported by the node runtime) are the endpoints.
CONFIG_KINDS = frozenset(
    {
        "Namespace",
        "Service",
        "ServiceEntry",
        "WorkloadEntry",
        "VirtualService",
        "DestinationRule",
        "PeerAuthentication",
        "AuthorizationPolicy",
        "RequestAuthentication",
        "Telemetry",
        "Sidecar",
        "Secret",
        "Gateway",
    }
)
MESH_KINDS = CONFIG_KINDS | {POD_KIND}


class MeshController:
    def __init__(self, store: ResourceStore, config: MeshConfig | None = None) -> None:
        self._store = store
        self._objects = ParsedObjects(store)
        self._config = config or MeshConfig()
        self._generator = ConfigGenerator()
        self._pods: dict[ObjectKey, tuple[int, PodView]] = {}
        self._jwks: Mapping[JwksSource, str | None] = {}
        self._mesh: MeshSnapshot | None = None
        self._mesh_generation = -1
        self._generation = 0  # bumped by every invalidate()
        # Translation runs in a worker thread (the ADS server's pushes) while the event
        # loop takes changes and reads pods: the mesh and generator under one lock, the
        # parsed pods under their own, so the loop never waits for a translation.
        self._lock = threading.RLock()
        self._pods_lock = threading.Lock()

    @property
    def config(self) -> MeshConfig:
        return self._config

    def invalidate(self) -> None:
        """Something the mesh is built from changed. A build already running finishes but
        is not kept (its generation is older), so no change is ever lost to a race."""
        self._generation += 1

    def set_jwks(self, jwks: Mapping[JwksSource, str | None]) -> None:
        """The key sets fetched for RequestAuthentications' jwksUris (daemon.jwks) changed;
        the caller asks for the push. Set before invalidating, so a build that reads the
        old generation with the new keys is simply rebuilt."""
        self._jwks = dict(jwks)
        self.invalidate()

    def pods(self) -> list[PodView]:
        """The Pod objects the node runtime reported, each parsed once per version."""
        with self._pods_lock:
            out = []
            seen = set()
            for obj in self._store.list(kind=POD_KIND):
                seen.add(obj.key)
                cached = self._pods.get(obj.key)
                if cached is None or cached[0] != obj.resource_version:
                    try:
                        cached = (obj.resource_version, pod_view(obj.body))
                    except InvalidPod as exc:  # checked at the API; skip rather than fail
                        log.warning("mesh pod_invalid key=%s error=%r", obj.key, str(exc))
                        continue
                    self._pods[obj.key] = cached
                out.append(cached[1])
            for key in [k for k in self._pods if k not in seen]:
                del self._pods[key]
            return out

    def workloads(self) -> list[Workload]:
        return [pod.workload() for pod in self.pods() if pod.ip]

    @property
    def mesh(self) -> MeshSnapshot:
        with self._lock:
            generation = self._generation
            if self._mesh is not None and self._mesh_generation == generation:
                return self._mesh
            objects = [
                ConfigObject(resource, o.created_revision)
                for kind in sorted(CONFIG_KINDS)
                for o, resource in self._objects.list(kind=kind)
            ]
            mesh = build_snapshot(objects, self.workloads(), self._config, self._jwks)
            self._mesh, self._mesh_generation = mesh, generation
            log.info(
                "mesh rebuilt version=%s services=%d revision=%d",
                mesh.version,
                len(mesh.services.by_host),
                self._store.revision,
            )
            return mesh

    def snapshot_for(self, node: base_pb2.Node) -> Snapshot:
        try:
            proxy = proxy_from_node(node, self._config.proxy_http_port)
        except InvalidNode as exc:
            raise ProxyRejected(str(exc)) from None
        # The generator checks each view's consistency (every RDS name a listener uses
        # exists, every EDS cluster has an assignment) before handing it out.
        with self._lock:
            return self._generator.snapshot(self.mesh, proxy)

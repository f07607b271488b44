"""A translation cache that keeps, across mesh versions, what was built from inputs that
did not change.

Every cached view records which MeshSnapshot fields its build read (through a
`TrackedMesh`, including the fields read by the views it used) and the content version
of each. A later mesh reuses the view as long as those versions are unchanged. So a
VirtualService change rebuilds route configurations but not clusters or endpoint
assignments, and a pod becoming ready rebuilds only endpoint assignments: Istio's
ConfigsUpdated scoping, decided by what each build really read rather than by a list
kept by hand.

A cached value must not keep the mesh it was built from (a closure reading it later
would read an old mesh, and its reads would not be recorded where they happen).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from isthmus.model.snapshot import MeshSnapshot

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
ViewKey = tuple[Hashable, ...]


class TrackedMesh:
    """Stands in for a MeshSnapshot and tells its Views which fields a build reads."""

    __slots__ = ("_mesh", "_views")

    def __init__(self, mesh: MeshSnapshot, views: Views) -> None:
        self._mesh = mesh
        self._views = views

    def __getattr__(self, name: str) -> object:
        value = getattr(self._mesh, name)
        self._views.note_read(name)
        return value


@dataclass
class _Entry:
    value: object
    reads: dict[str, str]  # field -> its content version when the value was built
    mesh_version: str  # the mesh it was built or last found valid for
    used: int  # the generation it was last used in


@dataclass
class ViewStats:
    """How many views were built: tests read how much a mesh change rebuilt."""

    builds: int = 0


class Views:
    """Values built from a mesh, by key, valid while the fields they read are unchanged.

    Not thread-safe: callers hold one lock around `bind` and the `get`s that follow
    (isthmusd's MeshController does)."""

    def __init__(self) -> None:
        self._entries: dict[ViewKey, _Entry] = {}
        self._mesh: MeshSnapshot | None = None
        self._tracked: MeshSnapshot | None = None
        self._building: list[set[str]] = []
        self._generation = 0
        self.stats = ViewStats()

    def bind(self, mesh: MeshSnapshot) -> MeshSnapshot:
        """Make `mesh` the one views are built from; returns the tracked stand-in that
        builds must read it through."""
        if self._mesh is None or self._mesh.version != mesh.version:
            self._generation += 1
            self._mesh = mesh
            self._tracked = cast(MeshSnapshot, TrackedMesh(mesh, self))
            self._sweep()
        assert self._tracked is not None
        return self._tracked

    def get(self, key: ViewKey, build: Callable[[], V]) -> V:
        """The value for `key`: cached if everything its build read is unchanged."""
        mesh = self._mesh
        assert mesh is not None, "bind a mesh first"
        entry = self._entries.get(key)
        if entry is not None and self._valid(entry, mesh):
            entry.used = self._generation
        else:
            self._building.append(set())
            try:
                value = build()
            finally:
                reads = self._building.pop()
            versions = mesh.input_versions
            entry = _Entry(value, {f: versions[f] for f in reads}, mesh.version, self._generation)
            self._entries[key] = entry
            self.stats.builds += 1
        if self._building:  # the view being built depends on what this one read
            self._building[-1].update(entry.reads)
        return cast(V, entry.value)

    @property
    def generation(self) -> int:
        """Bumped by every mesh with a new version."""
        return self._generation

    def note_read(self, name: str) -> None:
        if self._building:
            self._building[-1].add(name)

    def _valid(self, entry: _Entry, mesh: MeshSnapshot) -> bool:
        if entry.mesh_version == mesh.version:
            return True
        versions = mesh.input_versions
        if all(versions[f] == v for f, v in entry.reads.items()):
            entry.mesh_version = mesh.version
            return True
        return False

    def _sweep(self) -> None:
        """Drop what a new mesh made stale and what the previous mesh did not use (a view
        of proxies that are gone), so the cache holds about one mesh's worth of views."""
        assert self._mesh is not None
        keep = self._generation - 1
        stale = [
            key
            for key, entry in self._entries.items()
            if entry.used < keep or not self._valid(entry, self._mesh)
        ]
        for key in stale:
            del self._entries[key]


class Memo(Generic[K, V]):
    """Values by their complete inputs, for resources finer than a view (one endpoint
    assignment among thousands): a view rebuilt for one changed input takes every other
    resource from here, the same object, already serialized. It keeps what the current and
    the previous mesh generation used."""

    def __init__(self, views: Views) -> None:
        self._views = views
        self._generation = views.generation
        self._current: dict[K, V] = {}
        self._previous: dict[K, V] = {}

    def get(self, key: K, build: Callable[[K], V]) -> V:
        if self._generation != self._views.generation:
            self._generation = self._views.generation
            self._previous, self._current = self._current, {}
        found = self._current.get(key)
        if found is None:
            found = self._previous.get(key)
            if found is None:
                found = build(key)
            self._current[key] = found
        return found

"""What a Delta fake sidecar holds of one type: resource name -> version, shared where equal.

A Delta sidecar must remember the version of every resource it accepted, to send them
as `initial_resource_versions` when it reconnects. 2000 sidecars with 12000 resources
each would take gigabytes as plain dicts, so a sidecar holds a base shared by all the
sidecars of its process (the first complete set seen for the type) plus its own
differences from it, which are few (its inbound clusters and listeners).

A sidecar's first response of a type on a fresh stream carries everything it holds;
responses equal in type, system version (the server's hash of the set) and counts give
equal holdings, so later sidecars reuse the first one's result instead of reading all
resources again. Every later response is applied resource by resource.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.service.discovery.v3 import discovery_pb2


def _initial_versions(versions: dict[str, str]) -> bytes:
    """A serialized DeltaDiscoveryRequest carrying only `initial_resource_versions`.

    Serialized requests concatenate into one (protobuf merges them; for a map key that
    occurs twice the later entry wins), so a request is the bytes of its head, its
    base and its own differences, with no per-sidecar copy of the base.
    """
    request = discovery_pb2.DeltaDiscoveryRequest()
    request.initial_resource_versions.update(versions)
    data: bytes = request.SerializeToString()
    return data


class Base:
    """The versions shared by the sidecars of a process for one type; never changed."""

    __slots__ = ("_initial", "versions")

    def __init__(self, versions: dict[str, str]) -> None:
        self.versions = versions
        self._initial: bytes | None = None

    def initial_versions(self) -> bytes:
        if self._initial is None:
            self._initial = _initial_versions(self.versions)
        return self._initial


class Held:
    """One sidecar's resources of one type: `base` with `own` on top (None: not held)."""

    __slots__ = ("base", "own", "size")

    def __init__(self, base: Base, own: dict[str, str | None], size: int) -> None:
        self.base = base
        self.own = own
        self.size = size  # how many resources the sidecar holds

    def copy(self) -> Held:
        return Held(self.base, dict(self.own), self.size)

    def version(self, name: str) -> str | None:
        if name in self.own:
            return self.own[name]
        return self.base.versions.get(name)

    def put(self, name: str, version: str) -> None:
        if self.version(name) is None:
            self.size += 1
        if self.base.versions.get(name) == version:
            self.own.pop(name, None)
        else:
            self.own[name] = version

    def remove(self, name: str) -> None:
        if self.version(name) is None:
            return
        self.size -= 1
        if name in self.base.versions:
            self.own[name] = None
        else:
            del self.own[name]

    def initial_versions(self) -> bytes:
        """`initial_resource_versions` of everything held, serialized (see `_initial_versions`)."""
        if all(v is not None for v in self.own.values()):
            own = {n: v for n, v in self.own.items() if v is not None}
            return self.base.initial_versions() + _initial_versions(own)
        versions = {n: v for n, v in self.base.versions.items() if n not in self.own}
        versions.update((n, v) for n, v in self.own.items() if v is not None)
        return _initial_versions(versions)


class Holdings:
    """Applies Delta responses to sidecars' holdings; one per client process."""

    def __init__(self) -> None:
        self._bases: dict[str, Base] = {}
        self._fresh: dict[tuple[str, str, int, int], Held] = {}

    def apply(self, held: Held | None, response: discovery_pb2.DeltaDiscoveryResponse) -> Held:
        """`held` (None: nothing yet) after accepting `response`."""
        if held is None or held.size == 0:
            return self._first(response)
        for resource in response.resources:
            held.put(resource.name, resource.version)
        for name in response.removed_resources:
            held.remove(name)
        return held

    def own_entries(self, held: Iterable[Held]) -> int:
        """How many entries the sidecars keep beyond the shared bases (memory check)."""
        return sum(len(h.own) for h in held)

    def _first(self, response: discovery_pb2.DeltaDiscoveryResponse) -> Held:
        type_url = response.type_url
        key = (
            type_url,
            response.system_version_info,
            len(response.resources),
            len(response.removed_resources),
        )
        known = self._fresh.get(key)
        if known is not None:
            return known.copy()
        versions = {r.name: r.version for r in response.resources}
        base = self._bases.get(type_url)
        if base is None:
            base = self._bases[type_url] = Base(versions)
        own: dict[str, str | None] = {
            n: v for n, v in versions.items() if base.versions.get(n) != v
        }
        own.update(dict.fromkeys(base.versions.keys() - versions.keys()))
        held = Held(base, own, len(versions))
        self._fresh[key] = held.copy()
        return held

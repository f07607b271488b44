"""Envoy resources as pilot hands them to xds: serialized once, versioned by content.

A `PreparedResource` carries the encoded `google.protobuf.Any` and a content hash. The
same instance is shared by every proxy whose view contains it, so a resource is
serialized once however many proxies receive it. Shared `Layer`s also keep their
resources encoded as a SotW response carries them, so a response to any number of
proxies is those bytes plus a few per-proxy fields (see `isthmus.pilot.wire`).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from google.protobuf import any_pb2
from google.protobuf.message import Message

from isthmus.pilot import wire

_TYPE_URL_PREFIX = "type.googleapis.com/"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

# Order in which a full push sends types (make-before-break, as Envoy expects over ADS).
PUSH_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)


@dataclass(frozen=True)
class PreparedResource:
    """One named resource, packed once into its `Any`'s bytes, with a version that is a
    hash of the message's bytes."""

    name: str
    type_url: str
    encoded: bytes  # the serialized google.protobuf.Any
    version: str

    @classmethod
    def of(cls, name: str, message: Message) -> PreparedResource:
        # Deterministic serialization so equal messages give equal versions.
        data = message.SerializeToString(deterministic=True)
        type_url = _TYPE_URL_PREFIX + message.DESCRIPTOR.full_name
        encoded = any_pb2.Any(type_url=type_url, value=data).SerializeToString()
        digest = hashlib.blake2b(data, digest_size=8).hexdigest()
        return cls(name=name, type_url=type_url, encoded=encoded, version=digest)

    @property
    def any(self) -> any_pb2.Any:
        """The packed message, parsed on each use: only checks and tools unpack
        resources, so no parsed copy is kept next to the bytes."""
        return any_pb2.Any.FromString(self.encoded)

    @cached_property
    def sotw_entry(self) -> bytes:
        """This resource as one ``resources`` entry of a SotW DiscoveryResponse; framed
        once, for every proxy sent it on its own (responses of changes only)."""
        return wire.length_delimited(wire.SOTW_RESOURCES, self.encoded)

    @cached_property
    def delta_entry(self) -> bytes:
        """This resource as one ``resources`` entry (a `Resource`) of a
        DeltaDiscoveryResponse; encoded once, on first use, for every Delta stream."""
        resource = (
            wire.string_field(wire.RESOURCE_VERSION, self.version)
            + wire.length_delimited(wire.RESOURCE_BODY, self.encoded)
            + wire.string_field(wire.RESOURCE_NAME, self.name)
        )
        return wire.length_delimited(wire.DELTA_RESOURCES, resource)


def _version_in(resources: Mapping[str, PreparedResource], name: str) -> str | None:
    found = resources.get(name)
    return found.version if found is not None else None


def changed_resources(
    new: Mapping[str, PreparedResource], old: Mapping[str, PreparedResource]
) -> list[PreparedResource]:
    """What `new` has that `old` does not (or at another version). Shared layers compare
    layer by layer: the same layer costs nothing, a changed one is diffed once for all
    proxies (`Layer.changed_since`)."""
    if not old:
        return list(new.values())
    if isinstance(new, Layers) and isinstance(old, Layers) and len(new.layers) == len(old.layers):
        out: list[PreparedResource] = []
        for layer, older in zip(new.layers, old.layers, strict=True):
            if layer is not older:
                out.extend(layer.changed_since(older))
        return out
    return [r for name, r in new.items() if _version_in(old, name) != r.version]


def encoded_size(resources: Mapping[str, PreparedResource]) -> int:
    """Bytes of the encoded resources; shared layers answer from their cache."""
    if isinstance(resources, Layer):
        return resources.size
    if isinstance(resources, Layers):
        return sum(layer.size for layer in resources.layers)
    return sum(len(r.encoded) for r in resources.values())


def content_digest(resources: Mapping[str, PreparedResource]) -> str:
    """A hash of names and resource versions, independent of insertion order."""
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(resources):
        h.update(name.encode())
        h.update(b"\0")
        h.update(resources[name].version.encode())
    return h.hexdigest()


class Layer(Mapping[str, PreparedResource]):
    """An immutable set of resources shared by many proxies, hashed once."""

    __slots__ = (
        "__weakref__",
        "_diff",
        "_digest",
        "_items",
        "_names",
        "_names_match",
        "_size",
        "_sotw_entries",
    )

    def __init__(self, items: Mapping[str, PreparedResource]) -> None:
        self._items = dict(items)
        self._digest: str | None = None
        self._diff: tuple[weakref.ref[Layer], tuple[PreparedResource, ...]] | None = None
        self._names: frozenset[str] | None = None
        self._names_match: tuple[weakref.ref[Layer], bool] | None = None
        self._size: int | None = None
        self._sotw_entries: bytes | None = None

    def changed_since(self, older: Layer) -> tuple[PreparedResource, ...]:
        """The resources that are new or of another version than in `older`: computed once
        for every proxy that moves from `older` to this layer (a weak reference, so old
        layers are not kept alive by newer ones)."""
        if self._diff is not None and self._diff[0]() is older:
            return self._diff[1]
        changed = tuple(
            r for name, r in self._items.items() if _version_in(older, name) != r.version
        )
        self._diff = (weakref.ref(older), changed)
        return changed

    def has_names_of(self, older: Layer) -> bool:
        """Whether this layer has exactly the names of `older`: compared once for every
        proxy that held `older` (a weak reference, as in `changed_since`)."""
        if self._names_match is not None and self._names_match[0]() is older:
            return self._names_match[1]
        same = self.names == older.names
        self._names_match = (weakref.ref(older), same)
        return same

    @property
    def names(self) -> frozenset[str]:
        """Every name, computed once for all the proxies that share the layer."""
        if self._names is None:
            self._names = frozenset(self._items)
        return self._names

    @property
    def size(self) -> int:
        """Bytes of the encoded resources, summed once (proxy-status shows them)."""
        if self._size is None:
            self._size = sum(len(r.encoded) for r in self._items.values())
        return self._size

    def __getitem__(self, name: str) -> PreparedResource:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = content_digest(self._items)
        return self._digest

    @property
    def sotw_entries(self) -> bytes:
        """Every resource, in iteration order, as ``resources`` entries of a SotW
        DiscoveryResponse: encoded on first use, then the same bytes for every proxy."""
        if self._sotw_entries is None:
            self._sotw_entries = b"".join(r.sotw_entry for r in self._items.values())
        return self._sotw_entries


class Layers(Mapping[str, PreparedResource]):
    """A proxy's resources of one type as a union of shared layers with disjoint names.

    No per-proxy copy of the (large) shared layers is made, and the version is a hash of
    the layers' cached digests, so a proxy costs a few references, not thousands.
    """

    __slots__ = ("_layers", "_names", "_versions")

    def __init__(self, *layers: Layer) -> None:
        self._layers = layers
        self._names: frozenset[str] | None = None
        self._versions: dict[str, str] | None = None

    @property
    def layers(self) -> tuple[Layer, ...]:
        return self._layers

    @property
    def names(self) -> frozenset[str]:
        """Every name, computed once: a proxy's subscription is compared with it in one
        set comparison instead of a lookup per name across the layers."""
        if self._names is None:
            if len(self._layers) == 1:
                self._names = self._layers[0].names
            else:
                self._names = frozenset().union(*(layer.names for layer in self._layers))
        return self._names

    @property
    def versions(self) -> dict[str, str]:
        """Version by name, computed once: a reconnecting Delta proxy's
        initial_resource_versions is compared with it in one dict comparison."""
        if self._versions is None:
            self._versions = {name: res.version for name, res in self.items()}
        return self._versions

    def __getitem__(self, name: str) -> PreparedResource:
        for layer in self._layers:
            if name in layer:
                return layer[name]
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(name in layer for layer in self._layers)

    def __iter__(self) -> Iterator[str]:
        for layer in self._layers:
            yield from layer

    def __len__(self) -> int:
        return sum(len(layer) for layer in self._layers)

    @property
    def sotw_chunks(self) -> tuple[bytes, ...]:
        """Each layer's cached SotW entries, in order; joined, they are this union's, so
        a response costs one copy of them and no encoding."""
        return tuple(layer.sotw_entries for layer in self._layers)

    @property
    def digest(self) -> str:
        if len(self._layers) == 1:
            return self._layers[0].digest
        h = hashlib.blake2b(digest_size=8)
        for layer in self._layers:
            h.update(layer.digest.encode())
        return h.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """Everything one proxy should have: per type URL, resources by name.

    `version(type_url)` is a content hash of that type's resources, so two snapshots with
    the same resources have the same version and a recomputation that changes nothing
    pushes nothing.
    """

    resources: Mapping[str, Mapping[str, PreparedResource]]
    _versions: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def of_type(self, type_url: str) -> Mapping[str, PreparedResource]:
        return self.resources.get(type_url, {})

    def version(self, type_url: str) -> str:
        cached = self._versions.get(type_url)
        if cached is None:
            resources = self.of_type(type_url)
            if isinstance(resources, (Layer, Layers)):
                cached = resources.digest
            else:
                cached = content_digest(resources)
            self._versions[type_url] = cached
        return cached

    def consistency_errors(self) -> list[str]:
        """Every RDS name a listener uses exists, every EDS cluster has an assignment."""
        from isthmus.pilot.consistency import dangling_references

        return dangling_references(self)

"""Stored objects are parsed once per resource version, and forgotten once deleted."""

from __future__ import annotations

from isthmus.model.objects import ParsedObjects
from isthmus.store import ObjectKey
from isthmus.store.memory import MemoryStore


def _service(port: int) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": port}]},
    }


def test_parsed_once_per_version_and_forgotten_after_delete() -> None:
    store = MemoryStore()
    key = ObjectKey("Service", "default", "web")
    store.apply([(key, _service(80))])
    objects = ParsedObjects(store)
    ((_, first),) = objects.list()
    ((_, again),) = objects.list(kind="Service")
    assert again is first  # same version: not parsed again
    store.apply([(key, _service(81))])
    ((_, changed),) = objects.list()
    assert changed is not first and changed.spec.ports[0].port == 81  # type: ignore[attr-defined]
    store.delete([key])
    assert objects.list() == []
    store.apply([(key, _service(82))])
    ((_, recreated),) = objects.list()
    assert recreated.spec.ports[0].port == 82  # type: ignore[attr-defined]

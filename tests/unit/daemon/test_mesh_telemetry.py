"""Stored Telemetry objects reach the mesh snapshot pilot translates from, oldest first, and
a change to one marks the mesh for a push like any other config kind."""

from __future__ import annotations

from isthmus.api.loader import load_documents
from isthmus.api.telemetry import Telemetry
from isthmus.daemon.mesh import MESH_KINDS, MeshController
from isthmus.model.build import ConfigObject, build_snapshot
from isthmus.store import MemoryStore, ObjectKey

MESH_DEFAULT = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing: [{randomSamplingPercentage: 10}]
"""

NAMESPACE_NO_LOG = """\
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: namespace-no-log, namespace: foo}
spec:
  accessLogging: [{disabled: true}]
"""


def _store(*texts: str) -> MemoryStore:
    store = MemoryStore()
    for text in texts:  # one apply each: the first is the oldest
        bodies = [(ObjectKey(*o.key), o.body) for o in load_documents(text, "t.yaml")]
        store.apply(bodies)
    return store


def test_telemetry_changes_push_the_mesh() -> None:
    assert "Telemetry" in MESH_KINDS


def test_stored_telemetries_are_in_the_mesh_snapshot() -> None:
    mesh = MeshController(_store(NAMESPACE_NO_LOG, MESH_DEFAULT)).mesh

    assert [(t.namespace, t.name) for t in mesh.telemetries] == [
        ("foo", "namespace-no-log"),
        ("istio-system", "mesh-default"),
    ]
    first, second = mesh.telemetries
    assert first.created_revision < second.created_revision
    assert isinstance(first.resource, Telemetry)
    assert first.resource.spec.access_logging[0].disabled is True
    assert second.resource.spec.tracing[0].random_sampling_percentage == 10.0


def test_a_telemetry_changes_the_snapshot_version() -> None:
    (loaded,) = load_documents(MESH_DEFAULT, "t.yaml")
    without = build_snapshot([])
    with_it = build_snapshot([ConfigObject(loaded.resource, created_revision=1)])

    assert without.telemetries == ()
    assert with_it.telemetries[0].resource == loaded.resource
    assert with_it.version != without.version

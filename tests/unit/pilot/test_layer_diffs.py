"""Shared layers answer, once for every proxy, what changed since an older layer and
whether they hold the same names (xds sends SotW EDS/RDS as changes on that basis)."""

from __future__ import annotations

from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from isthmus.pilot.resources import Layer, Layers, PreparedResource, changed_resources


def _assignment(name: str, weight: int = 0) -> PreparedResource:
    message = ClusterLoadAssignment(cluster_name=name)
    if weight:
        message.endpoints.add().load_balancing_weight.value = weight
    return PreparedResource.of(name, message)


def _layer(*resources: PreparedResource) -> Layer:
    return Layer({r.name: r for r in resources})


def test_changed_resources_are_the_new_and_the_changed_only() -> None:
    a, b, c = _assignment("a"), _assignment("b"), _assignment("c")
    old = _layer(a, b)
    new = _layer(a, _assignment("b", weight=3), c)
    changed = changed_resources(Layers(new), Layers(old))
    assert sorted(r.name for r in changed) == ["b", "c"]
    # The same answer, the same objects, for the next proxy: computed once.
    assert new.changed_since(old) is new.changed_since(old)
    assert changed_resources(Layers(old), Layers(old)) == []
    assert changed_resources(Layers(new), {}) == list(new.values())


def test_a_changed_layer_of_the_same_names_is_recognised_once() -> None:
    old = _layer(_assignment("a"), _assignment("b"))
    same_names = _layer(_assignment("a", weight=2), _assignment("b"))
    more = _layer(_assignment("a"), _assignment("b"), _assignment("c"))
    assert same_names.has_names_of(old)
    assert not more.has_names_of(old)
    assert more.names == frozenset({"a", "b", "c"})
    assert Layers(old, _layer(_assignment("z"))).names == frozenset({"a", "b", "z"})

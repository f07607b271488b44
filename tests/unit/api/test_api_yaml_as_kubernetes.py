"""YAML read as Kubernetes (go-yaml) reads it where libyaml and PyYAML differ from it."""

from __future__ import annotations

import pytest
from _apihelp import document, load, load_errors

from isthmus.api.networking import ServiceEntry
from isthmus.api.yamlstream import read_documents


def _data(text: str) -> object:
    documents, problem = read_documents(text, text.encode())
    assert problem is None, problem
    return [doc.data for doc in documents]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [1.2.3.4, 2001:db8::]\n", {"a": ["1.2.3.4", "2001:db8::"]}),
        ("a: [2001:db8::, fe80::]\n", {"a": ["2001:db8::", "fe80::"]}),
        ("a: {b: 2001:db8::}\n", {"a": {"b": "2001:db8::"}}),
        ("a: [x:, y]\n", {"a": ["x:", "y"]}),
        ("a: [b: c]\n", {"a": [{"b": "c"}]}),  # colon then blank still makes a pair
        ("a: [2001:db8::1]\n", {"a": ["2001:db8::1"]}),
    ],
)
def test_a_colon_inside_a_flow_collection_is_part_of_the_scalar(
    text: str, expected: object
) -> None:
    assert _data(text) == [expected]


def test_service_entry_with_ipv6_addresses_in_a_flow_sequence_is_accepted() -> None:
    # Istio's own CRD test data writes the addresses this way.
    text = document(
        "ServiceEntry",
        """
        hosts: [example.com]
        addresses: [1.2.3.4, 2001:db8::]
        ports: [{name: http, number: 80, protocol: HTTP}]
        resolution: DNS
        """,
    )

    (obj,) = load(text)

    assert isinstance(obj.resource, ServiceEntry)
    assert obj.resource.spec.addresses == ["1.2.3.4", "2001:db8::"]
    assert obj.line == 1


def test_every_document_is_read_again_when_one_needs_the_kubernetes_reading() -> None:
    first = document("ServiceEntry", "hosts: [a.example.com]\nresolution: NONE", name="a")
    second = document(
        "ServiceEntry",
        "hosts: [b.example.com]\naddresses: [2001:db8::]\nresolution: NONE",
        name="b",
    )

    objects = load(first + "---\n" + second)

    assert [obj.key[2] for obj in objects] == ["a", "b"]
    assert [obj.line for obj in objects] == [1, 10]


def test_limits_hold_on_the_kubernetes_reading_too() -> None:
    bomb = ['l0: &l0 ["x","x","x","x","x","x","x","x","x","x"]']
    for level in range(1, 31):
        bomb.append(f"l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 10) + "]")
    text = "a: [2001:db8::]\n" + "\n".join(bomb) + "\n"

    assert load_errors(text) == [
        "app.yaml:7 input rejected: input has more than 200,000 YAML nodes "
        "(an alias counts as a copy of what it refers to)"
    ]


def test_invalid_yaml_in_the_kubernetes_reading_names_its_line() -> None:
    text = "a: [2001:db8::]\nb: c: d\n"

    assert load_errors(text) == ["app.yaml:2 invalid YAML: mapping values are not allowed here"]

"""Hostile input: every case gives one clear ApiError line, never another exception."""

from __future__ import annotations

import pytest
from _apihelp import load, load_errors

NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"


def billion_laughs(levels: int = 9) -> str:
    lines = ['lol0: &lol0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        refs = ",".join([f"*lol{level - 1}"] * 10)
        lines.append(f"lol{level}: &lol{level} [{refs}]")
    return "\n".join(lines) + "\n"


CASES = {
    "not-yaml": (
        "a: b: c\n",
        "app.yaml:1 invalid YAML: mapping values are not allowed in this context",
    ),
    "unclosed-flow": (
        "a: [1, 2\nb: 3\n",
        "app.yaml:2 invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence)",
    ),
    "tab-indentation": (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n\tname: x\n",
        "app.yaml:4 invalid YAML: tab character; YAML indentation must use spaces",
    ),
    "nul-character": (
        "apiVersion: v1\x00\n",
        "app.yaml:1 invalid YAML: control characters are not allowed (character #x0000)",
    ),
    "binary-junk": (
        bytes(range(256)) * 4,
        "app.yaml:2 input is not UTF-8 text (byte 0x80 at offset 128)",
    ),
    "lone-surrogate": (
        "kind: \ud800\n",
        "app.yaml: input is not valid text (surrogates not allowed)",
    ),
    "deep-flow-nesting-500": (
        "[" * 500 + "]" * 500,
        "app.yaml:1 input rejected: nesting is deeper than 100 levels",
    ),
    "deep-flow-nesting": (
        "[" * 200_000 + "]" * 200_000,
        "app.yaml:1 input rejected: nesting is deeper than 100 levels",
    ),
    "deep-block-nesting": (
        "".join(" " * depth + "a:\n" for depth in range(300)) + " " * 300 + "b\n",
        "app.yaml:101 input rejected: nesting is deeper than 100 levels",
    ),
    "alias-bomb": (
        billion_laughs(),
        "app.yaml:6 input rejected: input has more than 200,000 YAML nodes "
        "(an alias counts as a copy of what it refers to)",
    ),
    "recursive-alias": (
        "a: &loop\n  b: *loop\n",
        "app.yaml:2 input rejected: alias *loop refers to a node that contains it",
    ),
    "undefined-alias": (
        "a: *nowhere\n",
        "app.yaml:1 invalid YAML: found undefined alias 'nowhere'",
    ),
    "duplicate-key": (
        "apiVersion: v1\nkind: Namespace\nkind: Namespace\nmetadata: {name: x}\n",
        'app.yaml:3 invalid YAML: found duplicate key "kind" (while constructing a mapping)',
    ),
    "unknown-tag": (
        "apiVersion: !python/object:os.system v1\n",
        "app.yaml:1 invalid YAML: could not determine a constructor for the tag "
        "'!python/object:os.system'",
    ),
    "binary-value": (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\nspec: !!binary aGVsbG8=\n",
        "app.yaml:1 Namespace x: spec: unsupported YAML value of type binary",
    ),
    "explicit-timestamp": (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n"
        "    since: !!timestamp 2024-01-01\n",
        "app.yaml:1 Namespace x: metadata.labels.since: unsupported YAML value of type timestamp",
    ),
    "unreadable-explicit-int": (
        "apiVersion: !!int v1\n",
        'app.yaml:1 invalid YAML: cannot read "v1" as !!int',
    ),
    "unreadable-explicit-bool": (
        "a: 1\nb: !!bool maybe\n",
        'app.yaml:2 invalid YAML: cannot read "maybe" as !!bool',
    ),
    "unreadable-explicit-timestamp": (
        "a: !!timestamp 2024-13-45\n",
        'app.yaml:1 invalid YAML: cannot read "2024-13-45" as !!timestamp',
    ),
    "set-tag-on-a-scalar": (
        "a: !!set abc\n",
        "app.yaml:1 invalid YAML: expected a mapping node, but found scalar",
    ),
    "map-tag-on-a-sequence": (
        "a: !!map [1, 2]\n",
        "app.yaml:1 invalid YAML: expected a mapping node, but found sequence",
    ),
    "integer-with-more-digits-than-python-reads": (
        "a: 1\nb: " + "1" * 5_000 + "\n",
        "app.yaml:2 input rejected: an integer has more than 4,300 digits",
    ),
    "huge-integer": (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
        f"spec: {{host: r, trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: "
        f"{10**40}}}}}}}}}\n",
        "app.yaml:1 DestinationRule default/r: "
        "spec.trafficPolicy.connectionPool.tcp.maxConnections: "
        f"must be at most 2147483647 (got {10**40})",
    ),
}


@pytest.mark.parametrize("case", CASES.keys())
def test_hostile_input_gives_one_clear_line(case: str) -> None:
    data, expected = CASES[case]

    assert load_errors(data) == [expected]


@pytest.mark.parametrize("as_bytes", [False, True])
def test_input_over_four_mib_is_rejected_up_front(as_bytes: bool) -> None:
    text = "a: " + "x" * (50 * 1024 * 1024) + "\n"

    errors = load_errors(text.encode() if as_bytes else text)

    assert errors == ["app.yaml: input is 52,428,804 bytes; the limit is 4 MiB (4,194,304 bytes)"]


def test_alias_bomb_is_refused_without_expanding_it() -> None:
    # 2**30 copies if expanded: refused by counting, not by building them (the suite's
    # timeout would catch an expansion; no timing threshold here).
    assert load_errors(billion_laughs(levels=30)) == [
        "app.yaml:6 input rejected: input has more than 200,000 YAML nodes "
        "(an alias counts as a copy of what it refers to)"
    ]


def test_small_alias_use_is_fine() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Namespace, metadata: {name: a, labels: &common {team: x}}}\n"
        "- {apiVersion: v1, kind: Namespace, metadata: {name: b, labels: *common}}\n"
    )

    first, second = load(text)

    assert first.resource.metadata.labels == second.resource.metadata.labels == {"team": "x"}
    second.body["metadata"]["labels"]["team"] = "y"
    assert first.body["metadata"]["labels"] == {"team": "x"}, "bodies share no aliased parts"


def test_utf8_byte_order_mark_is_accepted() -> None:
    (obj,) = load(b"\xef\xbb\xbf" + NAMESPACE.format(name="bom").encode())

    assert obj.key == ("Namespace", "", "bom")


def test_problems_of_every_document_are_collected_in_order() -> None:
    text = (
        NAMESPACE.format(name="Bad_Name")
        + "---\n"
        + NAMESPACE.format(name="fine")
        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec: {ports: [{port: 0}], "
        "x: 1}\n" + "---\nkind: Nope\napiVersion: v9\nmetadata: {name: n}\n" + "---\na: b: c\n"
    )

    errors = load_errors(text)

    assert errors == [
        'app.yaml:1 Namespace Bad_Name: metadata.name: "Bad_Name" is not a valid name: use at '
        "most 63 lower-case letters, digits and '-', starting and ending with a letter or digit",
        "app.yaml:11 Service default/svc: spec.x: unknown field",
        "app.yaml:16 Nope default/n: unknown kind Nope (v9); isthmus accepts AuthorizationPolicy, "
        "Deployment, DestinationRule, Gateway, Namespace, PeerAuthentication, "
        "RequestAuthentication, Secret, Service, ServiceAccount, ServiceEntry, Sidecar, Telemetry, "
        "VirtualService, WorkloadEntry",
        "app.yaml:20 invalid YAML: mapping values are not allowed in this context",
    ]


def test_every_semantic_problem_of_a_document_is_reported() -> None:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
        "spec:\n  hosts: [r]\n  gateways: [gw/]\n  http:\n  - route:\n"
        "    - destination: {host: r}\n      weight: 101\n    timeout: 1500us\n"
    )

    assert load_errors(text) == [
        "app.yaml:1 VirtualService default/r: spec.gateways[0]: namespace and gateway name "
        "cannot be empty",
        "app.yaml:1 VirtualService default/r: spec.http[0].route[0].weight: must be between 0 and "
        "100",
        "app.yaml:1 VirtualService default/r: spec.http[0].timeout: only durations to ms precision "
        "are supported",
    ]


def test_huge_flat_list_is_cut_off_at_the_node_limit_quickly() -> None:
    text = "items: [" + ",".join(["1"] * 1_000_000) + "]\n"

    errors = load_errors(text)

    assert errors == [
        "app.yaml:1 input rejected: input has more than 200,000 YAML nodes "
        "(an alias counts as a copy of what it refers to)"
    ]

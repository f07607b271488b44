"""Work per document stays near-linear: checks rewritten for that report exactly what the
straightforward pairwise (or path-per-value) versions report, and big documents load."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
from _apihelp import document, load, load_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isthmus.api import names
from isthmus.api.checks_virtualservice import _check_hosts, first_overlapping_hosts
from isthmus.api.errors import ROOT, FieldPath, FieldProblem, Problems, one_line, short_repr
from isthmus.api.yamlstream import NumberKey, plain_data_problems, read_documents

PROPERTY = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- VirtualService hosts -----------------------------------------------------------------


def pairwise_check_hosts(problems: Problems, path: FieldPath, hosts: list[str]) -> None:
    """The reference: every host against every earlier one, first overlap reported."""
    if not hosts:
        problems.add(path, "at least one host is required")
        return
    all_valid = True
    for position, host in enumerate(hosts):
        here = path.index(position)
        if host == "*":
            problems.add(here, 'host "*" is not allowed for the mesh; name the hosts')
            all_valid = False
            continue
        problem = names.wildcard_domain_error(host)
        if problem and not names.is_ip_address(host):
            problems.add(here, problem)
            all_valid = False
    if not all_valid:
        return
    for later in range(len(hosts)):
        for earlier in range(later):
            if names.hosts_overlap(hosts[earlier], hosts[later]):
                relation = "duplicates" if hosts[earlier] == hosts[later] else "overlaps"
                problems.add(path.index(later), f"{relation} host {short_repr(hosts[earlier])}")
                break


def pairwise_first_overlapping(hosts: list[str]) -> list[int | None]:
    return [
        next((e for e in range(later) if names.hosts_overlap(hosts[e], hosts[later])), None)
        for later in range(len(hosts))
    ]


def check_hosts_both_ways(hosts: list[str]) -> list[str]:
    expected, actual = Problems(), Problems()
    pairwise_check_hosts(expected, FieldPath("spec.hosts"), hosts)
    _check_hosts(actual, FieldPath("spec.hosts"), hosts)
    assert actual.items == expected.items
    return [problem.render() for problem in actual.items]


# Few labels, so that overlaps are frequent: equal hosts, `*.a.b` over `c.a.b`, `*.b` over
# `*.a.b`, `*b.c` over `ab.c` (a wildcard label need not end at a dot), IPs, a final dot.
_LABELS = st.sampled_from(["a", "b", "ab", "b-a", "x1", "B"])
_WILDCARD_LABELS = st.sampled_from(["*", "*a", "*b", "*-a", "*ab"])
_IPS = st.sampled_from(
    ["10.0.0.1", "1.2.3.4", "::1", "2001:db8::1", "fe80::1%eth0", "::ffff:1.2.3.4", "4"]
)
_DNS_NAMES = st.one_of(
    st.lists(_LABELS, min_size=1, max_size=4).map(".".join),
    st.tuples(_WILDCARD_LABELS, st.lists(_LABELS, max_size=3)).map(
        lambda parts: ".".join([parts[0], *parts[1]])
    ),
)
valid_hosts = _IPS | _DNS_NAMES | _DNS_NAMES.map(lambda name: name + ".")
any_hosts = valid_hosts | st.sampled_from(["*", "", "a..b", "a.1", "*.*.a", "a_b", "*a*", "x" * 64])


@PROPERTY
@given(st.lists(valid_hosts, max_size=14))
def test_hosts_overlap_check_matches_pairwise_reference(hosts: list[str]) -> None:
    check_hosts_both_ways(hosts)


@PROPERTY
@given(st.lists(valid_hosts | any_hosts, max_size=10))
def test_hosts_check_with_invalid_hosts_matches_pairwise_reference(hosts: list[str]) -> None:
    check_hosts_both_ways(hosts)


@PROPERTY
@given(st.lists(st.text(alphabet="*.ab-1", max_size=7), max_size=12))
def test_first_overlapping_hosts_matches_pairwise_for_any_strings(hosts: list[str]) -> None:
    assert first_overlapping_hosts(hosts) == pairwise_first_overlapping(hosts)


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        (["a.b", "a.b"], ['spec.hosts[1]: duplicates host "a.b"']),
        (["c.a.b", "*.a.b"], ['spec.hosts[1]: overlaps host "c.a.b"']),
        (["*.a.b", "*.b"], ['spec.hosts[1]: overlaps host "*.a.b"']),
        (["*.b", "x.y", "*.a.b"], ['spec.hosts[2]: overlaps host "*.b"']),
        (["ab.c", "x.ab.c", "*b.c"], ['spec.hosts[2]: overlaps host "ab.c"']),
        (
            ["*b.c", "*-b.c", "ab.c"],
            ['spec.hosts[1]: overlaps host "*b.c"', 'spec.hosts[2]: overlaps host "*b.c"'],
        ),
        (
            ["1.2.3.4", "*4", "1.2.3.4"],
            ['spec.hosts[1]: overlaps host "1.2.3.4"', 'spec.hosts[2]: duplicates host "1.2.3.4"'],
        ),
        (["a.b.", "*.b.", "a.b"], ['spec.hosts[1]: overlaps host "a.b."']),
        (["*.", "x.y"], []),
    ],
)
def test_hosts_overlap_examples(hosts: list[str], expected: list[str]) -> None:
    assert check_hosts_both_ways(hosts) == expected


def many_hosts_vs(hosts: list[str]) -> str:
    listed = "".join(f"- '{host}'\n" for host in hosts)
    return document(
        "VirtualService", f"hosts:\n{listed}http:\n- route:\n  - destination: {{host: r}}\n"
    )


BIG = [f"svc-{n}.ns.svc.cluster.local" for n in range(30_000 - 3)] + [
    "*.other.example.com",
    "*.mesh.internal",
    "*ext.example.org",
]


def test_virtual_service_with_30000_hosts_loads() -> None:
    (obj,) = load(many_hosts_vs(BIG))

    assert obj.body["spec"]["hosts"] == BIG


def test_duplicate_and_overlap_among_30000_hosts_are_found() -> None:
    hosts = [*BIG[:20_000], BIG[123], *BIG[20_000:], "*.svc.cluster.local"]

    assert load_errors(many_hosts_vs(hosts)) == [
        "app.yaml:1 VirtualService production/reviews: spec.hosts[20000]: duplicates host "
        '"svc-123.ns.svc.cluster.local"',
        "app.yaml:1 VirtualService production/reviews: spec.hosts[30001]: overlaps host "
        '"svc-0.ns.svc.cluster.local"',
    ]


# --- plain data: paths of problems --------------------------------------------------------


def pathwise_plain_problems(value: Any, path: FieldPath) -> list[tuple[str, str]]:
    """The reference: a full FieldPath for every value."""
    problems: list[tuple[str, str]] = []

    def walk(value: Any, path: FieldPath) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    problems.append(
                        (str(path), f"keys must be strings; quote the key {short_repr(key)}")
                    )
                    continue
                walk(item, path.field(key) if key.isidentifier() else path.key(key))
        elif isinstance(value, list):
            for position, item in enumerate(value):
                walk(item, path.index(position))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append((str(path), "must be a finite number"))
        elif value is not None and not isinstance(value, str | int | float | bool):
            kind = {"bytes": "binary", "date": "timestamp", "set": "set"}[type(value).__name__]
            problems.append((str(path), f"unsupported YAML value of type {kind}"))

    walk(value, path)
    return problems


def error_lines(problems: list[tuple[str, str]], prefix: str) -> list[str]:
    return [one_line(f"{prefix}: {FieldProblem(*problem).render()}") for problem in problems]


_PIECES = st.sampled_from(["a", "b ", " ", "  ", "\t", "\x01", "é", "-", ".", "[", "x_1"])
keys = st.one_of(
    st.text(max_size=6),
    st.lists(st.tuples(_PIECES, st.integers(1, 1200)), max_size=3).map(
        lambda runs: "".join(piece * count for piece, count in runs)
    ),
)
bad_or_fine = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=3),
    st.floats(),
    st.just(b"\x00"),
    st.just(datetime.date(2024, 1, 1)),
    st.builds(set),
)
plain_values = st.recursive(
    bad_or_fine,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(keys | st.integers() | st.floats() | st.booleans(), children, max_size=4)
    ),
    max_leaves=16,
)


@PROPERTY
@given(plain_values, st.sampled_from(["app.yaml:1 document 1", "x", "a  b\x02c"]))
def test_plain_data_problems_read_as_with_full_paths(value: Any, prefix: str) -> None:
    expected = pathwise_plain_problems(value, ROOT)
    actual = plain_data_problems(value, ROOT)

    assert [message for _, message in actual] == [message for _, message in expected]
    assert error_lines(actual, prefix) == error_lines(expected, prefix)


def test_long_key_above_many_bad_values_reads_as_before() -> None:
    key = "k  \x01" * 50_000
    text = '? "' + "k  \\x01" * 50_000 + '"\n: [' + ", ".join([".inf"] * 5_000) + "]\n"

    errors = load_errors(text)

    assert (
        errors == [one_line(f"app.yaml:1 document 1: [{key}][0]: must be a finite number")] * 5_000
    )


# --- numbers as mapping keys --------------------------------------------------------------

COLLIDING = 2**61 - 1  # Python hashes every multiple of it to 0


def yaml_number(value: int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    if isinstance(value, float) and "." not in text:
        text = text.replace("e", ".0e")  # YAML 1.1 floats need a dot
    return text


numbers = st.one_of(
    st.integers(-3, 3),
    st.integers(-3, 3).map(lambda k: k * COLLIDING),
    st.sampled_from([0.0, -0.0, 1.0, 2.0, 2.5, 1e300, float(COLLIDING), True, False]),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)


def kube_key(value: int | float) -> object:
    """The key Kubernetes makes of a YAML number key: integers and booleans as strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return NumberKey(value)


@PROPERTY
@given(st.lists(numbers, min_size=1, max_size=8))
def test_number_keys_are_duplicates_exactly_as_kubernetes_keys(keys: list[int | float]) -> None:
    text = "{" + ", ".join(f"{yaml_number(k)}: {n}" for n, k in enumerate(keys)) + "}\n"
    converted = [kube_key(k) for k in keys]
    first_duplicate = next((k for n, k in enumerate(converted) if k in converted[:n]), None)

    documents, problem = read_documents(text, text.encode())

    if first_duplicate is not None:
        assert problem is not None
        shown = first_duplicate.value if isinstance(first_duplicate, NumberKey) else first_duplicate
        assert problem.message == (
            f"invalid YAML: found duplicate key {short_repr(shown)} (while constructing a mapping)"
        )
    else:
        assert problem is None
        (only,) = documents
        assert list(only.data.items()) == [(k, n) for n, k in enumerate(converted)]


def test_many_colliding_integer_keys_load_as_strings() -> None:
    labels = "".join(f"    {k * COLLIDING}: v\n" for k in range(1, 30_001))
    text = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n{labels}"

    documents, problem = read_documents(text, text.encode())

    assert problem is None
    (only,) = documents
    assert list(only.data["metadata"]["labels"]) == [str(k * COLLIDING) for k in range(1, 30_001)]


def test_many_colliding_float_keys_are_each_reported() -> None:
    labels = "".join(f"    {yaml_number(float(k * COLLIDING))}: v\n" for k in range(1, 3_001))
    text = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n{labels}"

    errors = load_errors(text)

    assert errors == [
        f"app.yaml:1 Namespace x: metadata.labels: keys must be strings; quote the key "
        f"{short_repr(float(k * COLLIDING))}"
        for k in range(1, 3_001)
    ]


def test_number_keys_print_as_the_numbers() -> None:
    assert [str(NumberKey(v)) for v in (8080, 1.5, True)] == ["8080", "1.5", "True"]
    assert NumberKey(1) == NumberKey(1.0) == NumberKey(True)
    assert hash(NumberKey(1)) == hash(NumberKey(1.0)) == hash(NumberKey(True))
    assert NumberKey(2) != NumberKey(2.5)
    assert NumberKey(1) != 1, "only ever compared with keys of its own mapping"

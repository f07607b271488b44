"""Property: whatever YAML arrives, load_documents returns objects or raises ApiError whose
lines are single-line and name the source; loaded bodies are JSON and re-parse equal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isthmus.api import ApiError, load_documents, parse_resource

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
)
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def rarely(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` about eleven times in twelve, else `other`."""
    return st.integers(min_value=0, max_value=11).flatmap(lambda n: other if n == 11 else usual)


def sometimes_wrong(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly well-shaped values (so that semantic checks run), sometimes anything at all."""
    return rarely(strategy, json_like)


def mapping(required: dict[str, Any] | None = None, **optional: Any) -> st.SearchStrategy[Any]:
    return sometimes_wrong(st.fixed_dictionaries(required or {}, optional=optional))


hosts = st.sampled_from(
    ["reviews", "reviews.prod.svc.cluster.local", "*.example.com", "*", "10.0.0.1", "Bad_Host", ""]
) | st.from_regex(r"[a-z0-9*][a-z0-9.-]{0,10}", fullmatch=True)
names = st.sampled_from(["reviews", "v1", "v2", "bad_name", "", "a" * 70]) | st.from_regex(
    r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True
)
durations = st.sampled_from(
    ["3s", "100ms", "1.5s", "0s", "1h30m", "-1s", "3", "1ns", "1500us"]
) | st.text(max_size=6)
regexes = st.sampled_from(["^/api/.*", "(?=x)", "(", "a{1001}", r"(a)\1", "*", ""]) | st.text(
    max_size=8
)
weights = st.integers(min_value=-10, max_value=120)
ports = st.integers(min_value=-5, max_value=70_000)

string_match = mapping(exact=st.text(max_size=6), prefix=st.text(max_size=6), regex=regexes)
destination = mapping(
    {"host": sometimes_wrong(hosts)},
    subset=sometimes_wrong(names),
    port=mapping(number=sometimes_wrong(ports)),
)
header_ops = mapping(
    set=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
    add=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
    remove=st.lists(st.text(max_size=8), max_size=2),
)
http_match = mapping(
    uri=string_match,
    method=string_match,
    headers=st.dictionaries(st.text(max_size=8), string_match, max_size=2),
    withoutHeaders=st.dictionaries(st.text(max_size=8), string_match, max_size=2),
    queryParams=st.dictionaries(st.text(max_size=8), string_match, max_size=2),
    port=sometimes_wrong(ports),
    gateways=st.lists(st.sampled_from(["mesh", "gw"]), max_size=2),
    sourceLabels=st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2),
)
http_route = mapping(
    match=st.lists(http_match, max_size=2),
    route=st.lists(
        mapping({"destination": destination}, weight=sometimes_wrong(weights), headers=header_ops),
        max_size=3,
    ),
    timeout=sometimes_wrong(durations),
    retries=mapping(
        attempts=sometimes_wrong(st.integers(-2, 5)),
        perTryTimeout=sometimes_wrong(durations),
        retryOn=st.sampled_from(["5xx,reset", "4xx", "503", "", "5xx,,reset"])
        | st.text(max_size=8),
        retryRemoteLocalities=st.booleans(),
    ),
    fault=mapping(
        delay=mapping(
            fixedDelay=durations, exponentialDelay=durations, percentage=mapping(value=st.floats())
        ),
        abort=mapping(
            httpStatus=sometimes_wrong(st.integers(0, 700)), grpcStatus=st.text(max_size=5)
        ),
    ),
    redirect=mapping(uri=st.text(max_size=5), redirectCode=st.integers(0, 600), port=ports),
    directResponse=mapping({"status": st.integers(0, 700)}, body=json_like),
    rewrite=mapping(
        uri=st.text(max_size=5), uriRegexRewrite=mapping(match=regexes, rewrite=st.text(max_size=5))
    ),
    mirror=destination,
    headers=mapping(request=header_ops, response=header_ops),
    corsPolicy=json_like,
    delegate=json_like,
)
labels = st.dictionaries(st.sampled_from(["app", "version", "bad key", ""]), names, max_size=2)
metadata = mapping(
    {"name": sometimes_wrong(names)}, namespace=sometimes_wrong(names), labels=labels
)
networking_version = rarely(
    st.sampled_from(
        ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"]
    ),
    st.sampled_from(["v1", "networking.istio.io/v2"]),
)
virtual_service = st.fixed_dictionaries(
    {
        "apiVersion": networking_version,
        "kind": st.just("VirtualService"),
        "metadata": metadata,
        "spec": mapping(
            hosts=st.lists(sometimes_wrong(hosts), max_size=3),
            gateways=st.lists(st.sampled_from(["mesh", "gw"]), max_size=2),
            http=st.lists(http_route, max_size=3),
            tcp=st.lists(
                mapping(route=st.lists(mapping({"destination": destination}), max_size=2)),
                max_size=2,
            ),
            tls=json_like,
            exportTo=st.lists(st.sampled_from([".", "*", "~", "prod", "Bad"]), max_size=3),
        ),
    }
)
traffic_policy = mapping(
    loadBalancer=mapping(
        simple=st.sampled_from(["ROUND_ROBIN", "LEAST_CONN", "FASTEST"]),
        consistentHash=mapping(
            httpHeaderName=st.text(max_size=6),
            useSourceIp=st.booleans(),
            httpCookie=mapping({"name": st.text(max_size=5)}, ttl=durations),
        ),
    ),
    connectionPool=mapping(
        tcp=mapping(maxConnections=st.integers(-5, 2**40), connectTimeout=durations),
        http=mapping(http1MaxPendingRequests=st.integers(-5, 100), idleTimeout=durations),
    ),
    outlierDetection=mapping(
        consecutive5xxErrors=st.integers(-1, 10),
        interval=durations,
        baseEjectionTime=durations,
        maxEjectionPercent=st.integers(-10, 200),
    ),
    tls=mapping(mode=st.sampled_from(["DISABLE", "ISTIO_MUTUAL", "BOGUS"])),
    portLevelSettings=st.lists(
        mapping(port=mapping(number=ports), loadBalancer=json_like), max_size=2
    ),
)
destination_rule = st.fixed_dictionaries(
    {
        "apiVersion": networking_version,
        "kind": st.just("DestinationRule"),
        "metadata": metadata,
        "spec": mapping(
            {"host": sometimes_wrong(hosts)},
            trafficPolicy=traffic_policy,
            subsets=st.lists(
                mapping(
                    {"name": sometimes_wrong(names)}, labels=labels, trafficPolicy=traffic_policy
                ),
                max_size=3,
            ),
            workloadSelector=json_like,
        ),
    }
)
documents = st.lists(virtual_service | destination_rule | json_like, min_size=1, max_size=3)


def check_outcome(data: str | bytes) -> None:
    """The property: success with JSON bodies that re-parse equal, or one-line ApiErrors."""
    try:
        loaded = load_documents(data, "fuzz.yaml")
    except ApiError as error:
        assert error.errors
        for line in error.errors:
            assert isinstance(line, str)
            assert "\n" not in line and "\r" not in line
            assert line.startswith("fuzz.yaml")
        return
    for obj in loaded:
        stored = json.loads(json.dumps(obj.body, allow_nan=False))
        assert parse_resource(stored) == obj.resource


@FUZZ
@given(documents)
def test_shaped_documents_load_or_raise_api_error(docs: list[Any]) -> None:
    check_outcome(yaml.safe_dump_all(docs))


@FUZZ
@given(st.lists(json_like, min_size=1, max_size=3))
def test_random_structures_load_or_raise_api_error(docs: list[Any]) -> None:
    check_outcome(yaml.safe_dump_all(docs))


@FUZZ
@given(st.text(max_size=200))
def test_random_text_loads_or_raises_api_error(text: str) -> None:
    check_outcome(text)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_load_or_raise_api_error(data: bytes) -> None:
    check_outcome(data)


VALID_TEXT = (Path(__file__).parent / "data" / "valid-all-kinds.yaml").read_text()
edits = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=len(VALID_TEXT)),
        st.integers(min_value=0, max_value=8),
        st.sampled_from(["", " ", "\t", "\n", ":", "-", "[", "{", "*a", "&a ", "'", '"', "0", "x"])
        | st.text(max_size=4),
    ),
    min_size=1,
    max_size=4,
)


@FUZZ
@given(edits)
def test_mutated_valid_yaml_loads_or_raises_api_error(changes: list[tuple[int, int, str]]) -> None:
    text = VALID_TEXT
    for position, removed, inserted in changes:
        text = text[:position] + inserted + text[position + removed :]
    check_outcome(text)


VALID_DOCUMENTS = [d for d in yaml.safe_load_all(VALID_TEXT) if d is not None]
_DELETE = object()
replacements = (
    st.sampled_from(
        [None, 0, -1, 1, 100, 101, 70_000, "", "x", "*", "0s", "1ms", "v1", [], {}, True, _DELETE]
    )
    | st.lists(st.sampled_from(["x", "", "*", 1]), max_size=2)
    | json_like
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for position, value in enumerate(node):
            found.extend(_paths(value, (*prefix, position)))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> None:
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


@FUZZ
@given(st.data())
def test_valid_objects_with_edited_fields_load_or_raise_api_error(data: st.DataObject) -> None:
    document = json.loads(json.dumps(data.draw(st.sampled_from(VALID_DOCUMENTS))))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(_paths(document)))
        _replace(document, path, data.draw(replacements))
    check_outcome(yaml.safe_dump(document))

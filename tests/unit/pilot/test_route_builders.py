"""The single-aspect route builders, each against Istio's translation of the same field.

Inputs are the api models (as validated YAML produces them); outputs are the Envoy
messages, checked field by field where a golden file would hide the reason.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.v3 import percent_pb2

from isthmus.api.networking import (
    Headers,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPRetry,
    HTTPRoute,
    Percent,
)
from isthmus.pilot.envoy.fault import http_fault
from isthmus.pilot.envoy.headers import authority_rewrite, header_removals, header_values
from isthmus.pilot.envoy.retry import (
    DEFAULT_RETRY_ON,
    default_retry_policy,
    parse_retry_on,
    retry_policy,
)
from isthmus.pilot.envoy.route_action import (
    WeightedDestination,
    build_route,
    default_route,
    mirror_fraction,
)
from isthmus.pilot.envoy.route_match import route_match
from isthmus.pilot.generators.routes import is_catch_all

HUNDRED = percent_pb2.FractionalPercent.HUNDRED
MILLION = percent_pb2.FractionalPercent.MILLION
PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"
V1 = "outbound|8080|v1|inventory-service.production.svc.cluster.local"
V2 = "outbound|8080|v2|inventory-service.production.svc.cluster.local"


def _yaml(text: str) -> Any:
    return yaml.safe_load(text)


def _route(text: str) -> HTTPRoute:
    return HTTPRoute.model_validate(_yaml(text))


def _build(rule: HTTPRoute, destinations: list[WeightedDestination], port: int = 8080) -> rc.Route:
    return build_route(rule, rc.RouteMatch(prefix="/"), "r", destinations, port=port)


# --- retries ---------------------------------------------------------------------------


def test_no_retries_field_is_istios_default_policy() -> None:
    policy = retry_policy(None)
    assert policy is not None
    assert policy.retry_on == DEFAULT_RETRY_ON
    assert policy.num_retries.value == 2
    assert list(policy.retriable_status_codes) == [503]
    assert policy.host_selection_retry_max_attempts == 5
    assert [p.name for p in policy.retry_host_predicate] == [PREVIOUS_HOSTS]


def test_attempts_zero_disables_retries() -> None:
    assert retry_policy(HTTPRetry(attempts=0)) is None


def test_attempts_without_retry_on_keep_default_conditions() -> None:
    policy = retry_policy(HTTPRetry.model_validate({"attempts": 5, "perTryTimeout": "250ms"}))
    assert policy is not None
    assert (policy.num_retries.value, policy.retry_on) == (5, DEFAULT_RETRY_ON)
    assert list(policy.retriable_status_codes) == [503]
    assert policy.per_try_timeout.ToMilliseconds() == 250


@pytest.mark.parametrize(
    ("retry_on", "expected"),
    [
        (
            "5xx,reset,connect-failure,retriable-4xx",
            ("5xx,reset,connect-failure,retriable-4xx", []),
        ),
        ("gateway-error,503,504", ("gateway-error,retriable-status-codes", [503, 504])),
        ("502, 503", ("retriable-status-codes", [502, 503])),
        ("retriable-status-codes,429", ("retriable-status-codes", [429])),
        ("reset,,reset", ("reset", [])),
        ("999,reset", ("999,reset", [])),  # not an HTTP status: left as a condition
    ],
)
def test_retry_on_splits_status_codes(retry_on: str, expected: tuple[str, list[int]]) -> None:
    assert parse_retry_on(retry_on) == expected


def test_user_retry_on_replaces_default_status_codes() -> None:
    policy = retry_policy(HTTPRetry.model_validate({"attempts": 3, "retryOn": "5xx"}))
    assert policy is not None
    assert policy.retry_on == "5xx"
    assert list(policy.retriable_status_codes) == []


def test_consistent_hash_retries_stay_on_the_hashed_host() -> None:
    assert list(default_retry_policy(consistent_hash=True).retry_host_predicate) == []
    hashed = retry_policy(HTTPRetry(attempts=3), consistent_hash=True)
    assert hashed is not None and list(hashed.retry_host_predicate) == []


# --- fault injection -------------------------------------------------------------------


def _fault(text: str) -> HTTPFaultInjection:
    return HTTPFaultInjection.model_validate(_yaml(text))


def test_fault_percentage_is_in_millionths() -> None:
    fault = http_fault(_fault("{delay: {fixedDelay: 2s, percentage: {value: 12.5}}}"))
    assert fault is not None
    assert fault.delay.fixed_delay.seconds == 2
    assert (fault.delay.percentage.numerator, fault.delay.percentage.denominator) == (
        125_000,
        MILLION,
    )
    assert not fault.HasField("abort")


def test_legacy_delay_percent_is_in_hundredths() -> None:
    fault = http_fault(_fault("{delay: {fixedDelay: 1s, percent: 30}}"))
    assert fault is not None
    assert (fault.delay.percentage.numerator, fault.delay.percentage.denominator) == (30, HUNDRED)


def test_unset_fault_percentage_injects_nothing() -> None:
    """Istio documents: "If left unspecified, no request will be delayed" (and aborted)."""
    fault = http_fault(_fault("{delay: {fixedDelay: 1s}, abort: {httpStatus: 503}}"))
    assert fault is not None
    assert fault.delay.percentage.numerator == 0
    assert fault.abort.http_status == 503
    assert not fault.abort.HasField("percentage")  # Envoy reads that as 0%


def test_abort_percentage() -> None:
    fault = http_fault(_fault("{abort: {httpStatus: 418, percentage: {value: 0.1}}}"))
    assert fault is not None
    assert (fault.abort.percentage.numerator, fault.abort.percentage.denominator) == (
        1_000,
        MILLION,
    )


@pytest.mark.parametrize(("name", "code"), [("OK", 0), ("NOT_FOUND", 5), ("UNAVAILABLE", 14)])
def test_grpc_abort_is_the_status_code(name: str, code: int) -> None:
    """Istio's TranslateFault: grpcStatus by name -> FaultAbort.grpc_status by number."""
    fault = http_fault(_fault(f"{{abort: {{grpcStatus: {name}, percentage: {{value: 25}}}}}}"))
    assert fault is not None
    assert fault.abort.WhichOneof("error_type") == "grpc_status"
    assert fault.abort.grpc_status == code
    assert fault.abort.percentage.numerator == 250_000


def test_cors_and_fault_are_per_route_filter_configs() -> None:
    rule = _route(
        "{fault: {abort: {grpcStatus: INTERNAL, percentage: {value: 1}}},"
        " corsPolicy: {allowOrigins: [{exact: 'https://a.example'}]},"
        " route: [{destination: {host: x}}]}"
    )
    route = _build(rule, [WeightedDestination(V1, 100)])
    assert sorted(route.typed_per_filter_config) == [
        "envoy.filters.http.cors",
        "envoy.filters.http.fault",
    ]
    assert route.typed_per_filter_config["envoy.filters.http.cors"].type_url.endswith(
        "envoy.extensions.filters.http.cors.v3.CorsPolicy"
    )


def test_cors_policy_stays_on_a_redirect() -> None:
    rule = _route("{redirect: {uri: /n}, corsPolicy: {allowOrigin: ['https://a.example']}}")
    assert list(_build(rule, []).typed_per_filter_config) == ["envoy.filters.http.cors"]


# --- mirroring -------------------------------------------------------------------------


def test_mirror_defaults_to_everything_and_never_samples_traces() -> None:
    policy = mirror_fraction(None, None)
    assert policy is not None
    fraction = policy.runtime_fraction.default_value
    assert (fraction.numerator, fraction.denominator) == (100, HUNDRED)
    assert policy.trace_sampled.value is False and policy.HasField("trace_sampled")


@pytest.mark.parametrize(
    ("percentage", "legacy", "expected"),
    [
        (Percent(value=10), None, (100_000, MILLION)),
        (Percent(value=0.5), 50, (5_000, MILLION)),  # mirrorPercentage wins
        (None, 25, (25, HUNDRED)),
    ],
)
def test_mirror_percentages(
    percentage: Percent | None, legacy: int | None, expected: tuple[int, int]
) -> None:
    policy = mirror_fraction(percentage, legacy)
    assert policy is not None
    fraction = policy.runtime_fraction.default_value
    assert (fraction.numerator, fraction.denominator) == expected


@pytest.mark.parametrize(("percentage", "legacy"), [(Percent(value=0), None), (None, 0)])
def test_zero_percent_is_no_mirror(percentage: Percent | None, legacy: int | None) -> None:
    assert mirror_fraction(percentage, legacy) is None


# --- matches ---------------------------------------------------------------------------


def _match(text: str) -> rc.RouteMatch:
    return route_match(HTTPMatchRequest.model_validate(_yaml(text)))


def test_no_match_is_every_path() -> None:
    assert route_match(None) == rc.RouteMatch(prefix="/")


def test_uri_matches() -> None:
    assert _match("{uri: {exact: /a}}").path == "/a"
    assert _match("{uri: {prefix: /a}}").prefix == "/a"
    regex = _match("{uri: {regex: '/a/[0-9]+'}}").safe_regex
    assert regex.regex == "/a/[0-9]+"
    assert not regex.HasField("google_re2")  # deprecated in Envoy; RE2 is the default
    ignore_case = _match("{uri: {prefix: /A}, ignoreUriCase: true}")
    assert ignore_case.case_sensitive.value is False and ignore_case.HasField("case_sensitive")


def test_header_matchers_sorted_with_pseudo_headers_last() -> None:
    match = _match(
        """
        headers: {X-User: {exact: alice}, a-first: {prefix: p}}
        withoutHeaders: {m-middle: {exact: "no"}}
        method: {exact: GET}
        authority: {regex: 'shop\\..*'}
        """
    )
    assert [h.name for h in match.headers] == [
        "a-first",
        "m-middle",
        "x-user",
        ":method",
        ":authority",
    ]


def test_presence_and_absence() -> None:
    match = _match(
        """
        headers: {x-any: {}, x-star: {regex: '*'}}
        withoutHeaders: {x-gone: {regex: '*'}, x-not-b: {exact: b}}
        """
    )
    by_name = {h.name: h for h in match.headers}
    assert by_name["x-any"].present_match and not by_name["x-any"].invert_match
    assert by_name["x-star"].present_match
    assert by_name["x-gone"].present_match and by_name["x-gone"].invert_match
    not_b = by_name["x-not-b"]
    assert not_b.invert_match and not_b.string_match.exact == "b"
    # Istio: a request without x-not-b is "not b" and must match.
    assert not_b.treat_missing_header_as_empty
    assert not by_name["x-gone"].treat_missing_header_as_empty  # conflicts with presence


def test_query_parameters() -> None:
    match = _match("{queryParams: {a: {exact: '1'}, b: {}, c: {exact: ''}, d: {regex: '^x'}}}")
    by_name = {q.name: q for q in match.query_parameters}
    assert by_name["a"].string_match.exact == "1"
    assert by_name["b"].present_match
    # Istio: `exact: ""` matches "?c" (an empty value), not any value of c.
    assert by_name["c"].HasField("string_match") and by_name["c"].string_match.exact == ""
    assert by_name["d"].string_match.safe_regex.regex == "^x"


# --- headers ---------------------------------------------------------------------------


def _headers(text: str) -> Headers:
    return Headers.model_validate(_yaml(text))


def test_set_overwrites_add_appends_and_pseudo_headers_are_dropped() -> None:
    headers = _headers(
        "{request: {set: {b: '2', a: '1', host: h}, add: {c: '3', ':authority': x},"
        " remove: [d, Host, ':path']}}"
    )
    values = header_values(headers.request)
    assert [(v.header.key, v.append_action) for v in values] == [
        ("a", base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD),
        ("b", base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD),
        ("c", base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD),
    ]
    assert header_removals(headers.request) == ["d"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{request: {set: {Host: a.example}}}", "a.example"),
        ("{request: {add: {':authority': b.example}}}", "b.example"),
        ("{request: {set: {x: y}}}", None),
        ("{response: {set: {x: y}}}", None),
    ],
)
def test_authority_rewrite(text: str, expected: str | None) -> None:
    assert authority_rewrite(_headers(text).request) == expected


# --- routes ----------------------------------------------------------------------------


def test_zero_weights_are_dropped_and_one_live_destination_is_a_cluster() -> None:
    route = _build(
        HTTPRoute(),
        [
            WeightedDestination(V1, 0),
            WeightedDestination(V2, 100, _headers("{request: {set: {x-subset: v2}}}")),
        ],
    )
    assert route.route.cluster == V2
    assert [h.header.key for h in route.request_headers_to_add] == ["x-subset"]


def test_weighted_destinations_keep_their_own_headers_and_authority() -> None:
    route = _build(
        HTTPRoute(),
        [
            WeightedDestination(V1, 70, _headers("{request: {set: {host: v1.internal}}}")),
            WeightedDestination(V2, 30, _headers("{response: {remove: [server]}}")),
            WeightedDestination(V2, 0),
        ],
    )
    clusters = route.route.weighted_clusters.clusters
    assert [(c.name, c.weight.value) for c in clusters] == [(V1, 70), (V2, 30)]
    assert clusters[0].host_rewrite_literal == "v1.internal"
    assert list(clusters[0].request_headers_to_add) == []
    assert list(clusters[1].response_headers_to_remove) == ["server"]
    assert not route.route.HasField("host_rewrite_literal")


def test_rewrite_authority_wins_over_header_authority() -> None:
    rule = _route(
        "{headers: {request: {set: {host: from-header}}}, rewrite: {authority: from-rewrite},"
        " route: [{destination: {host: x}}]}"
    )
    route = _build(rule, [WeightedDestination(V1, 100)])
    assert route.route.host_rewrite_literal == "from-rewrite"
    assert list(route.request_headers_to_add) == []


def test_timeout_defaults_to_none_at_all() -> None:
    assert _build(HTTPRoute(), [WeightedDestination(V1, 100)]).route.timeout.ToSeconds() == 0
    rule = _route("{timeout: 3s, route: [{destination: {host: x}}]}")
    assert _build(rule, [WeightedDestination(V1, 100)]).route.timeout.ToSeconds() == 3


@pytest.mark.parametrize(
    ("redirect", "port", "expected_port"),
    [
        ("{derivePort: FROM_REQUEST_PORT}", 8080, 8080),
        ("{derivePort: FROM_REQUEST_PORT}", 80, 0),  # http's default port is implied
        ("{derivePort: FROM_PROTOCOL_DEFAULT}", 8080, 0),
        ("{port: 443, scheme: https}", 8080, 0),
        ("{port: 443}", 8080, 443),  # scheme stays http: 443 is not its default
        ("{port: 8443, scheme: https}", 8080, 8443),
    ],
)
def test_redirect_ports(redirect: str, port: int, expected_port: int) -> None:
    rule = HTTPRoute.model_validate({"redirect": _yaml(redirect)})
    assert _build(rule, [], port=port).redirect.port_redirect == expected_port


def test_redirect_codes() -> None:
    permanent = _build(_route("{redirect: {uri: /n, redirectCode: 308}}"), [])
    assert permanent.redirect.response_code == rc.RedirectAction.PERMANENT_REDIRECT
    assert permanent.redirect.path_redirect == "/n"
    moved = _build(_route("{redirect: {authority: a.example}}"), [])
    assert moved.redirect.response_code == rc.RedirectAction.MOVED_PERMANENTLY


def test_direct_response_bytes_are_base64_decoded() -> None:
    encoded = base64.b64encode(b"\x00binary\xff").decode()
    rule = _route(f"{{directResponse: {{status: 503, body: {{bytes: '{encoded}'}}}}}}")
    route = _build(rule, [])
    assert route.direct_response.status == 503
    assert route.direct_response.body.inline_bytes == b"\x00binary\xff"


def test_fault_is_per_route_filter_config() -> None:
    rule = _route(
        "{fault: {abort: {httpStatus: 503, percentage: {value: 50}}},"
        " route: [{destination: {host: x}}]}"
    )
    route = _build(rule, [WeightedDestination(V1, 100)])
    assert list(route.typed_per_filter_config) == ["envoy.filters.http.fault"]


def test_default_route_hashes_but_keeps_previous_hosts() -> None:
    """Istio's BuildDefaultHTTPOutboundRoute: hash policy, and the default retry policy
    converted without the consistent-hash flag."""
    policy = rc.RouteAction.HashPolicy()
    policy.header.header_name = "x-user"
    route = default_route(V1, [policy])
    assert route.name == "default" and route.match.prefix == "/"
    assert list(route.route.hash_policy) == [policy]
    assert [p.name for p in route.route.retry_policy.retry_host_predicate] == [PREVIOUS_HOSTS]


@pytest.mark.parametrize(
    ("match", "catch_all"),
    [
        (rc.RouteMatch(prefix="/"), True),
        (rc.RouteMatch(prefix="/a"), False),
        (rc.RouteMatch(path="/"), False),
        (
            rc.RouteMatch(prefix="/", headers=[rc.HeaderMatcher(name="x", present_match=True)]),
            False,
        ),
        (
            rc.RouteMatch(
                prefix="/",
                query_parameters=[rc.QueryParameterMatcher(name="q", present_match=True)],
            ),
            False,
        ),
    ],
)
def test_catch_all_routes(match: rc.RouteMatch, catch_all: bool) -> None:
    assert is_catch_all(rc.Route(match=match)) is catch_all


def test_regex_every_path_is_catch_all() -> None:
    route = rc.Route(match=rc.RouteMatch())
    route.match.safe_regex.regex = ".*"
    assert is_catch_all(route)

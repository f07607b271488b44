"""CorsPolicy -> Envoy's per-route CorsPolicy, against Istio's TranslateCORSPolicy
(pilot/pkg/networking/core/route/route.go), and the filter in the connection managers."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import percent_pb2

from isthmus.api.networking import CorsPolicy
from isthmus.pilot.envoy.cors import CORS_FILTER, cors_policy
from isthmus.pilot.envoy.http_connection_manager import (
    inline_connection_manager,
    rds_connection_manager,
)


def _policy(text: str) -> CorsPolicy:
    data: Any = yaml.safe_load(text)
    return CorsPolicy.model_validate(data)


def test_every_field_as_istio_translates_it() -> None:
    out = cors_policy(
        _policy("""
allowOrigins: [{exact: "https://a.example"}, {prefix: "https://b"}, {regex: "https://.*\\\\.c"}]
allowMethods: [GET, POST]
allowHeaders: [authorization, x-custom]
exposeHeaders: [x-request-id, x-trace]
maxAge: 1h30m
allowCredentials: true
""")
    )
    assert list(out.allow_origin_string_match) == [
        string_pb2.StringMatcher(exact="https://a.example"),
        string_pb2.StringMatcher(prefix="https://b"),
        string_pb2.StringMatcher(safe_regex={"regex": "https://.*\\.c"}),
    ]
    assert out.allow_methods == "GET,POST"
    assert out.allow_headers == "authorization,x-custom"
    assert out.expose_headers == "x-request-id,x-trace"
    assert out.max_age == "5400"
    assert out.HasField("allow_credentials") and out.allow_credentials.value is True
    percent = out.filter_enabled.default_value
    assert (percent.numerator, percent.denominator) == (100, percent_pb2.FractionalPercent.HUNDRED)
    assert not out.HasField("shadow_enabled")


def test_unset_fields_stay_unset() -> None:
    out = cors_policy(_policy("{allowOrigins: [{exact: 'https://a.example'}]}"))
    assert (out.allow_methods, out.allow_headers, out.expose_headers, out.max_age) == (
        "",
        "",
        "",
        "",
    )
    assert not out.HasField("allow_credentials")


def test_allow_credentials_false_is_sent() -> None:
    """Istio copies the BoolValue as it is, so an explicit false reaches Envoy."""
    out = cors_policy(_policy("{allowCredentials: false}"))
    assert out.HasField("allow_credentials") and out.allow_credentials.value is False


def test_deprecated_allow_origin_is_exact_origins() -> None:
    out = cors_policy(_policy("{allowOrigin: ['https://a.example', 'https://b.example']}"))
    assert [m.exact for m in out.allow_origin_string_match] == [
        "https://a.example",
        "https://b.example",
    ]


def test_no_origins_allows_none() -> None:
    assert list(cors_policy(_policy("{allowMethods: [GET]}")).allow_origin_string_match) == []


@pytest.mark.parametrize(
    ("setting", "forward"),
    [
        ("", True),
        ("unmatchedPreflights: UNSPECIFIED", True),
        ("unmatchedPreflights: FORWARD", True),
        ("unmatchedPreflights: IGNORE", False),
    ],
)
def test_unmatched_preflights(setting: str, forward: bool) -> None:
    """Always set: Envoy >= 1.30 defaults to not forwarding, Istio keeps forwarding."""
    out = cors_policy(_policy(f"{{{setting}}}"))
    assert out.HasField("forward_not_matching_preflights")
    assert out.forward_not_matching_preflights.value is forward


def _filter_names(manager_filter: Any) -> list[str]:
    manager = hcm.HttpConnectionManager()
    manager_filter.typed_config.Unpack(manager)
    return [f.name for f in manager.http_filters]


def test_outbound_connection_managers_run_cors_after_fault_before_router() -> None:
    names = _filter_names(rds_connection_manager("outbound_0.0.0.0_8080", "8080"))
    assert names[-3:] == ["envoy.filters.http.fault", CORS_FILTER, "envoy.filters.http.router"]


def test_inbound_connection_managers_go_without_cors() -> None:
    """Inbound routes never carry a VirtualService's corsPolicy."""
    names = _filter_names(
        inline_connection_manager("inbound_0.0.0.0_8080", route_pb2.RouteConfiguration())
    )
    assert CORS_FILTER not in names

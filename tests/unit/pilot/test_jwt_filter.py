"""RequestAuthentication -> the jwt_authn filter, as Istio's policy_applier.go builds it, and
which policies apply to a workload (Istio's GetJwtPoliciesForWorkload)."""

from __future__ import annotations

from typing import Any

import pytest
from _authz import config, plain, policy
from _build import mesh_from_yaml
from _jwt import authentication, authentications
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from isthmus.api.jwks import jwks_error
from isthmus.model.jwks import JwksSource
from isthmus.pilot.authz.rbac import HTTP_RBAC_FILTER
from isthmus.pilot.envoy.http_connection_manager import inline_connection_manager
from isthmus.pilot.envoy.listener import http_chain, socket_address
from isthmus.pilot.generators.inbound_listener import workload_filters
from isthmus.pilot.security import jwt
from isthmus.testing.jwt import RsaIssuer
from isthmus.testing.validate import validate_resources

ROOT = "istio-system"
INVENTORY = {"app": "inventory-service", "version": "v1"}
ISSUER = RsaIssuer("https://issuer.example.com")
JWKS_URI = "https://issuer.example.com/jwks.json"
FETCHED = {JwksSource(JWKS_URI): ISSUER.jwks()}


def filter_config(text: str, jwks: jwt.Jwks | None = None) -> dict[str, Any]:
    envoy_filter = jwt.jwt_authn_filter(authentications(text), jwks or {})
    assert envoy_filter is not None and envoy_filter.name == "envoy.filters.http.jwt_authn"
    return config(envoy_filter)


def test_one_rule_is_one_provider_that_allows_a_missing_token() -> None:
    text = authentication(f"jwtRules: [{{issuer: '{ISSUER.issuer}', jwksUri: '{JWKS_URI}'}}]")

    assert filter_config(text, FETCHED) == {
        "providers": {
            "origins-0": {
                "issuer": ISSUER.issuer,
                "local_jwks": {"inline_string": ISSUER.jwks()},
                "payload_in_metadata": "payload",
                "normalize_payload_in_metadata": {
                    "space_delimited_claims": ["permission", "scope"]
                },
            }
        },
        "rules": [
            {
                "match": {"prefix": "/"},
                "requires": {
                    "requires_any": {
                        "requirements": [{"provider_name": "origins-0"}, {"allow_missing": {}}]
                    }
                },
            }
        ],
        "bypass_cors_preflight": True,
    }


def test_several_rules_are_providers_in_issuer_order_each_valid_if_present() -> None:
    text = (
        authentication("jwtRules: [{issuer: zeta, jwksUri: 'https://z/jwks'}]", "z")
        + "---\n"
        + authentication("jwtRules: [{issuer: alpha, jwksUri: 'https://a/jwks'}]", "a")
    )

    built = filter_config(text)

    assert [built["providers"][n]["issuer"] for n in ("origins-0", "origins-1")] == [
        "alpha",
        "zeta",
    ]
    each = [
        {"requires_any": {"requirements": [{"provider_name": n}, {"allow_missing": {}}]}}
        for n in ("origins-0", "origins-1")
    ]
    assert built["rules"][0]["requires"] == {
        "requires_any": {
            "requirements": [
                {"provider_name": "origins-0"},
                {"provider_name": "origins-1"},
                {"requires_all": {"requirements": each}},
            ]
        }
    }


def test_every_rule_field_reaches_the_provider() -> None:
    text = authentication(f"""
jwtRules:
- issuer: {ISSUER.issuer}
  audiences: [inventory, orders]
  jwks: '{ISSUER.jwks()}'
  fromHeaders: [{{name: x-jwt-assertion, prefix: "Bearer "}}]
  fromParams: [token]
  fromCookies: [session]
  outputPayloadToHeader: x-jwt-payload
  forwardOriginalToken: true
  outputClaimToHeaders: [{{header: x-jwt-groups, claim: groups}}]
  spaceDelimitedClaims: [roles, scope]
  timeout: 3s
""")

    assert filter_config(text)["providers"]["origins-0"] == {
        "issuer": ISSUER.issuer,
        "audiences": ["inventory", "orders"],
        "local_jwks": {"inline_string": ISSUER.jwks()},
        "forward": True,
        "from_headers": [{"name": "x-jwt-assertion", "value_prefix": "Bearer "}],
        "from_params": ["token"],
        "from_cookies": ["session"],
        "forward_payload_header": "x-jwt-payload",
        "payload_in_metadata": "payload",
        "claim_to_headers": [{"header_name": "x-jwt-groups", "claim_name": "groups"}],
        "normalize_payload_in_metadata": {
            "space_delimited_claims": ["permission", "roles", "scope"]
        },
    }


@pytest.mark.parametrize(
    ("jwks", "expected"),
    [
        (FETCHED, ISSUER.jwks()),
        ({}, jwt.PUBLIC_ONLY_JWKS),  # not fetched yet
        ({JwksSource(JWKS_URI): None}, jwt.PUBLIC_ONLY_JWKS),  # the fetch failed
        ({JwksSource("https://other/jwks"): ISSUER.jwks()}, jwt.PUBLIC_ONLY_JWKS),
    ],
)
def test_keys_of_a_jwks_uri_are_the_fetched_ones_or_fail_closed(
    jwks: jwt.Jwks, expected: str
) -> None:
    text = authentication(f"jwtRules: [{{issuer: '{ISSUER.issuer}', jwksUri: '{JWKS_URI}'}}]")

    assert filter_config(text, jwks)["providers"]["origins-0"]["local_jwks"] == {
        "inline_string": expected
    }


def test_an_issuer_without_keys_uses_its_openid_discovery_document() -> None:
    text = authentication("jwtRules: [{issuer: 'https://accounts.example.com/'}]")
    discovery = JwksSource("https://accounts.example.com/.well-known/openid-configuration", True)

    built = filter_config(text, {discovery: ISSUER.jwks()})

    assert built["providers"]["origins-0"]["local_jwks"] == {"inline_string": ISSUER.jwks()}


def test_the_fail_closed_key_set_is_one_envoy_accepts() -> None:
    assert jwks_error(jwt.PUBLIC_ONLY_JWKS) is None


def test_policies_without_rules_need_no_filter() -> None:
    assert jwt.jwt_authn_filter(authentications(authentication("{}")), {}) is None
    assert jwt.jwt_authn_filter([], {}) is None


def names(text: str, namespace: str, labels: dict[str, str]) -> list[str]:
    selected = jwt.policies_for_workload(authentications(text), namespace, labels, ROOT)
    return [f"{entry.namespace}/{entry.name}" for entry in selected]


def test_selection_is_the_workload_namespace_then_the_root_namespace() -> None:
    rules = "jwtRules: [{issuer: a, jwksUri: 'https://a/jwks'}]"
    selected = "selector: {matchLabels: {app: inventory-service}}\n" + rules
    text = "---\n".join(
        [
            authentication(rules, "mesh-wide", ROOT),
            authentication(selected, "mesh-inventory", ROOT),
            authentication("selector: {matchLabels: {app: cart}}\n" + rules, "mesh-cart", ROOT),
            authentication(rules, "namespace-wide"),
            authentication(selected, "inventory"),
            authentication("selector: {matchLabels: {version: v2}}\n" + rules, "v2-only"),
            authentication(rules, "elsewhere", "staging"),
        ]
    )

    assert names(text, "production", INVENTORY) == [
        "production/namespace-wide",
        "production/inventory",
        f"{ROOT}/mesh-wide",
        f"{ROOT}/mesh-inventory",
    ]
    assert names(text, "staging", {"app": "cart"}) == [
        "staging/elsewhere",
        f"{ROOT}/mesh-wide",
        f"{ROOT}/mesh-cart",
    ]


def test_metadata_payload_splits_space_delimited_claims() -> None:
    payload = {"scope": "read  write", "roles": "a b", "permission": ["x"], "sub": "a b"}

    assert jwt.metadata_payload(payload, ["permission", "roles", "scope"]) == {
        "scope": ["read", "write"],
        "roles": ["a", "b"],
        "permission": ["x"],
        "sub": "a b",
    }


MESH = (
    "apiVersion: v1\nkind: Service\nmetadata: {name: inventory-service, namespace: production}\n"
    "spec: {clusterIP: 10.96.0.12, selector: {app: inventory-service}, "
    "ports: [{name: http, port: 8080}]}\n"
    "---\n"
    + authentication(
        "selector: {matchLabels: {app: inventory-service}}\n"
        f"jwtRules: [{{issuer: '{ISSUER.issuer}', jwksUri: '{JWKS_URI}'}}]"
    )
    + "---\n"
    + policy("rules: [{from: [{source: {requestPrincipals: ['*']}}]}]", "require-jwt")
    + "---\nkind: Proxy\nnamespace: production\nlabels: {app: inventory-service}\n"
    "inboundPorts: [8080]\n"
)


def test_workload_filters_authenticate_before_they_authorize() -> None:
    mesh, proxy = mesh_from_yaml(MESH)

    filters = workload_filters(mesh, proxy)

    assert [f.name for f in filters.http] == ["envoy.filters.http.jwt_authn", HTTP_RBAC_FILTER]
    assert [f.name for f in filters.network] == ["envoy.filters.network.rbac"]


def test_a_workload_no_policy_selects_gets_no_jwt_filter() -> None:
    mesh, proxy = mesh_from_yaml(MESH.replace("labels: {app: inventory-service}", "labels: {}"))

    assert [f.name for f in workload_filters(mesh, proxy).http] == [HTTP_RBAC_FILTER]


@pytest.mark.envoy
def test_envoy_accepts_every_field_on_an_inbound_connection_manager() -> None:
    text = authentication(f"""
jwtRules:
- issuer: zeta
  audiences: [inventory]
  jwks: '{ISSUER.jwks()}'
  fromHeaders: [{{name: x-jwt-assertion, prefix: "Bearer "}}]
  fromParams: [token]
  fromCookies: [session]
  outputPayloadToHeader: x-jwt-payload
  forwardOriginalToken: true
  outputClaimToHeaders: [{{header: x-jwt-groups, claim: groups}}]
  spaceDelimitedClaims: [roles]
- issuer: alpha
  jwksUri: {JWKS_URI}
- issuer: https://discovered.example.com
""")
    authn = jwt.jwt_authn_filter(authentications(text), FETCHED)
    assert authn is not None
    manager = inline_connection_manager(
        "inbound_0.0.0.0_8080", route_pb2.RouteConfiguration(name="inbound|8080||"), [authn]
    )
    listener = listener_pb2.Listener(name="inbound", address=socket_address("0.0.0.0", 15006))
    listener.filter_chains.append(http_chain("inbound_http", manager))

    validate_resources(listeners=[listener])
    assert plain(authn)["name"] == "envoy.filters.http.jwt_authn"

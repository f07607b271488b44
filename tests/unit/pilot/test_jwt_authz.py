"""requestPrincipals and request.auth.* in AuthorizationPolicy: Istio's RBAC matchers on the
payload jwt_authn verified (generator.go, model/util.go), and Envoy's decision on them."""

from __future__ import annotations

from typing import Any

import pytest
from _authz import config, policies, policy

from isthmus.pilot.authz.evaluate import Decision, Request, evaluate
from isthmus.pilot.authz.rbac import http_rbac_filters, network_rbac_filters

P0 = "ns[production]-policy[p]-rule[0]"
ISS = "https://issuer.example.com"


def principal_of(spec: str) -> dict[str, Any]:
    (envoy_filter,) = http_rbac_filters(policies(policy(spec)), "cluster.local")
    principals = config(envoy_filter)["rules"]["policies"][P0]["principals"]
    assert len(principals) == 1
    return dict(principals[0])


def claim(path: list[str], value: dict[str, Any]) -> dict[str, Any]:
    keys = [{"key": k} for k in ["payload", *path]]
    return {"metadata": {"filter": "envoy.filters.http.jwt_authn", "path": keys, "value": value}}


def string(**match: str) -> dict[str, Any]:
    return {"string_match": match}


ANY = {"safe_regex": {"regex": ".+"}}


def iss_sub(issuer: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    return {"and_ids": {"ids": [claim(["iss"], issuer), claim(["sub"], subject)]}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{ISS}/alice", iss_sub(string(exact=ISS), string(exact="alice"))),
        ("*", iss_sub({"string_match": ANY}, {"string_match": ANY})),
        (f"{ISS}/*", iss_sub(string(exact=ISS), {"string_match": ANY})),
        (f"{ISS}/team-*", iss_sub(string(exact=ISS), string(prefix="team-"))),
        ("*/alice", iss_sub({"string_match": ANY}, string(exact="alice"))),
        ("*.example.com/alice", iss_sub(string(suffix=".example.com"), string(exact="alice"))),
        ("*-suffix", iss_sub({"string_match": ANY}, string(suffix="-suffix"))),
        ("prefix-*", iss_sub(string(prefix="prefix-"), {"string_match": ANY})),
        ("no-slash", iss_sub(string(exact="no-slash"), string(exact=""))),
    ],
)
def test_a_request_principal_is_the_issuer_and_subject_claims(
    value: str, expected: dict[str, Any]
) -> None:
    spec = f"rules: [{{from: [{{source: {{requestPrincipals: ['{value}']}}}}]}}]"

    assert principal_of(spec) == {"and_ids": {"ids": [expected]}}


def test_several_request_principals_are_ored_and_not_values_negated() -> None:
    spec = (
        "rules: [{from: [{source: {requestPrincipals: [a/b, c/d], notRequestPrincipals: [e/f]}}]}]"
    )

    assert principal_of(spec) == {
        "and_ids": {
            "ids": [
                {
                    "or_ids": {
                        "ids": [
                            iss_sub(string(exact="a"), string(exact="b")),
                            iss_sub(string(exact="c"), string(exact="d")),
                        ]
                    }
                },
                {"not_id": iss_sub(string(exact="e"), string(exact="f"))},
            ]
        }
    }


def list_or_string(*values: dict[str, Any]) -> dict[str, Any]:
    value = values[0] if len(values) == 1 else {"or_match": {"value_matchers": list(values)}}
    return {"or_match": {"value_matchers": [{"list_match": {"one_of": value}}, value]}}


@pytest.mark.parametrize(
    ("key", "values", "path", "expected"),
    [
        (
            "request.auth.claims[groups]",
            "[admin, 'ops-*']",
            ["groups"],
            list_or_string(string(exact="admin"), string(prefix="ops-")),
        ),
        ("request.auth.claims[a][b]", "[x]", ["a", "b"], list_or_string(string(exact="x"))),
        (
            "request.auth.audiences",
            "[inventory]",
            ["aud"],
            list_or_string(string(exact="inventory")),
        ),
        ("request.auth.presenter", "['*']", ["azp"], list_or_string({"string_match": ANY})),
    ],
)
def test_claims_match_a_string_or_a_list_holding_one(
    key: str, values: str, path: list[str], expected: dict[str, Any]
) -> None:
    spec = f"rules: [{{when: [{{key: '{key}', values: {values}}}]}}]"

    assert principal_of(spec) == {"and_ids": {"ids": [claim(path, expected)]}}


def test_request_auth_principal_is_a_request_principal() -> None:
    assert principal_of("rules: [{when: [{key: request.auth.principal, values: [a/b]}]}]") == {
        "and_ids": {"ids": [iss_sub(string(exact="a"), string(exact="b"))]}
    }


def test_request_principals_come_after_principals_as_in_istio() -> None:
    spec = (
        "rules: [{from: [{source: {namespaces: [ns], principals: [p], requestPrincipals: [a/b]}}]}]"
    )

    peer, request, namespace = principal_of(spec)["and_ids"]["ids"]

    assert peer["or_ids"]["ids"][0]["authenticated"]["principal_name"] == {"exact": "spiffe://p"}
    assert request == iss_sub(string(exact="a"), string(exact="b"))
    assert namespace["or_ids"]["ids"][0]["authenticated"]["principal_name"] == {
        "safe_regex": {"regex": ".*/ns/ns/.*"}
    }


def test_tcp_drops_an_allow_rule_and_ignores_the_term_in_a_deny_rule() -> None:
    jwt_only = "rules: [{from: [{source: {requestPrincipals: ['*']}}]}]"
    allow = policies(policy(jwt_only))
    deny = policies(policy("action: DENY\n" + jwt_only))

    (allow_filter,) = network_rbac_filters(allow, "cluster.local")
    (deny_filter,) = network_rbac_filters(deny, "cluster.local")

    assert "policies" not in config(allow_filter)["rules"]  # nothing allowed
    assert config(deny_filter)["rules"]["policies"][P0]["principals"] == [
        {"and_ids": {"ids": [{"any": True}]}}
    ]


# --- Envoy's decision, evaluated on the verified payload --------------------------------

ALICE = {"iss": ISS, "sub": "alice", "aud": "inventory", "groups": ["admin", "dev"]}


def http(text: str, payload: dict[str, Any] | None, **request: Any) -> Decision:
    filters = http_rbac_filters(policies(text), "cluster.local")
    return evaluate(filters, Request(jwt_payload=payload, **request))


REQUIRE_JWT = policy("rules: [{from: [{source: {requestPrincipals: ['*']}}]}]")


@pytest.mark.parametrize(
    ("payload", "allowed"),
    [
        (ALICE, True),
        (None, False),  # no token: no payload
        ({"iss": ISS}, False),  # no subject
        ({"iss": ISS, "sub": ""}, False),  # `*` needs a non-empty value
        ({"iss": ISS, "sub": 7}, False),  # not a string
    ],
)
def test_require_a_token(payload: dict[str, Any] | None, allowed: bool) -> None:
    assert http(REQUIRE_JWT, payload).allowed is allowed


@pytest.mark.parametrize(
    ("groups", "allowed"),
    [
        (["admin"], True),
        (["dev", "admin"], True),
        ("admin", True),  # a single string claim
        (["dev"], False),
        ("admin dev", False),  # not space-delimited unless configured (see metadata_payload)
        (None, False),
        ({"admin": True}, False),
    ],
)
def test_claims_based_allow(groups: Any, allowed: bool) -> None:
    text = policy("rules: [{when: [{key: 'request.auth.claims[groups]', values: [admin]}]}]")
    payload = {**ALICE, "groups": groups} if groups is not None else {"iss": ISS, "sub": "a"}

    assert http(text, payload).allowed is allowed


def test_nested_claims() -> None:
    text = policy("rules: [{when: [{key: 'request.auth.claims[realm][role]', values: [ops]}]}]")

    assert http(text, {**ALICE, "realm": {"role": "ops"}}).allowed
    assert http(text, {**ALICE, "realm": {"role": ["dev", "ops"]}}).allowed
    assert not http(text, {**ALICE, "realm": "ops"}).allowed
    assert not http(text, ALICE).allowed


def test_deny_anonymous_with_not_request_principals() -> None:
    text = policy("action: DENY\nrules: [{from: [{source: {notRequestPrincipals: ['*']}}]}]")

    assert http(text, None) == Decision(False, 0, P0)
    assert http(text, ALICE) == Decision(True)


def test_audiences_and_presenter() -> None:
    text = policy(
        "rules: [{when: [{key: request.auth.audiences, values: [inventory]}, "
        "{key: request.auth.presenter, values: [web]}]}]"
    )

    assert http(text, {**ALICE, "azp": "web"}).allowed
    assert http(text, {**ALICE, "aud": ["orders", "inventory"], "azp": "web"}).allowed
    assert not http(text, {**ALICE, "aud": "orders", "azp": "web"}).allowed
    assert not http(text, ALICE).allowed  # no azp


def test_issuer_and_subject_must_both_match() -> None:
    text = policy(f"rules: [{{from: [{{source: {{requestPrincipals: ['{ISS}/alice']}}}}]}}]")

    assert http(text, ALICE).allowed
    assert not http(text, {**ALICE, "sub": "bob"}).allowed
    assert not http(text, {**ALICE, "iss": "https://evil.example.com"}).allowed

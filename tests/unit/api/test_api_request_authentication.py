"""RequestAuthentication: Istio's examples load, and each refusal is one line naming its field."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from _apihelp import document, load, load_errors

from isthmus.api.registry import lookup, resolve_kind_name
from isthmus.api.request_authentication import RequestAuthentication
from isthmus.testing.jwt import RsaIssuer

# Istio's sample key set (security/tools/jwt/samples/jwks.json).
SAMPLE_JWKS = json.dumps(
    {
        "keys": [
            {
                "e": "AQAB",
                "kid": "DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ",
                "kty": "RSA",
                "n": "xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9Vsw"
                "gsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_Dwt"
                "GGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHO"
                "jzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3"
                "DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ",
            }
        ]
    }
)

# Istio's documentation example (Authentication Policy task).
DOCS_EXAMPLE = """\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: "jwt-example"
  namespace: foo
spec:
  selector:
    matchLabels:
      app: httpbin
  jwtRules:
  - issuer: "testing@secure.istio.io"
    jwksUri: "https://raw.githubusercontent.com/istio/istio/release-1.24/security/tools/jwt/samples/jwks.json"
"""

PREFIX = "app.yaml:1 RequestAuthentication production/reviews: "


def policy(spec: str) -> str:
    return document("RequestAuthentication", spec, api_version="security.istio.io/v1")


def rule(body: str) -> str:
    """A policy with one jwtRule whose (flow-style or block) YAML body is `body`."""
    lines = body.strip("\n").splitlines()
    return "jwtRules:\n- " + "\n  ".join(lines) + "\n"


@pytest.mark.parametrize("api_version", ["security.istio.io/v1", "security.istio.io/v1beta1"])
def test_docs_example_loads_verbatim(api_version: str) -> None:
    (loaded,) = load(DOCS_EXAMPLE.replace("security.istio.io/v1", api_version))

    assert loaded.key == ("RequestAuthentication", "foo", "jwt-example")
    resource = loaded.resource
    assert isinstance(resource, RequestAuthentication)
    (jwt_rule,) = resource.spec.jwt_rules
    assert jwt_rule.issuer == "testing@secure.istio.io"
    assert jwt_rule.jwks_uri is not None and jwt_rule.jwks_uri.endswith("/jwks.json")
    assert resource.spec.selector is not None
    assert resource.spec.selector.match_labels == {"app": "httpbin"}


def test_registered_with_istio_names() -> None:
    info = lookup("security.istio.io/v1beta1", "RequestAuthentication")

    assert info.model is RequestAuthentication and info.namespaced
    assert resolve_kind_name("ra") is info
    assert resolve_kind_name("requestauthentications.security.istio.io") is info


def test_every_supported_field_loads() -> None:
    spec = rule(f"""
issuer: https://accounts.example.com
audiences: [inventory, orders]
jwks: '{SAMPLE_JWKS}'
fromHeaders: [{{name: x-jwt-assertion, prefix: "Bearer "}}, {{name: authorization}}]
fromParams: [token]
fromCookies: [session]
outputPayloadToHeader: x-jwt-payload
forwardOriginalToken: true
outputClaimToHeaders: [{{header: x-jwt-groups, claim: groups}}]
spaceDelimitedClaims: [roles]
timeout: 3s
""")

    (loaded,) = load(policy("selector: {matchLabels: {app: inventory}}\n" + spec))

    resource = loaded.resource
    assert isinstance(resource, RequestAuthentication)
    (jwt_rule,) = resource.spec.jwt_rules
    assert jwt_rule.from_headers[0].prefix == "Bearer "
    assert jwt_rule.output_claim_to_headers[0].claim == "groups"
    assert jwt_rule.forward_original_token
    assert jwt_rule.timeout == timedelta(seconds=3)


def test_issuer_alone_is_enough_for_openid_discovery() -> None:
    (loaded,) = load(policy(rule("issuer: https://accounts.example.com")))

    assert isinstance(loaded.resource, RequestAuthentication)


def test_istios_deprecated_snake_case_jwks_uri_points_to_jwks_uri() -> None:
    errors = load_errors(policy(rule("{issuer: a, jwks_uri: 'https://example.com/jwks'}")))

    assert errors == [PREFIX + "spec.jwtRules[0].jwks_uri: unknown field (did you mean jwksUri?)"]


def test_no_rules_means_no_authentication() -> None:
    (loaded,) = load(policy("{}"))

    assert isinstance(loaded.resource, RequestAuthentication)
    assert loaded.resource.spec.jwt_rules == []


CASES = {
    "target-ref": (
        "targetRef: {kind: Gateway, name: ingress}",
        "spec.targetRef: not supported yet",
    ),
    "target-refs": (
        "targetRefs: [{kind: Gateway, name: ingress}]",
        "spec.targetRefs: not supported yet",
    ),
    "presence": (
        rule("{issuer: a, presence: REQUIRED}"),
        "spec.jwtRules[0].presence: not supported yet",
    ),
    "selector-wildcard": (
        "selector: {matchLabels: {app: 'web-*'}}",
        "spec.selector.matchLabels[app]: wildcards are not supported in selectors",
    ),
    "issuer-empty": (rule("{issuer: ''}"), "spec.jwtRules[0].issuer: must not be empty"),
    "issuer-and-jwks-uri-missing": (
        rule(f"{{jwks: '{SAMPLE_JWKS}'}}"),
        "spec.jwtRules[0]: set issuer or jwksUri",
    ),
    "jwks-and-jwks-uri": (
        rule(f"{{issuer: a, jwksUri: 'https://a/jwks', jwks: '{SAMPLE_JWKS}'}}"),
        "spec.jwtRules[0]: set only one of jwks and jwksUri",
    ),
    "jwks-uri-empty": (
        rule("{issuer: a, jwksUri: ''}"),
        "spec.jwtRules[0].jwksUri: must not be empty",
    ),
    "jwks-uri-scheme": (
        rule("{issuer: a, jwksUri: 'ftp://example.com/jwks'}"),
        'spec.jwtRules[0].jwksUri: "ftp://example.com/jwks": URI scheme must be http or https',
    ),
    "jwks-uri-relative": (
        rule("{issuer: a, jwksUri: '/jwks.json'}"),
        'spec.jwtRules[0].jwksUri: "/jwks.json": URI scheme must be http or https',
    ),
    "jwks-uri-no-host": (
        rule("{issuer: a, jwksUri: 'https:///jwks'}"),
        'spec.jwtRules[0].jwksUri: "https:///jwks": URL has no host',
    ),
    "jwks-uri-bad-port": (
        rule("{issuer: a, jwksUri: 'https://example.com:99999/jwks'}"),
        'spec.jwtRules[0].jwksUri: "https://example.com:99999/jwks" is not a valid URL',
    ),
    "jwks-uri-too-long": (
        rule("{issuer: a, jwksUri: 'https://example.com/" + "x" * 2048 + "'}"),
        "spec.jwtRules[0].jwksUri: must be at most 2048 characters",
    ),
    "jwks-not-json": (
        rule("{issuer: a, jwks: 'not json'}"),
        "spec.jwtRules[0].jwks: jwks is not valid JSON",
    ),
    "jwks-without-keys": (
        rule('{issuer: a, jwks: \'{"kty": "RSA"}\'}'),
        'spec.jwtRules[0].jwks: jwks has no "keys" field',
    ),
    "jwks-bad-key": (
        rule("""{issuer: a, jwks: '{"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}'}"""),
        'spec.jwtRules[0].jwks: jwks key 0: RSA key: "n" is not base64url',
    ),
    "audience-empty": (
        rule("{issuer: a, audiences: [ok, '']}"),
        "spec.jwtRules[0].audiences[1]: must not be empty",
    ),
    "from-header-name-missing": (
        rule("{issuer: a, fromHeaders: [{prefix: 'Bearer '}]}"),
        "spec.jwtRules[0].fromHeaders[0].name: is required",
    ),
    "from-header-name-empty": (
        rule("{issuer: a, fromHeaders: [{name: ''}]}"),
        "spec.jwtRules[0].fromHeaders[0].name: header name must not be empty",
    ),
    "from-header-name-invalid": (
        rule("{issuer: a, fromHeaders: [{name: 'x y'}]}"),
        'spec.jwtRules[0].fromHeaders[0].name: header name "x y" is not a valid HTTP header name',
    ),
    "from-param-empty": (
        rule("{issuer: a, fromParams: ['']}"),
        "spec.jwtRules[0].fromParams[0]: must not be empty",
    ),
    "from-cookie-invalid": (
        rule("{issuer: a, fromCookies: ['a=b']}"),
        'spec.jwtRules[0].fromCookies[0]: cookie name "a=b" is not a valid HTTP cookie name',
    ),
    "payload-header-invalid": (
        rule("{issuer: a, outputPayloadToHeader: 'x:y'}"),
        'spec.jwtRules[0].outputPayloadToHeader: header name "x:y" is not a valid HTTP header name',
    ),
    "claim-header-invalid": (
        rule("{issuer: a, outputClaimToHeaders: [{header: 'x.y', claim: sub}]}"),
        'spec.jwtRules[0].outputClaimToHeaders[0].header: header name "x.y" may hold only '
        "letters, digits, - and _",
    ),
    "claim-empty": (
        rule("{issuer: a, outputClaimToHeaders: [{header: x-sub, claim: ''}]}"),
        "spec.jwtRules[0].outputClaimToHeaders[0].claim: must not be empty",
    ),
    "space-delimited-claim-empty": (
        rule("{issuer: a, spaceDelimitedClaims: ['']}"),
        "spec.jwtRules[0].spaceDelimitedClaims[0]: must not be empty",
    ),
    "space-delimited-claims-too-many": (
        rule("{issuer: a, spaceDelimitedClaims: [" + ", ".join(f"c{i}" for i in range(65)) + "]}"),
        "spec.jwtRules[0].spaceDelimitedClaims: at most 64 claims are allowed",
    ),
    "timeout-too-short": (
        rule("{issuer: a, timeout: 100us}"),
        "spec.jwtRules[0].timeout: duration must be at least 1ms",
    ),
    "unknown-field": (
        rule("{issuer: a, issuers: [b]}"),
        "spec.jwtRules[0].issuers: unknown field (did you mean issuer?)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_refusal_is_one_line_naming_the_field(case: str) -> None:
    spec, expected = CASES[case]

    assert load_errors(policy(spec)) == [PREFIX + expected]


def test_problems_of_several_rules_are_all_reported_in_order() -> None:
    spec = "jwtRules:\n- {issuer: ''}\n- {issuer: b, audiences: ['']}\n"

    assert load_errors(policy(spec)) == [
        PREFIX + "spec.jwtRules[0].issuer: must not be empty",
        PREFIX + "spec.jwtRules[1].audiences[0]: must not be empty",
    ]


def test_a_generated_key_set_loads() -> None:
    issuer = RsaIssuer("https://issuer.example.com")
    jwks = issuer.jwks()

    (loaded,) = load(policy(rule(f"{{issuer: '{issuer.issuer}', jwks: '{jwks}'}}")))

    assert isinstance(loaded.resource, RequestAuthentication)
    assert loaded.resource.spec.jwt_rules[0].jwks == jwks

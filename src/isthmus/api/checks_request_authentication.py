"""RequestAuthentication checks, as Istio's webhook (ValidateRequestAuthentication,
validateJwtRule) and its CRD schema apply them, plus what Envoy would refuse (a JWKS it
cannot parse, header names that are not HTTP tokens)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from isthmus.api import names
from isthmus.api.checks_common import check_duration, check_workload_selector
from isthmus.api.errors import FieldPath, Problems, short_repr
from isthmus.api.jwks import jwks_error
from isthmus.api.networking import WorkloadSelector
from isthmus.api.request_authentication import JWTRule, RequestAuthentication

MAX_JWT_RULES = 4096  # Istio's CRD
MAX_JWKS_URI_LENGTH = 2048
MAX_SPACE_DELIMITED_CLAIMS = 64
# Istio's CRD pattern for outputClaimToHeaders[].header.
_CLAIM_HEADER = re.compile(r"[-_A-Za-z0-9]+")


def check_request_authentication(policy: RequestAuthentication, problems: Problems) -> None:
    spec = policy.spec
    path = FieldPath("spec")
    if spec.selector is not None:
        _check_selector(problems, path.field("selector").field("matchLabels"), spec.selector)
    rules = path.field("jwtRules")
    if len(spec.jwt_rules) > MAX_JWT_RULES:
        problems.add(rules, f"at most {MAX_JWT_RULES} rules are allowed")
    for position, rule in enumerate(spec.jwt_rules):
        check_jwt_rule(problems, rules.index(position), rule)


def check_jwt_rule(problems: Problems, path: FieldPath, rule: JWTRule) -> None:
    if rule.issuer == "":
        problems.add(path.field("issuer"), "must not be empty")
    elif rule.issuer is None and not rule.jwks_uri:
        problems.add(path, "set issuer or jwksUri")
    _non_empty(problems, path.field("audiences"), rule.audiences)
    if rule.jwks is not None and rule.jwks_uri is not None:
        problems.add(path, "set only one of jwks and jwksUri")
    if rule.jwks_uri is not None:
        problem = jwks_uri_error(rule.jwks_uri)
        if problem:
            problems.add(path.field("jwksUri"), problem)
    if rule.jwks is not None:
        problem = jwks_error(rule.jwks, every_key=True)
        if problem:
            problems.add(path.field("jwks"), problem)
    for position, header in enumerate(rule.from_headers):
        problem = names.header_name_error(header.name.removeprefix(":"))
        if problem:
            problems.add(path.field("fromHeaders").index(position).field("name"), problem)
    _non_empty(problems, path.field("fromParams"), rule.from_params)
    for position, cookie in enumerate(rule.from_cookies):
        problem = names.header_name_error(cookie)  # a cookie name is an HTTP token too
        if problem:
            here = path.field("fromCookies").index(position)
            problems.add(here, problem.replace("header name", "cookie name"))
    if rule.output_payload_to_header:
        problem = names.header_name_error(rule.output_payload_to_header)
        if problem:
            problems.add(path.field("outputPayloadToHeader"), problem)
    for position, claim in enumerate(rule.output_claim_to_headers):
        _check_claim_to_header(
            problems, path.field("outputClaimToHeaders").index(position), claim.header, claim.claim
        )
    claims = path.field("spaceDelimitedClaims")
    if len(rule.space_delimited_claims) > MAX_SPACE_DELIMITED_CLAIMS:
        problems.add(claims, f"at most {MAX_SPACE_DELIMITED_CLAIMS} claims are allowed")
    _non_empty(problems, claims, rule.space_delimited_claims)
    check_duration(problems, path.field("timeout"), rule.timeout)


def jwks_uri_error(uri: str) -> str | None:
    """Istio's ParseJwksURI and CRD rule: an http(s) URL of at most 2048 characters."""
    if uri == "":
        return "must not be empty"
    if len(uri) > MAX_JWKS_URI_LENGTH:
        return f"must be at most {MAX_JWKS_URI_LENGTH} characters"
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return f"{short_repr(uri)} is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return f"{short_repr(uri)}: URI scheme must be http or https"
    if not parts.hostname:
        return f"{short_repr(uri)}: URL has no host"
    if port == 0:
        return f"{short_repr(uri)}: port must be between 1 and 65535"
    return None


def _check_selector(problems: Problems, path: FieldPath, selector: WorkloadSelector) -> None:
    check_workload_selector(problems, path, selector.match_labels)


def _check_claim_to_header(problems: Problems, path: FieldPath, header: str, claim: str) -> None:
    if header == "":
        problems.add(path.field("header"), "must not be empty")
    elif _CLAIM_HEADER.fullmatch(header) is None:
        problems.add(
            path.field("header"),
            f"header name {short_repr(header)} may hold only letters, digits, - and _",
        )
    if claim == "":
        problems.add(path.field("claim"), "must not be empty")


def _non_empty(problems: Problems, path: FieldPath, values: list[str]) -> None:
    for position, value in enumerate(values):
        if value == "":
            problems.add(path.index(position), "must not be empty")

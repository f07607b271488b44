"""The `request.auth.*` attributes (requestPrincipals, request.auth.principal, audiences,
presenter, claims[...]) as Envoy RBAC principals on the verified JWT's payload.

Istio's generator.go and model/util.go: Envoy's jwt_authn filter writes the payload of a
token it verified into dynamic metadata (filter `envoy.filters.http.jwt_authn`, key
`payload`, as `payload_in_metadata` asks), and RBAC matches that metadata. This is upstream
Envoy's own mechanism, with no Istio-specific filter. A request without a token has no
payload, so none of these match it. Like Istio's "extended" generators, each attribute
turns all its values into one principal; a claim matches a string equal to a value or a
list holding one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from envoy.type.matcher.v3 import metadata_pb2, string_pb2, value_pb2

from isthmus.pilot.authz import matchers
from isthmus.pilot.authz.attributes import Attribute, BuildAll, Principal

JWT_FILTER = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD = "payload"
CLAIMS_PREFIX = "request.auth.claims"
_CLAIM_NAME = re.compile(r"\[([^\[\]]+)\]")
_CLAIM_NAMES = re.compile(r"(\[[^\[\]]+\])+")
_MATCH_ANY = matchers.regex(".+")


def claim_path(key: str) -> list[str]:
    """`request.auth.claims[a][b]` -> ["a", "b"] (a nested claim); [] if malformed."""
    names = key.removeprefix(CLAIMS_PREFIX)
    if not key.startswith(CLAIMS_PREFIX) or _CLAIM_NAMES.fullmatch(names) is None:
        return []
    return _CLAIM_NAME.findall(names)


def payload_matcher(
    claims: Sequence[str], value: value_pb2.ValueMatcher
) -> metadata_pb2.MetadataMatcher:
    path = [metadata_pb2.MetadataMatcher.PathSegment(key=k) for k in (JWT_PAYLOAD, *claims)]
    return metadata_pb2.MetadataMatcher(filter=JWT_FILTER, path=path, value=value)


def _string_value(matcher: string_pb2.StringMatcher) -> value_pb2.ValueMatcher:
    return value_pb2.ValueMatcher(string_match=matcher)


def _any_string_of(values: Sequence[str]) -> value_pb2.ValueMatcher:
    """Istio's StringOrMatcher: one string matcher, or an OR of them."""
    options = [_string_value(matchers.string_matcher(v)) for v in values]
    if len(options) == 1:
        return options[0]
    return value_pb2.ValueMatcher(or_match=value_pb2.OrMatcher(value_matchers=options))


def _claim_principal(claims: Sequence[str], values: Sequence[str]) -> Principal:
    """Istio's MetadataListValueMatcher (extended JWT): the claim is a matching string or a
    list with a matching element."""
    value = _any_string_of(values)
    in_list = value_pb2.ValueMatcher(list_match=value_pb2.ListMatcher(one_of=value))
    either = value_pb2.ValueMatcher(or_match=value_pb2.OrMatcher(value_matchers=[in_list, value]))
    return Principal(metadata=payload_matcher(claims, either))


def _issuer_subject(value: str) -> tuple[string_pb2.StringMatcher, string_pb2.StringMatcher]:
    """`iss/sub` split at the last `/` (an issuer may be a URL), with Istio's wildcards:
    `*` anything, `*x` a suffix, `x*` a prefix, of the issuer or the subject."""
    issuer, slash, subject = value.rpartition("/")
    if not slash:
        issuer, subject = value, ""
    if value == "*":
        return _MATCH_ANY, _MATCH_ANY
    if value.startswith("*"):
        if not slash:
            return _MATCH_ANY, string_pb2.StringMatcher(suffix=value[1:])
        issuer_match = _MATCH_ANY if issuer == "*" else string_pb2.StringMatcher(suffix=issuer[1:])
        return issuer_match, _exact(subject)
    if value.endswith("*"):
        if not slash:
            return string_pb2.StringMatcher(prefix=value[:-1]), _MATCH_ANY
        subject_match = (
            _MATCH_ANY if subject == "*" else string_pb2.StringMatcher(prefix=subject[:-1])
        )
        return _exact(issuer), subject_match
    return _exact(issuer), _exact(subject)


def _exact(text: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(exact=text)


def _request_principals(values: Sequence[str]) -> Principal:
    """Each value matches the payload's `iss` and `sub`; the values are ORed."""
    options = []
    for value in values:
        issuer, subject = _issuer_subject(value)
        checks = [
            Principal(metadata=payload_matcher(["iss"], _string_value(issuer))),
            Principal(metadata=payload_matcher(["sub"], _string_value(subject))),
        ]
        options.append(Principal(and_ids=Principal.Set(ids=checks)))
    return options[0] if len(options) == 1 else Principal(or_ids=Principal.Set(ids=options))


def _extended(key: str, build_all: BuildAll[Principal]) -> Attribute[Principal]:
    return Attribute[Principal](
        key, lambda value: build_all([value]), http_only=True, build_all=build_all
    )


REQUEST_PRINCIPALS = _extended("request.auth.principal", _request_principals)
AUDIENCES = _extended("request.auth.audiences", lambda v: _claim_principal(["aud"], v))
PRESENTER = _extended("request.auth.presenter", lambda v: _claim_principal(["azp"], v))


def claims(key: str) -> Attribute[Principal]:
    """`request.auth.claims[<claim>]` (nested: `[<claim>][<claim>]`)."""
    path = claim_path(key)
    return _extended(key, lambda values: _claim_principal(path, values))

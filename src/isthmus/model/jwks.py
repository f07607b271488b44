"""Where the keys of a RequestAuthentication's JWT rules come from, as istiod resolves them.

A rule with inline `jwks` needs nothing fetched. Otherwise the control plane fetches the
key set (pilot/pkg/model/jwks_resolver.go): from `jwksUri`, or, without one, from the
`jwks_uri` of the issuer's OpenID discovery document. Translation is pure, so the fetched
texts reach it in the mesh snapshot, keyed by JwksSource; the daemon fills them in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from isthmus.api.request_authentication import JWTRule, RequestAuthentication

OPENID_DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
DEFAULT_FETCH_TIMEOUT = timedelta(seconds=5)  # Istio's, when a rule sets no timeout


@dataclass(frozen=True, order=True)
class JwksSource:
    """A URL to fetch a key set from; with `discovery`, an OpenID discovery document whose
    `jwks_uri` names the key set."""

    uri: str
    discovery: bool = False


def jwks_source(rule: JWTRule) -> JwksSource | None:
    """The source of a rule's keys; None when the rule carries them inline (or names none)."""
    if rule.jwks is not None:
        return None
    if rule.jwks_uri:
        return JwksSource(rule.jwks_uri)
    if rule.issuer:
        return JwksSource(rule.issuer.rstrip("/") + OPENID_DISCOVERY_SUFFIX, discovery=True)
    return None


def jwks_sources(policies: Iterable[RequestAuthentication]) -> dict[JwksSource, timedelta]:
    """Every source the policies name, with the longest fetch timeout one of its rules sets."""
    out: dict[JwksSource, timedelta] = {}
    for policy in policies:
        for rule in policy.spec.jwt_rules:
            source = jwks_source(rule)
            if source is not None:
                timeout = rule.timeout or DEFAULT_FETCH_TIMEOUT
                out[source] = max(timeout, out.get(source, timeout))
    return dict(sorted(out.items()))

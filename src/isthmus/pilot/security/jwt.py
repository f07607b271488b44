"""RequestAuthentication -> Envoy's jwt_authn HTTP filter, as Istio's policy_applier.go.

Every jwtRule of every RequestAuthentication that applies to a workload becomes one
provider (`origins-N`, in issuer order). The requirement accepts a request whose token one
provider verifies and a request without any token, but refuses (401) a token that fails
verification: bad signature, expired, unknown issuer, wrong audience. Requiring a token is
left to AuthorizationPolicy (`requestPrincipals`), which matches the verified payload the
filter writes into dynamic metadata.

Keys come inline (`jwks`) or from the control plane's fetch of `jwksUri` (the snapshot's
`jwks`). A key set that is not fetched yet, or failed to fetch, is replaced by a public key
whose private half was discarded, so every token fails: closed, never open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import empty_pb2

from isthmus.api.request_authentication import JWTRule, RequestAuthentication
from isthmus.model.jwks import JwksSource, jwks_source
from isthmus.model.snapshot import ConfigEntry
from isthmus.pilot.authz.jwt_attributes import JWT_FILTER, JWT_PAYLOAD
from isthmus.pilot.envoy.typed import pack
from isthmus.pilot.workload_policies import policies_in_scopes

DEFAULT_SPACE_DELIMITED_CLAIMS = ("permission", "scope")
# Istio's PublicOnlyJwks (pilot/pkg/model/jwks_resolver.go): an RSA public key whose private
# key was generated and discarded, so no token verifies against it.
PUBLIC_ONLY_JWKS = (
    '{"keys":[{"kty":"RSA","e":"AQAB","n":"0xObjM0UvS_oaazjpEYlAbwctEJ4L8pH3OuTb7qth7gUwqet-'
    "EzQB4dgFdvSdMgrLnSncQGRjpEYz3F3viIbH-3EN3TxSlPNviHxeOdyiBVfumN8dMxbLvVJUpfNOnvmMxJcl-8NN"
    "jAwcOjk4otSALaYgYYyOPyvKtgVdrQr-FoubWX4yrjxW-MJ2-7OBeepUUNOsVwGV23YX03sVkkyvY3otRflkBcY3"
    "_HKpBxJl9wk2GyOShN4_PNUF9-vwfnvOXMbCDX-w4PTef4geeb_GiT40YCKHTKMSPVanGRn5GExIWmki-mmqh94-"
    'mPTJyBR74ShspL3BxPZitDL574T1w"}]}'
)

Policies = Sequence[ConfigEntry[RequestAuthentication]]
Jwks = Mapping[JwksSource, str | None]


def policies_for_workload(
    policies: Policies, namespace: str, labels: Mapping[str, str], root_namespace: str
) -> list[ConfigEntry[RequestAuthentication]]:
    """Istio's GetJwtPoliciesForWorkload: the workload's namespace, then the root namespace;
    a policy applies when its selector's labels are among the workload's (no selector: all)."""
    return policies_in_scopes(policies, (namespace, root_namespace), labels)


def jwt_authn_filter(policies: Policies, jwks: Jwks) -> hcm.HttpFilter | None:
    """The filter for the policies that apply to one workload; None when they hold no rule."""
    config = jwt_authn_config([r for p in policies for r in p.resource.spec.jwt_rules], jwks)
    if config is None:
        return None
    return hcm.HttpFilter(name=JWT_FILTER, typed_config=pack(config))


def jwt_authn_config(rules: Sequence[JWTRule], jwks: Jwks) -> jwt_pb2.JwtAuthentication | None:
    """Istio's convertToEnvoyJwtConfig: providers by issuer order; with one provider the
    requirement is {provider OR allow_missing}, with several it is {P1 OR P2 ... OR AND(P1
    OR allow_missing, P2 OR allow_missing, ...)}: a token, if present, must be valid for one
    provider (the outer ORs serve providers that read the same header)."""
    if not rules:
        return None
    ordered = sorted(rules, key=lambda rule: rule.issuer or "")
    config = jwt_pb2.JwtAuthentication(bypass_cors_preflight=True)
    each_or_missing: list[jwt_pb2.JwtRequirement] = []
    any_provider: list[jwt_pb2.JwtRequirement] = []
    for index, rule in enumerate(ordered):
        name = f"origins-{index}"
        config.providers[name].CopyFrom(provider(rule, jwks))
        by_name = jwt_pb2.JwtRequirement(provider_name=name)
        missing = jwt_pb2.JwtRequirement(allow_missing=empty_pb2.Empty())
        each_or_missing.append(_any_of([by_name, missing]))
        any_provider.append(by_name)
    if len(each_or_missing) == 1:
        requires = each_or_missing[0]
    else:
        all_valid = jwt_pb2.JwtRequirement(
            requires_all=jwt_pb2.JwtRequirementAndList(requirements=each_or_missing)
        )
        requires = _any_of([*any_provider, all_valid])
    config.rules.append(jwt_pb2.RequirementRule(match=rc.RouteMatch(prefix="/"), requires=requires))
    return config


def _any_of(requirements: list[jwt_pb2.JwtRequirement]) -> jwt_pb2.JwtRequirement:
    return jwt_pb2.JwtRequirement(
        requires_any=jwt_pb2.JwtRequirementOrList(requirements=requirements)
    )


def provider(rule: JWTRule, jwks: Jwks) -> jwt_pb2.JwtProvider:
    """One issuer: where its token is read, which keys verify it, what reaches the app."""
    return jwt_pb2.JwtProvider(
        issuer=rule.issuer or "",
        audiences=rule.audiences,
        forward=rule.forward_original_token,
        forward_payload_header=rule.output_payload_to_header or "",
        payload_in_metadata=JWT_PAYLOAD,
        normalize_payload_in_metadata=jwt_pb2.JwtProvider.NormalizePayload(
            space_delimited_claims=space_delimited_claims(rule)
        ),
        from_headers=[
            jwt_pb2.JwtHeader(name=h.name, value_prefix=h.prefix) for h in rule.from_headers
        ],
        from_params=rule.from_params,
        from_cookies=rule.from_cookies,
        claim_to_headers=[
            jwt_pb2.JwtClaimToHeader(header_name=c.header, claim_name=c.claim)
            for c in rule.output_claim_to_headers
        ],
        local_jwks=base_pb2.DataSource(inline_string=key_set(rule, jwks)),
    )


def key_set(rule: JWTRule, jwks: Jwks) -> str:
    """The rule's inline JWKS, else the fetched one; fail closed without either."""
    if rule.jwks is not None:
        return rule.jwks
    source = jwks_source(rule)
    fetched = jwks.get(source) if source is not None else None
    return fetched if fetched is not None else PUBLIC_ONLY_JWKS


def space_delimited_claims(rule: JWTRule) -> list[str]:
    """Istio's buildSpaceDelimitedClaims: `scope` and `permission` always, plus the rule's."""
    return sorted({*DEFAULT_SPACE_DELIMITED_CLAIMS, *rule.space_delimited_claims})


def metadata_payload(payload: Mapping[str, Any], claims: Sequence[str]) -> dict[str, Any]:
    """The payload as jwt_authn writes it into dynamic metadata: each space-delimited claim
    that is a string becomes the list of its words."""
    out = dict(payload)
    for claim in claims:
        value = out.get(claim)
        if isinstance(value, str):
            out[claim] = [word for word in value.split(" ") if word]
    return out

"""security.istio.io RequestAuthentication: which JWTs a workload's sidecar verifies.

Field names follow Istio's protos (security/v1beta1/request_authentication.proto). A
request with an invalid token is refused (401); a request without one passes
unauthenticated, so requiring a token is an AuthorizationPolicy's job
(`requestPrincipals: ["*"]`). The semantic checks live in `checks_request_authentication`.
"""

from __future__ import annotations

from pydantic import Field

from isthmus.api.base import Duration, IstioModel, Resource
from isthmus.api.networking import WorkloadSelector

REQUEST_AUTHENTICATION_API_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")


class JWTHeader(IstioModel):
    """A header the token is read from; `prefix` (e.g. "Bearer ") is stripped first."""

    name: str
    prefix: str = ""


class ClaimToHeader(IstioModel):
    """Copy a verified token's claim into a request header for the app."""

    header: str
    claim: str


class JWTRule(IstioModel):
    """One issuer whose tokens are verified: where to find them and which keys sign them.

    `presence` (REQUIRED tokens) is in Istio's API but not in its translation yet."""

    not_supported_fields = frozenset({"presence"})

    issuer: str | None = None
    audiences: list[str] = Field(default_factory=list)
    jwks_uri: str | None = None
    jwks: str | None = None
    from_headers: list[JWTHeader] = Field(default_factory=list)
    from_params: list[str] = Field(default_factory=list)
    from_cookies: list[str] = Field(default_factory=list)
    output_payload_to_header: str | None = None
    forward_original_token: bool = False
    output_claim_to_headers: list[ClaimToHeader] = Field(default_factory=list)
    space_delimited_claims: list[str] = Field(default_factory=list)
    timeout: Duration | None = None


class RequestAuthenticationSpec(IstioModel):
    not_supported_fields = frozenset({"targetRef", "targetRefs"})

    selector: WorkloadSelector | None = None
    jwt_rules: list[JWTRule] = Field(default_factory=list)


class RequestAuthentication(Resource):
    """Applies to the workloads its selector picks in its namespace (all of them without
    a selector); in the root namespace, to workloads of every namespace."""

    spec: RequestAuthenticationSpec = Field(default_factory=RequestAuthenticationSpec)

"""security.istio.io AuthorizationPolicy: who may call a workload, and how.

Field names follow Istio's protos (snake_case here, camelCase in YAML). Values stay
strings exactly as Istio's are (ports too), because `*` wildcards and `notX` lists
apply to them. The semantic checks of Istio's webhook live in `checks_authorization`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict

from isthmus.api.base import IstioModel, Resource
from isthmus.api.networking import WorkloadSelector

AUTHORIZATION_API_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")
DRY_RUN_ANNOTATION = "istio.io/dry-run"


class AuthorizationAction(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"
    CUSTOM = "CUSTOM"


class Source(IstioModel):
    """Peer attributes of a request; the fields are ANDed, the values of one field ORed.

    trustDomains is in Istio's "extended" (experimental) release channel."""

    not_supported_fields = frozenset({"trustDomains", "notTrustDomains"})

    principals: list[str] = Field(default_factory=list)
    not_principals: list[str] = Field(default_factory=list)
    request_principals: list[str] = Field(default_factory=list)
    not_request_principals: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    not_namespaces: list[str] = Field(default_factory=list)
    service_accounts: list[str] = Field(default_factory=list)
    not_service_accounts: list[str] = Field(default_factory=list)
    ip_blocks: list[str] = Field(default_factory=list)
    not_ip_blocks: list[str] = Field(default_factory=list)
    remote_ip_blocks: list[str] = Field(default_factory=list)
    not_remote_ip_blocks: list[str] = Field(default_factory=list)


class Operation(IstioModel):
    """Request attributes; hosts, methods and paths exist only for HTTP."""

    hosts: list[str] = Field(default_factory=list)
    not_hosts: list[str] = Field(default_factory=list)
    ports: list[str] = Field(default_factory=list)
    not_ports: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)
    not_methods: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    not_paths: list[str] = Field(default_factory=list)


class Condition(IstioModel):
    """A `when` entry: an Istio attribute (`source.ip`, `request.headers[x]`, ...)."""

    key: str
    values: list[str] = Field(default_factory=list)
    not_values: list[str] = Field(default_factory=list)


class Rule_From(IstioModel):
    source: Source | None = None


class Rule_To(IstioModel):
    operation: Operation | None = None


class Rule(IstioModel):
    """Matches when one `from`, one `to` and every `when` match (absent means any)."""

    from_: list[Rule_From] = Field(default_factory=list)
    to: list[Rule_To] = Field(default_factory=list)
    when: list[Condition] = Field(default_factory=list)


class AuthorizationPolicySpec(IstioModel):
    not_supported_fields = frozenset({"targetRef", "targetRefs", "provider"})

    selector: WorkloadSelector | None = None
    rules: list[Rule] = Field(default_factory=list)
    action: Annotated[AuthorizationAction, Strict(False)] = AuthorizationAction.ALLOW


class AuthorizationPolicy(Resource):
    """Applies to the workloads its selector picks in its namespace (all of them without
    a selector); in the root namespace, to workloads of every namespace."""

    spec: AuthorizationPolicySpec = Field(default_factory=AuthorizationPolicySpec)


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool, which Istio applies to the dry-run annotation; None if invalid."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    return None


def is_dry_run(policy: AuthorizationPolicy) -> bool:
    """`istio.io/dry-run: "true"`: the policy is evaluated and logged but not enforced."""
    return parse_go_bool(policy.metadata.annotations.get(DRY_RUN_ANNOTATION, "")) is True

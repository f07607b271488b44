"""One AuthorizationPolicy rule as Envoy RBAC's two halves (pilot/.../authz/model/model.go).

A rule matches when one of its `from` sources, one of its `to` operations and every
`when` condition match. Envoy's RBAC Policy matches when any permission and any
principal match, so each `to` becomes one permission and each `from` one principal,
and every `when` condition joins all of them: request attributes as permissions,
peer attributes as principals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from isthmus.api.authorization import Operation, Rule, Source
from isthmus.pilot.authz import attributes as attrs
from isthmus.pilot.authz import jwt_attributes as jwt
from isthmus.pilot.authz.attributes import Attribute, Permission, Principal
from isthmus.pilot.authz.trust_domain import migrate_principals

M = TypeVar("M")
_REQUEST_HEADERS = "request.headers"


class UnsupportedRule(ValueError):
    """The rule uses an attribute isthmus does not translate (validation refuses it)."""


@dataclass(frozen=True)
class Term(Generic[M]):
    """One attribute of a rule: its values are ORed, its notValues ORed then negated."""

    attribute: Attribute[M]
    values: tuple[str, ...]
    not_values: tuple[str, ...]


@dataclass(frozen=True)
class RuleModel:
    """ANDed terms per permission (one per `to`) and per principal (one per `from`)."""

    permissions: tuple[tuple[Term[Permission], ...], ...]
    principals: tuple[tuple[Term[Principal], ...], ...]

    def with_trust_domains(self, trust_domains: Sequence[str]) -> RuleModel:
        """Principals (`principals`, `source.principal`) relative to the mesh's trust domain."""

        def migrate(term: Term[Principal]) -> Term[Principal]:
            if term.attribute.key != attrs.PRINCIPALS.key:
                return term
            return replace(
                term,
                values=tuple(migrate_principals(term.values, trust_domains)),
                not_values=tuple(migrate_principals(term.not_values, trust_domains)),
            )

        principals = tuple(tuple(migrate(t) for t in terms) for terms in self.principals)
        return replace(self, principals=principals)


def rule_model(rule: Rule, policy_namespace: str) -> RuleModel:
    """Istio's model.New; raises UnsupportedRule for an attribute it cannot translate."""
    base_permissions: list[Term[Permission]] = []
    base_principals: list[Term[Principal]] = []
    for condition in rule.when:
        permission = _PERMISSION_CONDITIONS.get(condition.key)
        if permission is not None:
            base_permissions.append(_term(permission, condition.values, condition.not_values))
        else:
            principal = _principal_condition(condition.key, policy_namespace)
            base_principals.append(_term(principal, condition.values, condition.not_values))
    principals = [
        _source_terms(entry.source, policy_namespace) + tuple(base_principals)
        for entry in rule.from_
    ] or [tuple(base_principals)]
    permissions = [
        _operation_terms(target.operation) + tuple(base_permissions) for target in rule.to
    ] or [tuple(base_permissions)]
    return RuleModel(tuple(permissions), tuple(principals))


_PERMISSION_CONDITIONS: dict[str, Attribute[Permission]] = {
    "destination.ip": attrs.DESTINATION_IP,
    "destination.port": attrs.PORTS,
    "connection.sni": attrs.SNI,
}
_PRINCIPAL_CONDITIONS: dict[str, Attribute[Principal]] = {
    "source.ip": attrs.SOURCE_IP,
    "remote.ip": attrs.REMOTE_IP,
    "source.namespace": attrs.NAMESPACES,
    "source.principal": attrs.PRINCIPALS,
    "request.auth.principal": jwt.REQUEST_PRINCIPALS,
    "request.auth.audiences": jwt.AUDIENCES,
    "request.auth.presenter": jwt.PRESENTER,
}


def _principal_condition(key: str, namespace: str) -> Attribute[Principal]:
    if key in _PRINCIPAL_CONDITIONS:
        return _PRINCIPAL_CONDITIONS[key]
    if key == "source.serviceAccount":
        return attrs.service_accounts(namespace)
    if key.startswith(_REQUEST_HEADERS + "[") and key.endswith("]"):
        return attrs.request_header(key, key[len(_REQUEST_HEADERS) + 1 : -1])
    if jwt.claim_path(key):
        return jwt.claims(key)
    raise UnsupportedRule(f"attribute {key} is not supported")


def _term(attribute: Attribute[M], values: Sequence[str], not_values: Sequence[str]) -> Term[M]:
    return Term(attribute, tuple(values), tuple(not_values))


def _source_terms(source: Source | None, namespace: str) -> tuple[Term[Principal], ...]:
    """In Istio's order: principals, requestPrincipals, serviceAccounts, namespaces,
    remoteIpBlocks, ipBlocks."""
    if source is None:
        return ()
    terms = (
        _term(attrs.PRINCIPALS, source.principals, source.not_principals),
        _term(jwt.REQUEST_PRINCIPALS, source.request_principals, source.not_request_principals),
        _term(
            attrs.service_accounts(namespace),
            source.service_accounts,
            source.not_service_accounts,
        ),
        _term(attrs.NAMESPACES, source.namespaces, source.not_namespaces),
        _term(attrs.REMOTE_IP, source.remote_ip_blocks, source.not_remote_ip_blocks),
        _term(attrs.SOURCE_IP, source.ip_blocks, source.not_ip_blocks),
    )
    return tuple(t for t in terms if t.values or t.not_values)


def _operation_terms(operation: Operation | None) -> tuple[Term[Permission], ...]:
    """In Istio's order: hosts, methods, paths, ports."""
    if operation is None:
        return ()
    terms = (
        _term(attrs.HOSTS, operation.hosts, operation.not_hosts),
        _term(attrs.METHODS, operation.methods, operation.not_methods),
        _term(attrs.PATHS, operation.paths, operation.not_paths),
        _term(attrs.PORTS, operation.ports, operation.not_ports),
    )
    return tuple(t for t in terms if t.values or t.not_values)

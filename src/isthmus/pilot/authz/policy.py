"""A rule's model -> one Envoy RBAC Policy (Istio's Model.Generate).

Each term becomes an OR of its values (and a NOT of the OR of its notValues); the
terms of one `to` or `from` are ANDed; an empty AND matches anything. On a TCP chain
HTTP-only terms cannot be evaluated: an ALLOW rule with one is dropped (it then allows
less), a DENY or AUDIT rule leaves the term out (it then matches more), as in Istio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from envoy.config.rbac.v3 import rbac_pb2

from isthmus.pilot.authz.attributes import Attribute, Permission, Principal
from isthmus.pilot.authz.rule_model import RuleModel, Term

M = TypeVar("M")


class HttpOnlyInAllow(Exception):
    """An ALLOW rule uses an HTTP attribute on a TCP chain: Istio drops the whole rule."""


@dataclass(frozen=True)
class _Algebra(Generic[M]):
    """The four combinators, which Envoy spells differently for permissions and principals."""

    any: Callable[[], M]
    all_of: Callable[[list[M]], M]
    one_of: Callable[[list[M]], M]
    negate: Callable[[M], M]


_PERMISSIONS = _Algebra[Permission](
    any=lambda: Permission(any=True),
    all_of=lambda rules: Permission(and_rules=Permission.Set(rules=rules)),
    one_of=lambda rules: Permission(or_rules=Permission.Set(rules=rules)),
    negate=lambda rule: Permission(not_rule=rule),
)
_PRINCIPALS = _Algebra[Principal](
    any=lambda: Principal(any=True),
    all_of=lambda ids: Principal(and_ids=Principal.Set(ids=ids)),
    one_of=lambda ids: Principal(or_ids=Principal.Set(ids=ids)),
    negate=lambda principal: Principal(not_id=principal),
)


def generate(model: RuleModel, *, for_tcp: bool, allow: bool) -> rbac_pb2.Policy:
    """The Envoy Policy of a rule; raises HttpOnlyInAllow where Istio skips the rule."""
    return rbac_pb2.Policy(
        permissions=[_all(_PERMISSIONS, terms, for_tcp, allow) for terms in model.permissions],
        principals=[_all(_PRINCIPALS, terms, for_tcp, allow) for terms in model.principals],
    )


def _all(algebra: _Algebra[M], terms: Sequence[Term[M]], for_tcp: bool, allow: bool) -> M:
    matches: list[M] = []
    for term in terms:
        if for_tcp and term.attribute.http_only:
            if allow:
                raise HttpOnlyInAllow(term.attribute.key)
            continue  # DENY and AUDIT: ignoring the term widens the match
        if term.values:
            matches.append(_any_value(algebra, term.attribute, term.values))
        if term.not_values:
            matches.append(algebra.negate(_any_value(algebra, term.attribute, term.not_values)))
    return algebra.all_of(matches or [algebra.any()])


def _any_value(algebra: _Algebra[M], attribute: Attribute[M], values: Sequence[str]) -> M:
    """An OR of one matcher per value, or the one matcher an extended attribute builds."""
    if attribute.build_all is not None:
        return attribute.build_all(values)
    return algebra.one_of([attribute.build(v) for v in values])

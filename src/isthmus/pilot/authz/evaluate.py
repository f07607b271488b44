"""Envoy's RBAC decision for one request, computed from the filters pilot generates.

This answers "would this request be allowed, and by which policy" without running
Envoy (for `isthmus x authz check` and for tests). It follows Envoy's semantics:
filters run in order and a request must pass each; an ALLOW filter passes a request
only if some policy matches, a DENY filter stops one if some policy matches, a LOG
(AUDIT) filter only records; policies are tried in name order (Envoy keeps them in a
sorted map) and the first match is the one reported. Shadow (dry-run) rules never
decide. Network (TCP) filters see no HTTP headers and no path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2

from isthmus.pilot.authz.envoy_match import Attributes, permission_matches, principal_matches
from isthmus.pilot.authz.request import Request

__all__ = ["Decision", "Request", "evaluate"]


@dataclass(frozen=True)
class Decision:
    """The outcome; `filter_index` and `policy` say which filter and policy decided.

    A denial by an ALLOW filter names no policy (none matched). An allowed request names
    the ALLOW filter and policy that let it through, if an ALLOW filter ran."""

    allowed: bool
    filter_index: int | None = None
    policy: str | None = None
    audited: tuple[str, ...] = ()


def evaluate(filters: Sequence[hcm.HttpFilter | lc.Filter], request: Request) -> Decision:
    """Run `request` through RBAC `filters` (HTTP or network ones) as Envoy would."""
    audited: list[str] = []
    allowed_by: tuple[int | None, str | None] = (None, None)
    for index, envoy_filter in enumerate(filters):
        config, is_http = rbac_config(envoy_filter)
        if not config.HasField("rules"):
            continue
        rules = config.rules
        matched = _first_match(rules, Attributes.of(request, http=is_http))
        if rules.action == rbac_pb2.RBAC.ALLOW:
            if matched is None:
                return Decision(False, index, None, tuple(audited))
            allowed_by = (index, matched)
        elif rules.action == rbac_pb2.RBAC.DENY:
            if matched is not None:
                return Decision(False, index, matched, tuple(audited))
        elif matched is not None:
            audited.append(matched)
    return Decision(True, *allowed_by, audited=tuple(audited))


def rbac_config(
    envoy_filter: hcm.HttpFilter | lc.Filter,
) -> tuple[http_rbac_pb2.RBAC | network_rbac_pb2.RBAC, bool]:
    typed = envoy_filter.typed_config
    for message_type, is_http in ((http_rbac_pb2.RBAC, True), (network_rbac_pb2.RBAC, False)):
        if typed.Is(message_type.DESCRIPTOR):
            config = message_type()
            typed.Unpack(config)
            return config, is_http
    raise ValueError(f"filter {envoy_filter.name} is not an RBAC filter")


def _first_match(rules: rbac_pb2.RBAC, attributes: Attributes) -> str | None:
    names: list[str] = sorted(rules.policies)
    for name in names:
        policy = rules.policies[name]
        if any(permission_matches(p, attributes) for p in policy.permissions) and any(
            principal_matches(p, attributes) for p in policy.principals
        ):
            return name
    return None

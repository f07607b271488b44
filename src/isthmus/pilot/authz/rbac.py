"""A workload's AuthorizationPolicies -> Envoy RBAC filters, as Istio's builder.go.

One filter per action present, in Istio's order AUDIT, DENY, ALLOW (Istio's CUSTOM
filters, not supported here, would come before all of them). A request passes only
if every filter lets it through, so a DENY match wins over any ALLOW, and once one
ALLOW policy applies to a workload, requests matching no ALLOW rule are denied.

Policies annotated `istio.io/dry-run: "true"` go into `shadow_rules`: Envoy evaluates
and reports them (stats, dynamic metadata) without enforcing them.
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

from isthmus.api.authorization import AuthorizationAction, AuthorizationPolicy, is_dry_run
from isthmus.model.snapshot import ConfigEntry
from isthmus.pilot.authz.policy import HttpOnlyInAllow, generate
from isthmus.pilot.authz.rule_model import UnsupportedRule, rule_model
from isthmus.pilot.envoy.typed import pack

HTTP_RBAC_FILTER = "envoy.filters.http.rbac"
NETWORK_RBAC_FILTER = "envoy.filters.network.rbac"
TCP_STAT_PREFIX = "tcp."
SHADOW_ALLOW_STAT_PREFIX = "istio_dry_run_allow_"
SHADOW_DENY_STAT_PREFIX = "istio_dry_run_deny_"

# Istio's filter order, and the Envoy RBAC action each policy action becomes.
ACTIONS: tuple[tuple[AuthorizationAction, int], ...] = (
    (AuthorizationAction.AUDIT, rbac_pb2.RBAC.LOG),
    (AuthorizationAction.DENY, rbac_pb2.RBAC.DENY),
    (AuthorizationAction.ALLOW, rbac_pb2.RBAC.ALLOW),
)

# A policy without rules matches nothing: for ALLOW that means nothing is allowed.
MATCH_NEVER = rbac_pb2.Policy(
    permissions=[rbac_pb2.Permission(not_rule=rbac_pb2.Permission(any=True))],
    principals=[rbac_pb2.Principal(not_id=rbac_pb2.Principal(any=True))],
)

Policies = Sequence[ConfigEntry[AuthorizationPolicy]]


def policy_name(namespace: str, name: str, rule: int) -> str:
    """Envoy's policy id, which its RBAC stats and access logs report."""
    return f"ns[{namespace}]-policy[{name}]-rule[{rule}]"


@dataclass(frozen=True)
class BuiltRules:
    """The enforced and the dry-run RBAC of one action; either may be absent."""

    rules: rbac_pb2.RBAC | None
    shadow_rules: rbac_pb2.RBAC | None

    @property
    def shadow_rules_stat_prefix(self) -> str:
        """Istio's prefix: `..._deny_` for DENY shadow rules, `..._allow_` otherwise
        (Istio sets it even without shadow rules), none for AUDIT's."""
        action = self.shadow_rules.action if self.shadow_rules is not None else None
        if action == rbac_pb2.RBAC.DENY:
            return SHADOW_DENY_STAT_PREFIX
        if action == rbac_pb2.RBAC.LOG:
            return ""
        return SHADOW_ALLOW_STAT_PREFIX


def build_rules(
    policies: Policies,
    envoy_action: int,
    *,
    for_tcp: bool,
    trust_domains: Sequence[str],
) -> BuiltRules | None:
    """The RBAC configs of `policies` (all of one action); None when there are none."""
    if not policies:
        return None
    enforced = rbac_pb2.RBAC(action=envoy_action)
    shadow = rbac_pb2.RBAC(action=envoy_action)
    has_enforced = has_shadow = False
    for entry in policies:
        dry_run = is_dry_run(entry.resource)
        target = shadow if dry_run else enforced
        has_shadow |= dry_run
        has_enforced |= not dry_run
        rules = entry.resource.spec.rules
        for index, rule in enumerate(rules):
            try:
                model = rule_model(rule, entry.namespace).with_trust_domains(trust_domains)
                policy = generate(model, for_tcp=for_tcp, allow=envoy_action == rbac_pb2.RBAC.ALLOW)
            except (UnsupportedRule, HttpOnlyInAllow):
                continue  # Istio skips the rule: an ALLOW allows less, a DENY denies less
            target.policies[policy_name(entry.namespace, entry.name, index)].CopyFrom(policy)
        if not rules:
            target.policies[policy_name(entry.namespace, entry.name, 0)].CopyFrom(MATCH_NEVER)
    return BuiltRules(enforced if has_enforced else None, shadow if has_shadow else None)


def http_rbac_filters(
    policies: Policies, trust_domain: str, trust_domain_aliases: Sequence[str] = ()
) -> list[hcm.HttpFilter]:
    """HTTP RBAC filters for an inbound HTTP chain (before the router), in order."""
    filters: list[hcm.HttpFilter] = []
    for built in _per_action(policies, False, (trust_domain, *trust_domain_aliases)):
        config = http_rbac_pb2.RBAC(shadow_rules_stat_prefix=built.shadow_rules_stat_prefix)
        _fill(config, built)
        filters.append(hcm.HttpFilter(name=HTTP_RBAC_FILTER, typed_config=pack(config)))
    return filters


def network_rbac_filters(
    policies: Policies, trust_domain: str, trust_domain_aliases: Sequence[str] = ()
) -> list[lc.Filter]:
    """Network RBAC filters for an inbound TCP chain (before tcp_proxy), in order.

    HTTP-only attributes (hosts, methods, paths, request headers) cannot be seen on
    TCP: an ALLOW rule using one is dropped, a DENY or AUDIT rule ignores it (and so
    matches more), as in Istio."""
    filters: list[lc.Filter] = []
    for built in _per_action(policies, True, (trust_domain, *trust_domain_aliases)):
        config = network_rbac_pb2.RBAC(
            stat_prefix=TCP_STAT_PREFIX,
            shadow_rules_stat_prefix=built.shadow_rules_stat_prefix,
        )
        _fill(config, built)
        filters.append(lc.Filter(name=NETWORK_RBAC_FILTER, typed_config=pack(config)))
    return filters


def _per_action(
    policies: Policies, for_tcp: bool, trust_domains: Sequence[str]
) -> list[BuiltRules]:
    built: list[BuiltRules] = []
    for action, envoy_action in ACTIONS:
        of_action = [p for p in policies if p.resource.spec.action is action]
        rules = build_rules(of_action, envoy_action, for_tcp=for_tcp, trust_domains=trust_domains)
        if rules is not None:
            built.append(rules)
    return built


def _fill(config: http_rbac_pb2.RBAC | network_rbac_pb2.RBAC, built: BuiltRules) -> None:
    if built.rules is not None:
        config.rules.CopyFrom(built.rules)
    if built.shadow_rules is not None:
        config.shadow_rules.CopyFrom(built.shadow_rules)

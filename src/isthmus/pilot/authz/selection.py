"""Which AuthorizationPolicies apply to a workload (Istio's ListAuthorizationPolicies).

A policy applies to the workloads of its own namespace that its selector matches (all
of them without a selector). A policy in the root namespace applies the same way to
workloads of every namespace. Order is Istio's: root namespace first, then the
workload's; within a namespace oldest first, then by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from isthmus.api.authorization import AuthorizationPolicy
from isthmus.model.snapshot import ConfigEntry


def policies_for_workload(
    policies: Sequence[ConfigEntry[AuthorizationPolicy]],
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str,
) -> list[ConfigEntry[AuthorizationPolicy]]:
    oldest_first = sorted(policies, key=lambda p: (p.created_revision, p.name, p.namespace))
    return [
        entry
        for scope in dict.fromkeys((root_namespace, namespace))
        for entry in oldest_first
        if entry.namespace == scope and selects(entry.resource, labels)
    ]


def selects(policy: AuthorizationPolicy, labels: Mapping[str, str]) -> bool:
    """Every matchLabels pair is among the workload's labels (no selector: all match)."""
    selector = policy.spec.selector
    if selector is None:
        return True
    return all(labels.get(key) == value for key, value in selector.match_labels.items())

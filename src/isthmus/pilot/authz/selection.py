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
from isthmus.pilot.workload_policies import policies_in_scopes, selects

__all__ = ["policies_for_workload", "selects"]


def policies_for_workload(
    policies: Sequence[ConfigEntry[AuthorizationPolicy]],
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str,
) -> list[ConfigEntry[AuthorizationPolicy]]:
    return policies_in_scopes(policies, (root_namespace, namespace), labels)

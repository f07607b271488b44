"""The Deployment controller's arithmetic, pure: which pods to create and which to delete.

RollingUpdate follows Kubernetes: maxSurge (default 25%, rounded up) extra pods may exist,
and at least replicas - maxUnavailable (default 25%, rounded down) pods stay ready. Old
pods that are not ready can always go; ready ones only while availability allows.
Recreate deletes every old pod before creating new ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PodState:
    name: str
    template_hash: str
    ready: bool
    created: float  # seconds; newer pods are deleted first when scaling down


@dataclass(frozen=True)
class RolloutPlan:
    create: int
    delete: tuple[str, ...]


def resolve_bound(value: int | str, replicas: int, round_up: bool) -> int:
    """An int or a percentage ("25%") of replicas, rounded as Kubernetes does."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text.endswith("%") or not (text[:-1].isascii() and text[:-1].isdigit()):
        raise ValueError(f"must be an integer or a percentage like '25%', got {value!r}")
    exact = int(text[:-1]) * replicas / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def _scale_down_order(pods: Sequence[PodState]) -> list[PodState]:
    """Kubernetes prefers deleting not-ready, then newer pods."""
    return sorted(pods, key=lambda p: (p.ready, -p.created))


def plan_rollout(
    replicas: int,
    template_hash: str,
    pods: Sequence[PodState],
    *,
    strategy: str = "RollingUpdate",
    max_surge: int | str = "25%",
    max_unavailable: int | str = "25%",
) -> RolloutPlan:
    new = [p for p in pods if p.template_hash == template_hash]
    old = [p for p in pods if p.template_hash != template_hash]
    delete: list[str] = []
    if len(new) > replicas:
        delete.extend(p.name for p in _scale_down_order(new)[: len(new) - replicas])
        new = [p for p in new if p.name not in delete]
    if not old:
        return RolloutPlan(create=max(replicas - len(new), 0), delete=tuple(delete))
    if strategy == "Recreate":
        delete.extend(p.name for p in old)
        return RolloutPlan(create=0, delete=tuple(delete))

    surge = resolve_bound(max_surge, replicas, round_up=True)
    unavailable = resolve_bound(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # Kubernetes rejects 0/0; progress rather than stall
    total = len(new) + len(old)
    create = max(min(replicas + surge - total, replicas - len(new)), 0)

    min_available = replicas - unavailable
    ready = sum(p.ready for p in new) + sum(p.ready for p in old)
    budget = ready - min_available
    for pod in _scale_down_order(old):
        if not pod.ready:
            delete.append(pod.name)
        elif budget > 0:
            delete.append(pod.name)
            budget -= 1
    return RolloutPlan(create=create, delete=tuple(delete))

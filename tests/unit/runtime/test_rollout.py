"""The Deployment controller's arithmetic: scaling and rolling updates as Kubernetes does them."""

from __future__ import annotations

import pytest

from isthmus.runtime.rollout import PodState, plan_rollout, resolve_bound


def pods(template: str, ready: int, not_ready: int = 0, start: float = 0) -> list[PodState]:
    out = [PodState(f"{template}-r{i}", template, True, start + i) for i in range(ready)]
    out += [
        PodState(f"{template}-n{i}", template, False, start + 100 + i) for i in range(not_ready)
    ]
    return out


def test_scale_up_and_down() -> None:
    assert plan_rollout(3, "a", []).create == 3
    plan = plan_rollout(1, "a", pods("a", 2, 1))
    assert plan.create == 0 and plan.delete == ("a-n0", "a-r1")  # not-ready first, then newest


def test_single_replica_rolls_by_surging_first() -> None:
    """replicas 1: maxSurge 25% rounds up to 1, maxUnavailable 25% down to 0."""
    step1 = plan_rollout(1, "b", pods("a", 1))
    assert step1.create == 1 and step1.delete == ()
    step2 = plan_rollout(1, "b", pods("a", 1) + pods("b", 0, 1))
    assert step2.create == 0 and step2.delete == ()  # new not ready: keep the old one
    step3 = plan_rollout(1, "b", pods("a", 1) + pods("b", 1))
    assert step3.create == 0 and step3.delete == ("a-r0",)


def test_four_replicas_never_below_three_ready() -> None:
    old = pods("a", 4)
    step = plan_rollout(4, "b", old)
    assert step.create == 1 and len(step.delete) == 1  # surge 1, unavailable 1


def test_recreate_deletes_old_first() -> None:
    plan = plan_rollout(2, "b", pods("a", 2), strategy="Recreate")
    assert plan.create == 0 and set(plan.delete) == {"a-r0", "a-r1"}
    assert plan_rollout(2, "b", [], strategy="Recreate").create == 2


def test_bounds() -> None:
    assert resolve_bound("25%", 10, round_up=True) == 3
    assert resolve_bound("25%", 10, round_up=False) == 2
    assert resolve_bound(2, 10, round_up=True) == 2
    with pytest.raises(ValueError, match="percentage"):
        resolve_bound("lots", 3, round_up=True)


def test_min_ready_seconds_delays_availability() -> None:
    """A pod counts as available for a rollout only after minReadySeconds of readiness."""
    import time

    from isthmus.api.core import PodSpec
    from isthmus.runtime.pod import Pod

    pod = Pod(
        "web-a-x",
        "default",
        "web",
        "a",
        {},
        {},
        PodSpec.model_validate({"containers": [{"name": "app", "command": ["true"]}]}),
        inject=False,
    )
    assert not pod.available(0)
    pod.ready, pod.ready_changed_at = True, time.time()
    assert pod.available(0)
    assert not pod.available(30)
    pod.ready_changed_at = time.time() - 31
    assert pod.available(30)

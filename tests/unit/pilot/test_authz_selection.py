"""Which AuthorizationPolicies apply to a workload, and in which order (Istio's)."""

from __future__ import annotations

from dataclasses import replace

from _authz import policies, policy

from isthmus.pilot.authz.selection import policies_for_workload

ROOT = "istio-system"
INVENTORY = {"app": "inventory-service", "version": "v1"}


def names(text: str, namespace: str, labels: dict[str, str]) -> list[str]:
    selected = policies_for_workload(policies(text), namespace, labels, ROOT)
    return [f"{entry.namespace}/{entry.name}" for entry in selected]


def test_selector_matches_a_subset_of_the_workload_labels() -> None:
    text = (
        policy("selector: {matchLabels: {app: inventory-service}}", "match")
        + "---\n"
        + policy("selector: {matchLabels: {app: inventory-service, version: v2}}", "mismatch")
        + "---\n"
        + policy("selector: {matchLabels: {app: cart}}", "other-app")
    )

    assert names(text, "production", INVENTORY) == ["production/match"]


def test_no_selector_applies_to_every_workload_of_its_namespace_only() -> None:
    text = policy("{}", "namespace-wide") + "---\n" + policy("{}", "elsewhere", "staging")

    assert names(text, "production", INVENTORY) == ["production/namespace-wide"]
    assert names(text, "staging", {}) == ["staging/elsewhere"]


def test_root_namespace_policies_apply_in_every_namespace() -> None:
    text = (
        policy("{}", "mesh-wide", ROOT)
        + "---\n"
        + policy("selector: {matchLabels: {app: inventory-service}}", "mesh-inventory", ROOT)
        + "---\n"
        + policy("selector: {matchLabels: {app: cart}}", "mesh-cart", ROOT)
    )

    assert names(text, "production", INVENTORY) == [
        f"{ROOT}/mesh-wide",
        f"{ROOT}/mesh-inventory",
    ]
    assert names(text, "staging", {"app": "cart"}) == [f"{ROOT}/mesh-wide", f"{ROOT}/mesh-cart"]


def test_order_is_root_first_then_oldest_then_name() -> None:
    text = policy("{}", "b-older") + "---\n" + policy("{}", "mesh", ROOT) + "---\n"
    text += policy("{}", "a-newer")

    assert names(text, "production", {}) == [
        f"{ROOT}/mesh",
        "production/b-older",
        "production/a-newer",
    ]


def test_policies_created_together_are_ordered_by_name() -> None:
    older, newer = policies(policy("{}", "b") + "---\n" + policy("{}", "a"))
    same_age = [older, replace(newer, created_revision=older.created_revision)]

    selected = policies_for_workload(same_age, "production", {}, ROOT)

    assert [entry.name for entry in selected] == ["a", "b"]


def test_a_workload_in_the_root_namespace_gets_each_policy_once() -> None:
    text = policy("{}", "mesh", ROOT)

    assert names(text, ROOT, {}) == [f"{ROOT}/mesh"]

"""Istio's PeerAuthentication precedence: workload > namespace > mesh, oldest per scope,
UNSET inherits, no policy is PERMISSIVE, port-level modes from the workload policy."""

from __future__ import annotations

from typing import Any

import pytest

from isthmus.api.security import MtlsMode, PeerAuthentication
from isthmus.model.snapshot import ConfigEntry
from isthmus.pilot.security.peer_authentication import MtlsPolicy, compose_mtls

ROOT = "istio-system"
P, S, D, U = MtlsMode.PERMISSIVE, MtlsMode.STRICT, MtlsMode.DISABLE, MtlsMode.UNSET


def policy(
    namespace: str,
    name: str,
    mode: MtlsMode | None,
    revision: int,
    selector: dict[str, str] | None = None,
    ports: dict[str, MtlsMode] | None = None,
) -> ConfigEntry[PeerAuthentication]:
    spec: dict[str, Any] = {}
    if mode is not None:
        spec["mtls"] = {"mode": mode.value}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    if ports:
        spec["portLevelMtls"] = {k: {"mode": v.value} for k, v in ports.items()}
    resource = PeerAuthentication.model_validate(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    return ConfigEntry(name, namespace, resource, revision)


APP = {"app": "inventory"}
CASES: dict[str, tuple[list[ConfigEntry[PeerAuthentication]], MtlsPolicy]] = {
    "no policy is PERMISSIVE": ([], MtlsPolicy(P)),
    "mesh STRICT": ([policy(ROOT, "default", S, 1)], MtlsPolicy(S)),
    "mesh UNSET stays PERMISSIVE": ([policy(ROOT, "default", U, 1)], MtlsPolicy(P)),
    "namespace overrides mesh": (
        [policy(ROOT, "default", S, 1), policy("production", "default", P, 2)],
        MtlsPolicy(P),
    ),
    "namespace UNSET inherits mesh": (
        [policy(ROOT, "default", S, 1), policy("production", "default", None, 2)],
        MtlsPolicy(S),
    ),
    "other namespace does not apply": ([policy("staging", "default", S, 1)], MtlsPolicy(P)),
    "oldest namespace policy wins": (
        [policy("production", "b", D, 1), policy("production", "a", S, 2)],
        MtlsPolicy(D),
    ),
    "workload overrides namespace": (
        [policy("production", "default", S, 1), policy("production", "w", D, 2, APP)],
        MtlsPolicy(D),
    ),
    "workload selector that does not match": (
        [policy("production", "w", S, 1, {"app": "other"})],
        MtlsPolicy(P),
    ),
    "root namespace policy with selector is not mesh-wide": (
        [policy(ROOT, "w", S, 1, APP)],
        MtlsPolicy(P),
    ),
    "port level, UNSET inherits the workload's composed mode": (
        [
            policy("production", "default", S, 1),
            policy("production", "w", None, 2, APP, {"9100": D, "8080": U}),
        ],
        MtlsPolicy(S, {9100: D, 8080: S}),
    ),
    "oldest workload policy wins, ports included": (
        [
            policy("production", "new", S, 5, APP, {"9100": S}),
            policy("production", "old", P, 3, APP, {"9100": D}),
        ],
        MtlsPolicy(P, {9100: D}),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_composition(case: str) -> None:
    policies, expected = CASES[case]

    composed = compose_mtls(policies, "production", {**APP, "version": "v1"}, ROOT)

    assert composed == expected


def test_port_modes_fall_back_to_the_workload_mode() -> None:
    composed = MtlsPolicy(S, {9100: D})

    assert (composed.for_port(9100), composed.for_port(8080)) == (D, S)

"""Golden files: NN.input.yaml (config + test Proxy) -> NN.golden.yaml (CDS and EDS).

Regenerate with UPDATE_GOLDEN=1 and review the diff. Every golden bundle must also be
accepted by the real Envoy (`envoy --mode validate`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from _build import mesh_from_file

from isthmus.pilot.generators.clusters import eds_cluster_names, generate_clusters
from isthmus.pilot.generators.endpoints import generate_endpoints
from isthmus.pilot.locality_lb import ProxyPlace
from isthmus.testing.protojson import message_to_dict
from isthmus.testing.validate import validate_resources

GOLDEN = Path(__file__).parent / "golden" / "clusters"
CASES = sorted(p.name.removesuffix(".input.yaml") for p in GOLDEN.glob("*.input.yaml"))


def _generate(case: str) -> tuple[list[Any], list[Any]]:
    mesh, proxy = mesh_from_file(GOLDEN / f"{case}.input.yaml")
    clusters = generate_clusters(mesh, proxy)
    names = eds_cluster_names(clusters)
    endpoints = generate_endpoints(mesh, proxy.namespace, names, place=ProxyPlace.of(proxy))
    return clusters, endpoints


def _plain(messages: list[Any]) -> list[dict[str, Any]]:
    # A JSON round trip turns the OrderedDicts of resolved Anys into plain dicts.
    return [json.loads(json.dumps(message_to_dict(m))) for m in messages]


@pytest.mark.parametrize("case", CASES)
def test_matches_golden(case: str) -> None:
    clusters, endpoints = _generate(case)
    actual = {"clusters": _plain(clusters), "endpoints": _plain(endpoints)}
    golden = GOLDEN / f"{case}.golden.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(yaml.safe_dump(actual, sort_keys=False, width=100))
    assert golden.exists(), f"{golden.name} missing: run with UPDATE_GOLDEN=1"
    assert actual == yaml.safe_load(golden.read_text())


@pytest.mark.envoy
@pytest.mark.parametrize("case", CASES)
def test_envoy_accepts(case: str) -> None:
    clusters, endpoints = _generate(case)
    validate_resources(clusters=clusters, endpoints=endpoints)


def test_there_are_cases() -> None:
    assert len(CASES) >= 7

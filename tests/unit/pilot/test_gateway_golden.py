"""Golden files for a gateway pod: its listeners and route configurations together."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from _build import mesh_from_yaml
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from isthmus.api.loader import load_documents
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import LISTENER, ROUTE, Snapshot
from isthmus.testing.protojson import message_to_dict
from isthmus.testing.validate import validate_snapshot

DIRECTORY = Path(__file__).parent / "golden" / "gateway"
CASES = sorted(p.name.removesuffix(".input.yaml") for p in DIRECTORY.glob("*.input.yaml"))


def _generate(case: str) -> tuple[str, Snapshot]:
    text = (DIRECTORY / f"{case}.input.yaml").read_text()
    mesh, proxy = mesh_from_yaml(text)
    return text, ConfigGenerator().snapshot(mesh, proxy)


def _dump(snapshot: Snapshot) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for key, type_url, message in (
        ("listeners", LISTENER, listener_pb2.Listener),
        ("routes", ROUTE, route_pb2.RouteConfiguration),
    ):
        resources = snapshot.of_type(type_url)
        out[key] = []
        for name in sorted(resources):
            decoded = message()
            resources[name].any.Unpack(decoded)
            out[key].append(json.loads(json.dumps(message_to_dict(decoded))))
    return out


@pytest.mark.parametrize("case", CASES)
def test_matches_golden(case: str) -> None:
    _, snapshot = _generate(case)
    actual = _dump(snapshot)
    golden = DIRECTORY / f"{case}.golden.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(yaml.safe_dump(actual, sort_keys=False, width=100))
    assert golden.exists(), f"{golden.name} missing: run with UPDATE_GOLDEN=1"
    assert actual == yaml.safe_load(golden.read_text())


@pytest.mark.parametrize("case", CASES)
def test_input_is_valid_config(case: str) -> None:
    text, _ = _generate(case)
    config = [d for d in yaml.safe_load_all(text) if d and d["kind"] != "Proxy"]
    assert len(load_documents(yaml.safe_dump_all(config), f"{case}.input.yaml")) == len(config)


@pytest.mark.parametrize("case", CASES)
def test_envoy_accepts(case: str) -> None:
    _, snapshot = _generate(case)
    assert snapshot.consistency_errors() == []
    validate_snapshot(snapshot)


def test_there_are_cases() -> None:
    assert CASES

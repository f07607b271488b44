"""Golden files: NN.input.yaml (config + test Proxy) -> NN.golden.yaml (LDS).

The listeners come from the whole profile (`ConfigGenerator.snapshot`), so they are the
ones a proxy really receives. The Proxy document may add `httpProxyPort` (the explicit
proxy listener 127.0.0.1_PORT) and `listeners` (which listeners the golden holds; all by
default). Regenerate with UPDATE_GOLDEN=1 and review the diff. Every input must pass
isthmus' own validation, and every snapshot must be accepted by the real Envoy.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from _build import mesh_from_yaml
from envoy.config.listener.v3 import listener_pb2

from isthmus.api.loader import load_documents
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import LISTENER, Snapshot
from isthmus.testing.protojson import message_to_dict
from isthmus.testing.validate import validate_snapshot

GOLDEN = Path(__file__).parent / "golden" / "listeners"
CASES = sorted(p.name.removesuffix(".input.yaml") for p in GOLDEN.glob("*.input.yaml"))


def _documents(case: str) -> tuple[str, list[dict[str, Any]]]:
    text = (GOLDEN / f"{case}.input.yaml").read_text()
    return text, [d for d in yaml.safe_load_all(text) if d]


def _generate(case: str) -> tuple[Snapshot, list[str] | None]:
    text, documents = _documents(case)
    mesh, proxy = mesh_from_yaml(text)
    options = next((d for d in documents if d["kind"] == "Proxy"), {})
    proxy = replace(proxy, http_proxy_port=options.get("httpProxyPort"))
    return ConfigGenerator().snapshot(mesh, proxy), options.get("listeners")


def _listeners(snapshot: Snapshot, names: list[str] | None) -> list[dict[str, Any]]:
    resources = snapshot.of_type(LISTENER)
    out = []
    for name in names if names is not None else sorted(resources):
        listener = listener_pb2.Listener()
        resources[name].any.Unpack(listener)
        # A JSON round trip turns the OrderedDicts of resolved Anys into plain dicts.
        out.append(json.loads(json.dumps(message_to_dict(listener))))
    return out


@pytest.mark.parametrize("case", CASES)
def test_matches_golden(case: str) -> None:
    snapshot, names = _generate(case)
    actual = {"listeners": _listeners(snapshot, names)}
    golden = GOLDEN / f"{case}.golden.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(yaml.safe_dump(actual, sort_keys=False, width=100))
    assert golden.exists(), f"{golden.name} missing: run with UPDATE_GOLDEN=1"
    assert actual == yaml.safe_load(golden.read_text())


@pytest.mark.parametrize("case", CASES)
def test_input_is_valid_config(case: str) -> None:
    _, documents = _documents(case)
    config = [d for d in documents if d["kind"] != "Proxy"]
    loaded = load_documents(yaml.safe_dump_all(config), f"{case}.input.yaml")
    assert len(loaded) == len(config)


@pytest.mark.envoy
@pytest.mark.parametrize("case", CASES)
def test_envoy_accepts(case: str) -> None:
    snapshot, _ = _generate(case)
    assert snapshot.consistency_errors() == []
    validate_snapshot(snapshot)


def test_there_are_cases() -> None:
    assert len(CASES) >= 5

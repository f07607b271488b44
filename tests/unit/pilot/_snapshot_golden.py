"""Shared machinery of the snapshot golden tests (routes, listeners).

A case is NN.input.yaml (config + a test `kind: Proxy` document) -> NN.golden.yaml. The
resources come from the whole profile (`ConfigGenerator.snapshot`), so they are the ones
a proxy really receives. The proxy is a sidecar with SDS (mTLS) unless the Proxy
document says `sds: false`. It may add `httpProxyPort` and a selection key
(`routes`, `listeners`: which resources the golden holds; all by default). Regenerate with
UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from _build import mesh_from_yaml
from google.protobuf.message import Message

from isthmus.api.loader import load_documents
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import Snapshot
from isthmus.testing.protojson import message_to_dict
from isthmus.testing.validate import validate_snapshot


@dataclass(frozen=True)
class SnapshotGolden:
    directory: Path
    type_url: str
    message: type[Message]
    key: str  # "routes" or "listeners": the golden's top-level key and the selection key

    @property
    def cases(self) -> list[str]:
        return sorted(
            p.name.removesuffix(".input.yaml") for p in self.directory.glob("*.input.yaml")
        )

    def documents(self, case: str) -> tuple[str, list[dict[str, Any]]]:
        text = (self.directory / f"{case}.input.yaml").read_text()
        return text, [d for d in yaml.safe_load_all(text) if d]

    def generate(self, case: str) -> tuple[Snapshot, list[str] | None]:
        text, documents = self.documents(case)
        mesh, proxy = mesh_from_yaml(text)
        options = next((d for d in documents if d["kind"] == "Proxy"), {})
        proxy = replace(
            proxy, http_proxy_port=options.get("httpProxyPort"), sds=options.get("sds", True)
        )
        return ConfigGenerator().snapshot(mesh, proxy), options.get(self.key)

    def resources(self, snapshot: Snapshot, names: list[str] | None) -> list[dict[str, Any]]:
        resources = snapshot.of_type(self.type_url)
        out = []
        for name in names if names is not None else sorted(resources):
            message = self.message()
            resources[name].any.Unpack(message)
            # A JSON round trip turns the OrderedDicts of resolved Anys into plain dicts.
            out.append(json.loads(json.dumps(message_to_dict(message))))
        return out

    def check_golden(self, case: str) -> None:
        snapshot, names = self.generate(case)
        actual = {self.key: self.resources(snapshot, names)}
        golden = self.directory / f"{case}.golden.yaml"
        if os.environ.get("UPDATE_GOLDEN") == "1":
            golden.write_text(yaml.safe_dump(actual, sort_keys=False, width=100))
        assert golden.exists(), f"{golden.name} missing: run with UPDATE_GOLDEN=1"
        assert actual == yaml.safe_load(golden.read_text())

    def check_input_is_valid(self, case: str) -> None:
        _, documents = self.documents(case)
        config = [d for d in documents if d["kind"] != "Proxy"]
        loaded = load_documents(yaml.safe_dump_all(config), f"{case}.input.yaml")
        assert len(loaded) == len(config)

    def check_envoy_accepts(self, case: str) -> None:
        snapshot, _ = self.generate(case)
        assert snapshot.consistency_errors() == []
        validate_snapshot(snapshot)

"""Capture rules as golden text: NN-name.input.yaml (pod annotations, container ports and an
optional chain prefix) -> NN-name.golden.rules (iptables-restore input).

Regenerate with UPDATE_GOLDEN=1 and review the diff against Istio's istio-iptables. The
integration test loads every golden into a real pod namespace with iptables-restore.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from isthmus.netns.capture import capture_config_from_annotations, render_rules

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name.removesuffix(".input.yaml") for p in GOLDEN.glob("*.input.yaml"))


def rules_for(case: str) -> str:
    spec = yaml.safe_load((GOLDEN / f"{case}.input.yaml").read_text())
    config = capture_config_from_annotations(
        spec["annotations"],
        spec["containerPorts"],
        chain_prefix=spec.get("chainPrefix", "ISTHMUS"),
    )
    return render_rules(config)


def test_cases_exist() -> None:
    assert len(CASES) >= 6


@pytest.mark.parametrize("case", CASES)
def test_capture_rules_match_golden(case: str) -> None:
    golden = GOLDEN / f"{case}.golden.rules"
    text = rules_for(case)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"{golden.name} missing: run with UPDATE_GOLDEN=1"
    assert text == golden.read_text()

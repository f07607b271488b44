"""Golden files for LDS: the listeners a proxy receives (incl. the explicit proxy listener).

See _snapshot_golden.py for the case format. Every input must pass isthmus' own
validation, and every snapshot must be accepted by the real Envoy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _snapshot_golden import SnapshotGolden
from envoy.config.listener.v3 import listener_pb2

from isthmus.pilot.resources import LISTENER

GOLDEN = SnapshotGolden(
    Path(__file__).parent / "golden" / "listeners", LISTENER, listener_pb2.Listener, "listeners"
)
CASES = GOLDEN.cases


@pytest.mark.parametrize("case", CASES)
def test_matches_golden(case: str) -> None:
    GOLDEN.check_golden(case)


@pytest.mark.parametrize("case", CASES)
def test_input_is_valid_config(case: str) -> None:
    GOLDEN.check_input_is_valid(case)


@pytest.mark.envoy
@pytest.mark.parametrize("case", CASES)
def test_envoy_accepts(case: str) -> None:
    GOLDEN.check_envoy_accepts(case)


def test_there_are_cases() -> None:
    assert len(CASES) >= 5

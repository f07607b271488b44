"""When the sidecar is ready: LIVE, workers started, clusters and listeners delivered."""

from __future__ import annotations

from isthmus.agent.readiness import (
    CDS_REJECTED,
    CDS_SUCCESS,
    LDS_REJECTED,
    LDS_SUCCESS,
    WORKERS_STARTED,
    judge,
)

CONFIGURED = {WORKERS_STARTED: 1, CDS_SUCCESS: 1, LDS_SUCCESS: 1}


def test_ready_when_live_and_configured() -> None:
    verdict = judge("LIVE", CONFIGURED)
    assert verdict.ready
    assert verdict.reason == "ready"


def test_not_ready_before_live_or_while_draining() -> None:
    for state in ("PRE_INITIALIZING", "INITIALIZING", "DRAINING", ""):
        verdict = judge(state, CONFIGURED)
        assert not verdict.ready
        assert "envoy server state is" in verdict.reason


def test_not_ready_before_workers_start() -> None:
    assert not judge("LIVE", {**CONFIGURED, WORKERS_STARTED: 0}).ready


def test_not_ready_without_listeners_or_clusters_from_the_control_plane() -> None:
    no_lds = judge("LIVE", {WORKERS_STARTED: 1, CDS_SUCCESS: 2})
    assert not no_lds.ready
    assert "lds updates 0 successful 0 rejected" in no_lds.reason
    assert not judge("LIVE", {WORKERS_STARTED: 1, LDS_SUCCESS: 1}).ready


def test_a_rejected_update_still_counts_as_delivered() -> None:
    verdict = judge("LIVE", {WORKERS_STARTED: 1, CDS_SUCCESS: 1, LDS_REJECTED: 1})
    assert verdict.ready
    assert judge("LIVE", {WORKERS_STARTED: 1, CDS_REJECTED: 1, LDS_SUCCESS: 1}).ready

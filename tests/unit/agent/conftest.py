"""Shared fixtures of the agent's unit tests: a real CA to sign with, the agent's events."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from _agent_events import Events

from isthmus.agent import _log
from isthmus.ca import CertificateAuthority


@pytest.fixture
def events() -> Iterator[Events]:
    handler = Events()
    level = _log.logger.level
    _log.logger.addHandler(handler)
    _log.logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        _log.logger.removeHandler(handler)
        _log.logger.setLevel(level)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    directory: Path = tmp_path_factory.mktemp("ca")
    return CertificateAuthority.load_or_create(directory / "root", "cluster.local")

"""Fixtures shared by the tests of isthmus.testing: started upstream servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from isthmus.testing.upstream import UpstreamServer


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer("alpha") as server:
        yield server


@pytest.fixture
def second_upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer("beta") as server:
        yield server

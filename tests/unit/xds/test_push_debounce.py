"""The debouncer on its own: bursts merge, max delay holds, pushes never overlap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from isthmus.xds.debounce import Debouncer


class Recorder:
    def __init__(self, duration: float = 0.0, fail_first: bool = False) -> None:
        self.pushes: list[list[str]] = []
        self.running = 0
        self.overlapped = False
        self.duration = duration
        self.fail_first = fail_first

    async def __call__(self, reasons: list[str]) -> None:
        self.running += 1
        self.overlapped |= self.running > 1
        try:
            await asyncio.sleep(self.duration)
            self.pushes.append(reasons)
            if self.fail_first and len(self.pushes) == 1:
                raise RuntimeError("source exploded")
        finally:
            self.running -= 1


@pytest.fixture
async def started() -> AsyncIterator[list[Debouncer]]:
    made: list[Debouncer] = []
    yield made
    for debouncer in made:
        await debouncer.stop()


def make(made: list[Debouncer], recorder: Recorder, quiet: float, max_delay: float) -> Debouncer:
    debouncer = Debouncer(recorder, quiet=quiet, max_delay=max_delay)
    debouncer.start()
    made.append(debouncer)
    return debouncer


async def test_burst_within_quiet_window_is_one_push(started: list[Debouncer]) -> None:
    recorder = Recorder()
    debouncer = make(started, recorder, quiet=0.05, max_delay=5.0)
    for i in range(10):
        debouncer.request(f"change {i}")
        await asyncio.sleep(0.005)
    assert not debouncer.idle
    await asyncio.wait_for(debouncer.wait_idle(), 2)
    assert recorder.pushes == [[f"change {i}" for i in range(10)]]


async def test_max_delay_forces_a_push_during_constant_changes(
    started: list[Debouncer],
) -> None:
    recorder = Recorder()
    debouncer = make(started, recorder, quiet=0.05, max_delay=0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not recorder.pushes:
        debouncer.request("churn")
        await asyncio.sleep(0.01)
        assert loop.time() - start < 1.0, "no push despite max_delay"
    assert 0.18 <= loop.time() - start <= 0.5


async def test_requests_during_a_push_make_the_next_push_without_overlap(
    started: list[Debouncer],
) -> None:
    recorder = Recorder(duration=0.1)
    debouncer = make(started, recorder, quiet=0.01, max_delay=1.0)
    debouncer.request("first")
    await asyncio.sleep(0.05)  # the first push is running now
    debouncer.request("second")
    debouncer.request("third")
    await asyncio.wait_for(debouncer.wait_idle(), 2)
    assert recorder.pushes == [["first"], ["second", "third"]]
    assert not recorder.overlapped


async def test_a_failed_push_does_not_stop_later_pushes(started: list[Debouncer]) -> None:
    recorder = Recorder(fail_first=True)
    debouncer = make(started, recorder, quiet=0.01, max_delay=1.0)
    debouncer.request("boom")
    await asyncio.wait_for(debouncer.wait_idle(), 2)
    debouncer.request("after")
    await asyncio.wait_for(debouncer.wait_idle(), 2)
    assert recorder.pushes == [["boom"], ["after"]]


def test_quiet_window_longer_than_max_delay_is_refused() -> None:
    with pytest.raises(ValueError):
        Debouncer(Recorder(), quiet=1.0, max_delay=0.5)

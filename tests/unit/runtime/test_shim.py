"""The per-pod shim as a real detached process: it supervises processes independently of
whoever launched it, counts restarts, stops on request, and takes its processes down
when it dies itself (a pod never runs unsupervised)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from isthmus.runtime.process import process_alive
from isthmus.runtime.shim_client import ShimClient, ShimRefused, ShimUnavailable, launch_shim


async def _until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


@pytest.fixture
async def shim() -> AsyncIterator[tuple[ShimClient, Path]]:
    root = Path(tempfile.mkdtemp(prefix="shim-", dir="/tmp"))
    client = await launch_shim("ns.pod", root / "s.sock", root / "shim.log")
    try:
        yield client, root
    finally:
        if await client.alive():
            await client.exit(grace=1)


async def test_supervises_restarts_and_stops(shim: tuple[ShimClient, Path]) -> None:
    client, root = shim
    status = await client.status()
    assert status.pid != os.getpid() and os.getppid() != status.pid
    # Detached: not our child, in a session of its own.
    assert os.getsid(status.pid) == status.pid

    await client.start("app", ["sleep", "60"], root / "app.log", env={"X": "1"}, cwd=str(root))
    await client.start("app", ["sleep", "1"], root / "ignored.log")  # present: left as is
    first = (await client.status()).containers["app"]
    assert first.running and first.restarts == 0 and first.pid is not None

    os.kill(first.pid, signal.SIGKILL)  # a crash: restarted after the backoff, and counted
    for _ in range(100):
        again = (await client.status()).containers["app"]
        if again.running and again.pid != first.pid:
            break
        await asyncio.sleep(0.05)
    assert again.restarts == 1 and again.last_exit == -signal.SIGKILL

    await client.kill("app")  # a failed liveness probe: same as a crash
    await asyncio.sleep(0.1)
    assert (await client.status()).containers["app"].restarts == 2

    await client.stop(["app", "never-started"], grace=1)
    stopped = (await client.status()).containers["app"]
    assert not stopped.running and stopped.pid is None

    with pytest.raises(ShimRefused, match="no process named"):
        await client.kill("nope")
    with pytest.raises(ShimRefused, match="argv"):
        await client.call("start", name="bad", argv=[], log=str(root / "x.log"))

    shim_pid = status.pid
    await client.exit(grace=1)
    await _until(lambda: not process_alive(shim_pid))
    with pytest.raises(ShimUnavailable):
        await client.status()


async def test_processes_die_with_their_shim(shim: tuple[ShimClient, Path]) -> None:
    client, root = shim
    await client.start("app", ["sleep", "60"], root / "app.log")
    await asyncio.sleep(0.2)
    status = await client.status()
    app = status.containers["app"].pid
    assert app is not None and process_alive(app)
    os.kill(status.pid, signal.SIGKILL)
    await _until(lambda: not process_alive(app))
    assert not await client.alive()


async def test_outlives_the_process_that_launched_it() -> None:
    """Launched from a child process that then exits: the shim and its process go on."""
    root = Path(tempfile.mkdtemp(prefix="shim-", dir="/tmp"))
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from isthmus.runtime.shim_client import launch_shim\n"
        "async def main():\n"
        f"    c = await launch_shim('ns.p', Path('{root}/s.sock'), Path('{root}/shim.log'))\n"
        f"    await c.start('app', ['sleep', '60'], Path('{root}/app.log'))\n"
        "asyncio.run(main())\n"
    )
    launcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
    )
    assert await launcher.wait() == 0
    client = ShimClient(root / "s.sock")
    try:
        await asyncio.sleep(0.2)
        status = await client.status()
        assert status.containers["app"].running
    finally:
        await client.exit(grace=1)

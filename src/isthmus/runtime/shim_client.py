"""The node runtime's side of a pod's shim: launch it, and talk to it over its socket.

See runtime.shim for the protocol. Every call is one short connection, so a shim that was
started by a previous node runtime is talked to exactly like one started by this one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isthmus.runtime.process import process_alive

LAUNCH_TIMEOUT = 30.0
CALL_TIMEOUT = 5.0
EXIT_TIMEOUT = 10.0


def shim_socket_path(shim_dir: Path, pod_key: str) -> Path:
    """Where the shim of pod `namespace.name` listens: short and fixed-length, as unix
    socket paths are limited to 107 bytes."""
    return shim_dir / f"{hashlib.sha256(pod_key.encode()).hexdigest()[:16]}.sock"


class ShimUnavailable(ConnectionError):
    """Nothing answers on the shim's socket: the shim is gone (or was never started)."""


class ShimRefused(RuntimeError):
    """The shim answered with an error."""


@dataclass(frozen=True)
class ContainerState:
    """One supervised process as the shim reports it."""

    name: str
    pid: int | None
    running: bool
    restarts: int
    last_exit: int | None
    started_at: float | None


@dataclass(frozen=True)
class ShimStatus:
    pid: int
    containers: dict[str, ContainerState]


class ShimClient:
    """Calls one pod's shim at `socket_path`."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    async def call(self, op: str, timeout: float = CALL_TIMEOUT, **args: Any) -> dict[str, Any]:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.socket_path)), CALL_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            raise ShimUnavailable(f"shim at {self.socket_path}: {exc}") from exc
        try:
            writer.write(json.dumps({"op": op, **args}).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
        except (OSError, TimeoutError) as exc:
            raise ShimUnavailable(f"shim at {self.socket_path}: {op}: {exc!r}") from exc
        finally:
            writer.close()
        if not line:
            raise ShimUnavailable(f"shim at {self.socket_path} closed without answering {op}")
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise ShimRefused(f"shim answered {op} with {answer!r}")
        if "error" in answer:
            raise ShimRefused(f"shim refused {op}: {answer['error']}")
        return answer

    async def status(self) -> ShimStatus:
        answer = await self.call("status")
        containers = {
            name: ContainerState(
                name=name,
                pid=state.get("pid"),
                running=bool(state.get("running")),
                restarts=int(state.get("restarts", 0)),
                last_exit=state.get("lastExit"),
                started_at=state.get("startedAt"),
            )
            for name, state in answer.get("containers", {}).items()
        }
        return ShimStatus(pid=int(answer["pid"]), containers=containers)

    async def alive(self) -> bool:
        try:
            await self.status()
        except (ShimUnavailable, ShimRefused, ValueError, KeyError):
            return False
        return True

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        await self.call(
            "start",
            name=name,
            argv=list(argv),
            log=str(log),
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )

    async def kill(self, name: str) -> None:
        await self.call("kill", name=name)

    async def stop(self, names: Sequence[str], grace: float) -> None:
        await self.call("stop", timeout=grace + 15.0, names=list(names), grace=grace)

    async def exit(self, grace: float = 0.0) -> None:
        """Stop every process and the shim; returns once the shim is gone, so it no longer
        holds anything (the mesh's claim) when the caller goes on."""
        pid = (await self.status()).pid
        await self.call("exit", timeout=grace + 15.0, grace=grace)
        deadline = time.monotonic() + EXIT_TIMEOUT
        while process_alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


async def launch_shim(
    pod: str, socket_path: Path, log_path: Path, keep_fds: Sequence[int] = ()
) -> ShimClient:
    """Start a detached shim for `pod` and return its client once it listens.

    `keep_fds` are inherited by the shim and held for its whole life (the mesh's
    ownership lock: the mesh stays owned while any of its pods runs)."""
    socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    launcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "isthmus.runtime.shim",
        "--pod",
        pod,
        "--socket",
        str(socket_path),
        "--log",
        str(log_path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        pass_fds=tuple(keep_fds),
    )
    try:
        _, stderr = await asyncio.wait_for(launcher.communicate(), LAUNCH_TIMEOUT)
    except TimeoutError:
        launcher.kill()
        await launcher.wait()
        raise ShimUnavailable(f"shim of pod {pod} did not start in {LAUNCH_TIMEOUT:.0f}s") from None
    if launcher.returncode != 0:
        detail = stderr.decode(errors="replace").strip()[-300:]
        raise ShimUnavailable(
            f"shim of pod {pod} failed to start: {detail or 'see ' + str(log_path)}"
        )
    return ShimClient(socket_path)

"""isthmus-shim: the per-pod process supervisor (containerd's shim, for isthmus pods).

A pod's processes (its sidecar agent and its containers) are children of the pod's shim,
not of the node runtime, so the node runtime can crash, be restarted or upgraded without
touching a pod: the shim keeps restarting processes that exit (restartPolicy Always, with
backoff) and counts the restarts, and the next node runtime adopts it through its socket.

The shim detaches at start (fork, setsid; the launching process exits once the socket
listens), so it belongs to no node runtime's process tree. Its children die with it
(PR_SET_PDEATHSIG), so a pod never runs unsupervised.

Protocol: one JSON object per line on a unix socket, one request then one answer per
connection. Requests are `{"op": ...}` with
- `status`: `{"pid", "pod", "containers": {name: {pid, running, restarts, lastExit,
  startedAt}}}`
- `start` (`name`, `argv`, `env`, `cwd`, `log`): start and supervise a process; a name
  already present is left as it is
- `kill` (`name`): SIGKILL the running instance; it is restarted as after a crash
- `stop` (`names`, `grace`): SIGTERM, SIGKILL after `grace` seconds; no restart
- `exit` (`grace`): stop every process, answer, exit
Failures answer `{"error": "..."}`. SIGTERM to the shim stops everything and exits.

Only the standard library and isthmus.runtime.process are imported: one shim runs per
pod, so it must stay small.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from isthmus.runtime.process import SupervisedProcess

log = logging.getLogger("isthmus.shim")

MAX_REQUEST = 4 * 1024 * 1024
DEFAULT_GRACE = 10.0


class ShimError(Exception):
    """A request the shim refuses; its message is sent back."""


class Shim:
    """The processes of one pod, by container name."""

    def __init__(self, pod: str) -> None:
        self.pod = pod
        self.processes: dict[str, SupervisedProcess] = {}
        self.done = asyncio.Event()

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "pod": self.pod,
            "containers": {
                name: {
                    "pid": p.pid,
                    "running": p.running,
                    "restarts": p.restarts,
                    "lastExit": p.last_exit,
                    "startedAt": p.started_at,
                }
                for name, p in self.processes.items()
            },
        }

    def start(self, request: dict[str, Any]) -> None:
        name = _text(request, "name")
        if name in self.processes:
            return
        argv = request.get("argv")
        env = request.get("env")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ShimError('"argv" must be a non-empty list of strings')
        if env is not None and not (
            isinstance(env, dict) and all(isinstance(v, str) for v in env.values())
        ):
            raise ShimError('"env" must map names to strings')
        cwd = request.get("cwd")
        process = SupervisedProcess(
            name,
            argv,
            Path(_text(request, "log")),
            env=env,
            cwd=cwd if isinstance(cwd, str) else None,
        )
        self.processes[name] = process
        process.start()

    async def kill(self, request: dict[str, Any]) -> None:
        await self._process(_text(request, "name")).kill_current()

    async def stop(self, names: Sequence[str], grace: float) -> None:
        """Names not started (a pod stopped while starting) are fine: nothing to stop."""
        present = [self.processes[n] for n in names if n in self.processes]
        await asyncio.gather(*(p.stop(grace) for p in present))

    async def stop_all(self, grace: float) -> None:
        await self.stop(list(self.processes), grace)

    def _process(self, name: str) -> SupervisedProcess:
        process = self.processes.get(name)
        if process is None:
            raise ShimError(f"no process named {name!r}")
        return process

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return self.status()
        if op == "start":
            self.start(request)
        elif op == "kill":
            await self.kill(request)
        elif op == "stop":
            names = request.get("names")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ShimError('"names" must be a list of strings')
            await self.stop(names, _grace(request))
        elif op == "exit":
            await self.stop_all(_grace(request))
            self.done.set()
        else:
            raise ShimError(f"unknown op {op!r}")
        return {"ok": True}

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            line = await reader.readline()
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ShimError("a request is a JSON object")
                answer = await self.handle(request)
            except (ShimError, ValueError) as exc:
                answer = {"error": str(exc)}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _text(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise ShimError(f'"{name}" must be a non-empty string')
    return value


def _grace(request: dict[str, Any]) -> float:
    value = request.get("grace", DEFAULT_GRACE)
    if not isinstance(value, int | float) or value < 0:
        raise ShimError('"grace" must be a non-negative number of seconds')
    return float(value)


async def serve(shim: Shim, socket_path: Path, ready_fd: int | None) -> None:
    """Listen, tell the launcher (through ready_fd) that we do, serve until exit."""
    socket_path.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(
        shim.serve_connection, path=str(socket_path), limit=MAX_REQUEST
    )
    os.chmod(socket_path, 0o600)
    loop = asyncio.get_running_loop()

    async def terminate() -> None:
        await shim.stop_all(DEFAULT_GRACE)
        shim.done.set()

    stopping: list[asyncio.Task[None]] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stopping.append(asyncio.create_task(terminate())))
    if ready_fd is not None:
        os.write(ready_fd, b"ok\n")
        os.close(ready_fd)
    log.info("shim listening pod=%s socket=%s pid=%d", shim.pod, socket_path, os.getpid())
    try:
        await shim.done.wait()
        await asyncio.sleep(0.05)  # let the exit request's answer go out
    finally:
        server.close()
        socket_path.unlink(missing_ok=True)
        log.info("shim exiting pod=%s", shim.pod)


def _detach(log_path: Path) -> int:
    """Fork; the parent waits for the child's "ok" and exits 0 (1 if the child failed).

    Returns, in the child, the write end of the readiness pipe. The child leaves the
    launcher's session, so it outlives whoever started it."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child:
        os.close(write_end)
        answer = b""
        while chunk := os.read(read_end, 64):
            answer += chunk
        os._exit(0 if answer.startswith(b"ok") else 1)
    os.close(read_end)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    return write_end


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isthmus.runtime.shim")
    parser.add_argument("--pod", required=True, help="namespace.name, for logs")
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--log", required=True, type=Path, help="the shim's own log file")
    parser.add_argument(
        "--foreground", action="store_true", help="do not detach (tests, debugging)"
    )
    args = parser.parse_args(argv)
    ready_fd = None if args.foreground else _detach(args.log)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    shim = Shim(args.pod)
    asyncio.run(serve(shim, args.socket, ready_fd))
    return 0


if __name__ == "__main__":
    sys.exit(main())

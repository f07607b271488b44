"""Kubernetes probes (httpGet, tcpSocket, exec) run from inside the pod's namespace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from isthmus.api.core import Container, Probe
from isthmus.runtime.nsocket import http_get_in_netns, open_connection_in_netns


def probe_port(port: int | str, container: Container) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    for p in container.ports:
        if p.name == port:
            return p.container_port
    raise ValueError(f"container {container.name} has no port named {port!r}")


async def run_probe(
    probe: Probe,
    container: Container,
    netns: str,
    exec_argv: Callable[[Sequence[str]], list[str]],
) -> bool:
    """One probe attempt; True on success (HTTP 200-399, TCP connect, exit code 0)."""
    timeout = float(probe.timeout_seconds)
    try:
        if probe.http_get is not None:
            port = probe_port(probe.http_get.port, container)
            status = await http_get_in_netns(netns, "127.0.0.1", port, probe.http_get.path, timeout)
            return 200 <= status < 400
        if probe.tcp_socket is not None:
            port = probe_port(probe.tcp_socket.port, container)
            _, writer = await open_connection_in_netns(netns, "127.0.0.1", port, timeout)
            writer.close()
            return True
        if probe.exec is not None:
            proc = await asyncio.create_subprocess_exec(
                *exec_argv(probe.exec.command),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                return await asyncio.wait_for(proc.wait(), timeout) == 0
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                return False
    except (OSError, TimeoutError, ConnectionError, ValueError):
        return False
    return True


class ProbeState:
    """Kubernetes' threshold logic: success/failure thresholds over consecutive results."""

    def __init__(self, probe: Probe, initially: bool) -> None:
        self.probe = probe
        self.passing = initially
        self._successes = 0
        self._failures = 0

    def record(self, ok: bool) -> bool:
        if ok:
            self._successes += 1
            self._failures = 0
            if self._successes >= self.probe.success_threshold:
                self.passing = True
        else:
            self._failures += 1
            self._successes = 0
            if self._failures >= self.probe.failure_threshold:
                self.passing = False
        return self.passing

"""`isthmus port-forward TYPE/NAME [LOCAL:]PORT...`: reach a pod from the host, as kubectl.

The forwarder listens on 127.0.0.1 in the host's own network namespace and nowhere else.
For each accepted connection it opens a socket *inside* the target pod's network
namespace (isthmus.runtime.nsocket) to 127.0.0.1:PORT there, and copies bytes both ways.
No route into the mesh is ever added: the host reaches the pod only through this socket.

Targets: `pod/NAME` (PORT is the container port), `deploy/NAME` (a ready pod of it) and
`svc/NAME` (PORT is a service port; a ready endpoint's pod on the targetPort). The
target is resolved again for new connections, so the forward survives a pod replacement.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.pods import fetch_pods
from isthmus.cli.waiting import timeout_option
from isthmus.cli.xcmd import require_root
from isthmus.daemon.client import DaemonClient, DaemonError, DaemonNotRunning
from isthmus.runtime.nsocket import open_connection_in_netns

LISTEN_HOST = "127.0.0.1"  # never anything else: the host's loopback only
CHUNK = 64 * 1024  # read size and stream buffer limit: memory per connection stays bounded
MAX_CONNECTIONS = 128
RESOLVE_TTL = 2.0  # seconds a resolved target is reused before asking the daemon again
CONNECT_TIMEOUT = 5.0

_KINDS = {
    "pod": "pod",
    "pods": "pod",
    "po": "pod",
    "svc": "service",
    "service": "service",
    "services": "service",
    "deploy": "deployment",
    "deployment": "deployment",
    "deployments": "deployment",
    "deployment.apps": "deployment",
    "deployments.apps": "deployment",
}


@dataclass(frozen=True)
class Target:
    kind: str  # pod | service | deployment
    name: str
    namespace: str


@dataclass(frozen=True)
class PortSpec:
    local: int  # 0: let the kernel choose
    remote: int


@dataclass(frozen=True)
class Backend:
    """Where one connection goes: a port on 127.0.0.1 inside a pod's namespace."""

    pod: str
    netns: str
    port: int


def parse_target(arg: str, namespace: str | None) -> Target:
    """kubectl's `TYPE/NAME` (a bare NAME is a pod)."""
    kind, slash, name = arg.partition("/")
    if not slash:
        kind, name = "pod", arg
    if kind.lower() not in _KINDS:
        raise UserError(f'cannot port-forward to "{kind}": use pod/NAME, svc/NAME or deploy/NAME')
    if not name:
        raise UserError(f'"{arg}": the name is missing')
    return Target(_KINDS[kind.lower()], name, namespace or "default")


def _port(text: str, what: str, allow_zero: bool) -> int:
    if not text.isdigit() or not (0 if allow_zero else 1) <= int(text) <= 65535:
        raise UserError(f'"{text}" is not a valid {what} port')
    return int(text)


def parse_port_spec(spec: str) -> PortSpec:
    """`LOCAL:REMOTE`, `PORT` (the same port locally) or `:REMOTE` (any free local port)."""
    local, colon, remote = spec.partition(":")
    if not colon:
        port = _port(spec, "remote", allow_zero=False)
        return PortSpec(port, port)
    return PortSpec(
        _port(local, "local", allow_zero=True) if local else 0,
        _port(remote, "remote", allow_zero=False),
    )


# --- choosing a backend (pure: from the daemon's answers) ------------------------------


def pod_backend(pods: Sequence[dict[str, Any]], target: Target, port: int) -> Backend:
    """The pod itself, or for a Deployment its first ready pod (by name, stable)."""
    mine = [p for p in pods if p["namespace"] == target.namespace]
    if target.kind == "pod":
        found = [p for p in mine if p["name"] == target.name]
        if not found:
            raise UserError(f'pod "{target.name}" not found in namespace {target.namespace}')
        pod = found[0]
        if pod["phase"] != "Running" or not pod["netns"]:
            raise UserError(
                f"unable to forward port because pod {pod['name']} is not running "
                f"(status {pod['phase']})"
            )
        return Backend(pod["name"], pod["netns"], port)
    ready = sorted(
        (p for p in mine if p["deployment"] == target.name and p["ready"] and p["netns"]),
        key=lambda p: str(p["name"]),
    )
    if not ready:
        raise UserError(
            f'deployment "{target.name}" has no ready pod in namespace {target.namespace}'
        )
    return Backend(ready[0]["name"], ready[0]["netns"], port)


def service_backend(items: Sequence[dict[str, Any]], target: Target, port: int) -> Backend:
    """A ready endpoint pod of the service port; the connection goes to its targetPort."""
    found = [i for i in items if i["name"] == target.name and i["namespace"] == target.namespace]
    if not found:
        raise UserError(f'service "{target.name}" not found in namespace {target.namespace}')
    item = found[0]
    if port not in {p["port"] for p in item["ports"]}:
        known = ", ".join(str(p["port"]) for p in item["ports"]) or "none"
        raise UserError(f"service {target.name} does not have a service port {port} ({known})")
    ready = sorted(
        (
            a
            for a in item["addresses"]
            if a["servicePort"] == port and a["ready"] and a["netns"] and a["pod"]
        ),
        key=lambda a: str(a["pod"]),
    )
    if not ready:
        raise UserError(f"service {target.name} has no ready pod for port {port}")
    return Backend(ready[0]["pod"], ready[0]["netns"], int(ready[0]["port"]))


def resolve(cli: CliContext, target: Target, port: int) -> Backend:
    """Ask the daemon where `target`'s PORT is now (blocking; run it off the event loop)."""
    if target.kind == "service":
        with DaemonClient(cli.home) as client:
            params = {"namespace": target.namespace, "name": target.name}
            answer = client.request("GET", "/v1/endpoints", params=params)
        if not answer.get("runtime"):
            fetch_pods(cli)  # raises the "runtime is not running" error
        return service_backend(answer["endpoints"], target, port)
    return pod_backend(fetch_pods(cli), target, port)


# --- forwarding ------------------------------------------------------------------------


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """One direction until EOF, then half-close; drain() keeps the buffer bounded."""
    while chunk := await src.read(CHUNK):
        dst.write(chunk)
        await dst.drain()
    if dst.can_write_eof():
        dst.write_eof()


async def splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Copy both ways until both sides finished or one failed; then close both."""
    tasks = [asyncio.create_task(_copy(a[0], b[1])), asyncio.create_task(_copy(b[0], a[1]))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in (a[1], b[1]):
            writer.close()
        for writer in (a[1], b[1]):
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()


class Forwarder:
    """Listens on 127.0.0.1 for each port spec and splices connections into the pod."""

    def __init__(self, specs: Sequence[PortSpec], lookup: Callable[[int], Backend]) -> None:
        self._specs = specs
        self._lookup = lookup  # remote port -> backend (blocking)
        self._cache: dict[int, tuple[float, Backend]] = {}
        self._connections: set[asyncio.Task[Any]] = set()
        self._servers: list[asyncio.Server] = []

    async def _backend(self, port: int, fresh: bool) -> Backend:
        cached = self._cache.get(port)
        if cached and not fresh and time.monotonic() - cached[0] < RESOLVE_TTL:
            return cached[1]
        backend = await asyncio.to_thread(self._lookup, port)
        self._cache[port] = (time.monotonic(), backend)
        return backend

    async def _connect(
        self, port: int
    ) -> tuple[Backend, tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        """Connect inside the pod; one retry with a fresh lookup (the pod may be gone)."""
        for fresh in (False, True):
            backend = await self._backend(port, fresh)
            try:
                stream = await open_connection_in_netns(
                    backend.netns, "127.0.0.1", backend.port, CONNECT_TIMEOUT
                )
                return backend, stream
            except (OSError, TimeoutError):
                if fresh:
                    raise
        raise AssertionError("unreachable")

    async def _handle(
        self, spec: PortSpec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            click.echo(f"error: more than {MAX_CONNECTIONS} connections; refusing one", err=True)
            writer.close()
            return
        self._connections.add(task)
        try:
            click.echo(f"Handling connection for {spec.local}")
            try:
                _, upstream = await self._connect(spec.remote)
            except (OSError, TimeoutError, UserError, DaemonError, DaemonNotRunning) as exc:
                detail = "; ".join(getattr(exc, "lines", [])) or str(exc) or type(exc).__name__
                click.echo(f"error: forwarding {spec.local} -> {spec.remote}: {detail}", err=True)
                writer.close()
                return
            await splice((reader, writer), upstream)
        finally:
            self._connections.discard(task)

    async def start(self) -> list[PortSpec]:
        """Bind every listener (all or none); returns the specs with the bound local ports."""
        bound = []
        try:
            for spec in self._specs:
                server = await self._listen(spec)
                self._servers.append(server)
                port = server.sockets[0].getsockname()[1]
                bound.append(PortSpec(port, spec.remote))
        except BaseException:
            await self.close()
            raise
        return bound

    async def _listen(self, spec: PortSpec) -> asyncio.Server:
        def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> Any:
            return self._handle(PortSpec(w.get_extra_info("sockname")[1], spec.remote), r, w)

        try:
            return await asyncio.start_server(handler, LISTEN_HOST, spec.local, limit=CHUNK)
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise UserError(f"unable to listen on port {spec.local}: {reason}") from exc

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()


async def forward(cli: CliContext, target: Target, specs: Sequence[PortSpec]) -> None:
    """Serve until SIGINT/SIGTERM, then close every listener and connection."""
    forwarder = Forwarder(specs, lambda port: resolve(cli, target, port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for spec in await forwarder.start():
            click.echo(f"Forwarding from {LISTEN_HOST}:{spec.local} -> {spec.remote}")
        await stop.wait()
    finally:
        await forwarder.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@click.command("port-forward")
@timeout_option
@click.argument("target")
@click.argument("ports", nargs=-1, required=True)
@click.option("-n", "--namespace", help="Namespace of the target (default: default).")
@pass_cli
def port_forward_command(
    cli: CliContext, target: str, ports: tuple[str, ...], namespace: str | None
) -> None:
    """Forward 127.0.0.1:LOCAL on this host to PORT of a pod, deployment or service.

    \b
    isthmus port-forward svc/inventory-service 8080:8080 -n production
    isthmus port-forward deploy/order-service :8080
    """
    parsed = parse_target(target, namespace)
    specs = [parse_port_spec(p) for p in ports]
    require_root("port-forward")
    for spec in specs:  # fail now, not at the first connection
        resolve(cli, parsed, spec.remote)
    asyncio.run(forward(cli, parsed, specs))

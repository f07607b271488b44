"""Many light fake sidecars in one process, driven by the benchmark over a pipe.

Each sidecar is one State-of-the-World ADS stream on its own gRPC connection (a local
subchannel pool, so streams are not multiplexed onto one HTTP/2 connection) and follows
Envoy's subscription order: CDS, then EDS for the EDS clusters, LDS, then RDS for the
route configurations the listeners name. Every response is ACKed at once.

To stay light (the clients share two cores with the server they measure) a response is
parsed only to its envelope: resources are counted and their bytes summed, never
unpacked. The EDS and RDS names a sidecar asks for are the ones the synthetic mesh
defines (see `_mesh_gen`), exactly what Envoy would ask for after reading the clusters
and listeners; a response whose resource count differs from the request is recorded as
an error, so a naming mismatch can not pass unnoticed.

The driver sends commands (tuples) over a `multiprocessing` pipe and gets one reply per
command; times are `time.monotonic()`, which on Linux is one clock for all processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import grpc
from _mesh_gen import GRPC_PORT, HTTP_PORT, SUBSETS, MeshShape, proxy_identity
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
TYPES = (CDS, EDS, LDS, RDS)
SHORT = {CDS: "CDS", EDS: "EDS", LDS: "LDS", RDS: "RDS"}
_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
_CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]
_Response = tuple[int, discovery_pb2.DiscoveryResponse]


def _parse(data: bytes) -> _Response:
    # The envelope only: the packed resources stay opaque bytes inside their Any.
    return len(data), discovery_pb2.DiscoveryResponse.FromString(data)


def eds_names(shape: MeshShape) -> list[str]:
    """Every outbound EDS cluster of the mesh: per service and port, default and subsets."""
    names: list[str] = []
    for k in range(shape.services):
        host = f"svc-{k}.{shape.namespace_of(k)}.svc.cluster.local"
        for port in (HTTP_PORT, GRPC_PORT):
            names.extend(f"outbound|{port}|{subset}|{host}" for subset in ("", *SUBSETS))
    return sorted(names)


ROUTE_NAMES = sorted([str(HTTP_PORT), str(GRPC_PORT)])


@dataclass
class _Proxy:
    index: int
    node: base_pb2.Node
    epoch: int = -1  # release epoch of the current stream
    connected: bool = False
    acked: dict[str, str] = field(default_factory=dict)  # type -> version, this stream
    rds_version: str = ""  # survives reconnects: what the proxy holds
    rds_baseline: str | None = None
    rds_changed_at: float | None = None
    synced_at: float | None = None


@dataclass
class _Traffic:
    responses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHORT.values(), 0))
    resources: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHORT.values(), 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHORT.values(), 0))


class ProxyFleet:
    """The sidecars of one client process and the counters the driver asks for."""

    def __init__(self, target: str, shape: MeshShape, indices: Sequence[int]) -> None:
        self._target = target
        self._proxies = [_Proxy(i, _node(shape, i)) for i in indices]
        self._eds_names = eds_names(shape)
        self._released = asyncio.Event()
        self._epoch = 0
        self._synced = 0
        self._rds_changed = 0
        self._progress = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.traffic = _Traffic()
        self.errors: list[str] = []  # protocol errors: a response not what was asked for
        self.stream_errors: list[str] = []  # streams that failed and were retried
        self.stream_errors_by_epoch: dict[int, int] = {}
        self.streams_opened = 0
        self.streams_cut = 0  # ended with an error while held: isthmusd was being stopped

    # -- commands ---------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(p)) for p in self._proxies]

    def release(self) -> float:
        """Let every proxy (re)connect; a new epoch for `wait_synced`."""
        self._epoch += 1
        self._synced = 0
        for p in self._proxies:
            p.synced_at = None
        self._released.set()
        return time.monotonic()

    def hold(self) -> None:
        """Proxies whose stream ends wait for the next `release` instead of reconnecting."""
        self._released.clear()

    def mark(self) -> None:
        """Remember each proxy's route version; `wait_rds` waits for all to move on."""
        self._rds_changed = 0
        for p in self._proxies:
            p.rds_baseline = p.rds_version
            p.rds_changed_at = None

    async def wait_synced(self, timeout: float) -> dict[str, Any]:
        """Until every proxy ACKed CDS, EDS, LDS and RDS on a stream of this epoch."""
        ok = await self._wait(lambda: self._synced >= len(self._proxies), timeout)
        times = [p.synced_at for p in self._proxies if p.synced_at is not None]
        return {"ok": ok, "done": len(times), "times": times}

    async def wait_rds(self, timeout: float) -> dict[str, Any]:
        """Until every proxy ACKed a route version other than its `mark`ed one."""
        ok = await self._wait(lambda: self._rds_changed >= len(self._proxies), timeout)
        times = [p.rds_changed_at for p in self._proxies if p.rds_changed_at is not None]
        return {"ok": ok, "done": self._rds_changed, "times": times}

    async def wait_disconnected(self, timeout: float) -> dict[str, Any]:
        ok = await self._wait(lambda: not any(p.connected for p in self._proxies), timeout)
        return {"ok": ok, "connected": sum(p.connected for p in self._proxies)}

    def stats(self) -> dict[str, Any]:
        return {
            "proxies": len(self._proxies),
            "connected": sum(p.connected for p in self._proxies),
            "streams_opened": self.streams_opened,
            "streams_cut": self.streams_cut,
            "responses": dict(self.traffic.responses),
            "resources": dict(self.traffic.resources),
            "bytes": dict(self.traffic.bytes),
            "errors": self.errors[:5],
            "error_count": len(self.errors),
            "stream_errors": self.stream_errors[:3],
            "stream_error_count": len(self.stream_errors),
            "stream_errors_by_epoch": dict(self.stream_errors_by_epoch),
        }

    async def stop(self) -> None:
        self._stopping = True
        self._released.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- streams ----------------------------------------------------------------------

    async def _wait(self, done: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._progress.wait()
        return True

    async def _run(self, proxy: _Proxy) -> None:
        while not self._stopping:
            await self._released.wait()
            if self._stopping:
                return
            try:
                await self._stream(proxy)
            except grpc.aio.AioRpcError as exc:
                if not self._released.is_set():
                    self.streams_cut += 1
                elif exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    epochs = self.stream_errors_by_epoch
                    epochs[self._epoch] = epochs.get(self._epoch, 0) + 1
                    when = f"epoch {self._epoch}, {len(proxy.acked)} types acked"
                    self.stream_errors.append(
                        f"proxy {proxy.index} ({when}): {exc.code()} {exc.details()} "
                        f"{exc.debug_error_string()}"
                    )
            finally:
                if proxy.connected:
                    proxy.connected = False
                    self._progress.set()
            # Envoy retries a broken ADS stream after a short jittered back-off.
            await asyncio.sleep(random.uniform(0.2, 0.5))

    async def _stream(self, proxy: _Proxy) -> None:
        async with grpc.aio.insecure_channel(self._target, options=_CHANNEL_OPTIONS) as channel:
            # Connect first, as Envoy does: a write on a call whose connection is still
            # being set up fails inside grpcio now and then when ~2000 connect at once.
            await channel.channel_ready()
            call = channel.stream_stream(
                _METHOD,
                request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
                response_deserializer=_parse,
            )()
            proxy.epoch = self._epoch
            proxy.acked = {}
            self.streams_opened += 1
            await call.write(discovery_pb2.DiscoveryRequest(node=proxy.node, type_url=CDS))
            proxy.connected = True
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    return
                size, response = message
                await self._answer(call, proxy, size, response)

    async def _answer(
        self, call: Any, proxy: _Proxy, size: int, response: discovery_pb2.DiscoveryResponse
    ) -> None:
        type_url = response.type_url
        count = len(response.resources)
        short = SHORT.get(type_url, type_url)
        self.traffic.responses[short] = self.traffic.responses.get(short, 0) + 1
        self.traffic.resources[short] = self.traffic.resources.get(short, 0) + count
        self.traffic.bytes[short] = self.traffic.bytes.get(short, 0) + size
        first = type_url not in proxy.acked
        names = self._eds_names if type_url == EDS else ROUTE_NAMES if type_url == RDS else []
        if names and count != len(names):
            self.errors.append(f"proxy {proxy.index}: {short} has {count} of {len(names)} names")
        if type_url == CDS and first:
            await call.write(
                discovery_pb2.DiscoveryRequest(type_url=EDS, resource_names=self._eds_names)
            )
        await call.write(
            discovery_pb2.DiscoveryRequest(
                type_url=type_url,
                version_info=response.version_info,
                response_nonce=response.nonce,
                resource_names=names,
            )
        )
        if type_url == CDS and first:
            await call.write(discovery_pb2.DiscoveryRequest(type_url=LDS))
        elif type_url == LDS and first:
            await call.write(
                discovery_pb2.DiscoveryRequest(type_url=RDS, resource_names=ROUTE_NAMES)
            )
        self._record_ack(proxy, type_url, response.version_info)

    def _record_ack(self, proxy: _Proxy, type_url: str, version: str) -> None:
        now = time.monotonic()
        proxy.acked[type_url] = version
        if type_url == RDS:
            proxy.rds_version = version
            if proxy.rds_baseline is not None and version != proxy.rds_baseline:
                proxy.rds_baseline = None
                proxy.rds_changed_at = now
                self._rds_changed += 1
                self._progress.set()
        if (
            proxy.synced_at is None
            and proxy.epoch == self._epoch
            and all(t in proxy.acked for t in TYPES)
        ):
            proxy.synced_at = now
            self._synced += 1
            self._progress.set()


def _node(shape: MeshShape, index: int) -> base_pb2.Node:
    identity = proxy_identity(shape, index)
    metadata = struct_pb2.Struct()
    metadata.update(identity.metadata)
    return base_pb2.Node(id=identity.node_id, cluster="bench", metadata=metadata)


# -- the process ------------------------------------------------------------------------


def client_main(
    conn: Connection, target: str, shape: MeshShape, indices: list[int], lifetime: float
) -> None:
    """Entry point of a client process: serve driver commands until `stop` or `lifetime`."""
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        asyncio.run(_serve(conn, target, shape, indices, lifetime))
    conn.close()


async def _serve(
    conn: Connection, target: str, shape: MeshShape, indices: list[int], lifetime: float
) -> None:
    fleet = ProxyFleet(target, shape, indices)
    fleet.start()
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()
    parent = os.getppid()

    def readable() -> None:
        try:
            commands.put_nowait(conn.recv())
        except (EOFError, OSError):
            commands.put_nowait(None)  # the driver is gone: stop

    loop.add_reader(conn.fileno(), readable)
    try:
        async with asyncio.timeout(lifetime):
            while True:
                try:
                    async with asyncio.timeout(1.0):
                        command = await commands.get()
                except TimeoutError:
                    if os.getppid() != parent:
                        return
                    continue
                if command is None:
                    return
                name, *args = command
                if name == "stop":
                    conn.send({"ok": True})
                    return
                conn.send(await _dispatch(fleet, name, args))
    finally:
        loop.remove_reader(conn.fileno())
        await fleet.stop()


async def _dispatch(fleet: ProxyFleet, name: str, args: list[Any]) -> dict[str, Any]:
    if name == "release":
        return {"ok": True, "at": fleet.release()}
    if name == "hold":
        fleet.hold()
        return {"ok": True}
    if name == "mark":
        fleet.mark()
        return {"ok": True}
    if name == "wait_synced":
        return await fleet.wait_synced(float(args[0]))
    if name == "wait_rds":
        return await fleet.wait_rds(float(args[0]))
    if name == "wait_disconnected":
        return await fleet.wait_disconnected(float(args[0]))
    if name == "stats":
        return fleet.stats()
    return {"ok": False, "error": f"unknown command {name!r}"}

"""Many light fake sidecars in one process, driven by the benchmark over a pipe.

Each sidecar is one ADS stream on its own gRPC connection (a local subchannel pool, so
streams are not multiplexed onto one HTTP/2 connection) and follows Envoy's subscription
order: CDS, then EDS for the EDS clusters, LDS, then RDS for the route configurations
the listeners name. Every response is ACKed at once. Streams are State-of-the-World
until the driver switches the fleet to Delta (`mode delta`): from the next stream on a
sidecar speaks DeltaAggregatedResources, remembers each resource's version (`_ads_held`)
and sends them as `initial_resource_versions` when it reconnects, as Envoy does.

To stay light (the clients share two cores with the server they measure) a response is
parsed only to its envelope: resources are counted and their bytes summed, never
unpacked (Delta reads each resource's name and version, nothing more). The EDS and RDS
names a sidecar asks for are the ones the synthetic mesh defines (see `_mesh_gen`),
exactly what Envoy would ask for after reading the clusters and listeners; a response
whose resource count differs from the request (Delta: a sidecar that then holds another
count) is recorded as an error, so a naming mismatch can not pass unnoticed.

While the driver watches an endpoint change (`watch_eds`), each SotW EDS response is
also searched, by bytes, for the changed cluster's assignment and the changed
endpoint's address in it; a sidecar is done once it ACKed a response in the new state.

The driver sends commands (tuples) over a `multiprocessing` pipe and gets one reply per
command; times are `time.monotonic()`, which on Linux is one clock for all processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import grpc
from _ads_held import Held, Holdings
from _mesh_gen import GRPC_PORT, HTTP_PORT, SUBSETS, MeshShape, eds_cluster, proxy_identity
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2
from google.protobuf.message import Message

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
TYPES = (CDS, EDS, LDS, RDS)
SHORT = {CDS: "CDS", EDS: "EDS", LDS: "LDS", RDS: "RDS"}
_SERVICE = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
_METHOD = _SERVICE + "StreamAggregatedResources"
_DELTA_METHOD = _SERVICE + "DeltaAggregatedResources"
_CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]
_Response = tuple[int, discovery_pb2.DiscoveryResponse]
_DeltaResponse = tuple[int, discovery_pb2.DeltaDiscoveryResponse]


def _parse(data: bytes) -> _Response:
    # The envelope only: the packed resources stay opaque bytes inside their Any.
    return len(data), discovery_pb2.DiscoveryResponse.FromString(data)


def _parse_delta(data: bytes) -> _DeltaResponse:
    return len(data), discovery_pb2.DeltaDiscoveryResponse.FromString(data)


def _serialize(request: Message | bytes) -> bytes:
    """Delta requests are sent as ready bytes (see `_ads_held`); ACKs as messages."""
    return request if isinstance(request, bytes) else request.SerializeToString()


def eds_names(shape: MeshShape) -> list[str]:
    """Every outbound EDS cluster of the mesh: per service and port, default and subsets."""
    names: list[str] = []
    for k in range(shape.services):
        for port in (HTTP_PORT, GRPC_PORT):
            names.extend(eds_cluster(shape, k, port, subset) for subset in ("", *SUBSETS))
    return sorted(names)


ROUTE_NAMES = sorted([str(HTTP_PORT), str(GRPC_PORT)])


class EdsWatch:
    """The EDS state the driver waits for: one assignment has, or lacks, an endpoint.

    Matched on bytes, without unpacking: an assignment's serialization starts with its
    cluster_name (field 1), and the endpoint's address is a serialized SocketAddress
    inside it; both include their length, so a longer name or address never matches.
    """

    def __init__(self, cluster: str, address: str, present: bool) -> None:
        self.prefix = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster).SerializeToString()
        self.marker = address_pb2.SocketAddress(address=address).SerializeToString()
        self.present = present
        self._index = 0  # where the assignment was last found: the same for every proxy

    def reached(self, resources: Sequence[Any]) -> bool:
        """Whether a SotW EDS response's resources are in the watched state."""
        value = self._find(resources)
        return value is not None and (self.marker in value) == self.present

    def _find(self, resources: Sequence[Any]) -> bytes | None:
        if self._index < len(resources):
            value: bytes = resources[self._index].value
            if value.startswith(self.prefix):
                return value
        for i, packed in enumerate(resources):
            value = packed.value
            if value.startswith(self.prefix):
                self._index = i
                return value
        return None


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
    eds_done_at: float | None = None  # when it ACKed the watched EDS state
    synced_at: float | None = None
    held: dict[str, Held] = field(default_factory=dict)  # Delta: survives reconnects


@dataclass
class _Traffic:
    responses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHORT.values(), 0))
    resources: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHORT.values(), 0))
    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHORT.values(), 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHORT.values(), 0))

    def count(self, type_url: str, size: int, resources: int, removed: int = 0) -> str:
        short = SHORT.get(type_url, type_url)
        self.responses[short] = self.responses.get(short, 0) + 1
        self.resources[short] = self.resources.get(short, 0) + resources
        self.removed[short] = self.removed.get(short, 0) + removed
        self.bytes[short] = self.bytes.get(short, 0) + size
        return short


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
        self._eds_watch: EdsWatch | None = None
        self._eds_done = 0
        self._progress = asyncio.Event()
        self._stopping = False
        self._delta = False
        self._holdings = Holdings()
        self._delta_heads: dict[str, bytes] = {}
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

    def set_mode(self, mode: str) -> None:
        """`sotw` or `delta`: the protocol of streams opened from now on."""
        if mode not in ("sotw", "delta"):
            raise ValueError(f"unknown mode {mode!r}")
        self._delta = mode == "delta"

    def mark(self) -> None:
        """Remember each proxy's route version; `wait_rds` waits for all to move on."""
        self._rds_changed = 0
        for p in self._proxies:
            p.rds_baseline = p.rds_version
            p.rds_changed_at = None

    def watch_eds(self, cluster: str, address: str, present: bool) -> None:
        """`wait_eds` waits until every proxy ACKed EDS with `address` in (or not in)
        `cluster`'s assignment, on SotW streams."""
        self._eds_watch = EdsWatch(cluster, address, present)
        self._eds_done = 0
        for p in self._proxies:
            p.eds_done_at = None

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

    async def wait_eds(self, timeout: float) -> dict[str, Any]:
        """Until every proxy ACKed an EDS response in the `watch_eds` state."""
        ok = await self._wait(lambda: self._eds_done >= len(self._proxies), timeout)
        times = [p.eds_done_at for p in self._proxies if p.eds_done_at is not None]
        self._eds_watch = None  # stop searching EDS responses
        return {"ok": ok, "done": self._eds_done, "times": times}

    async def wait_disconnected(self, timeout: float) -> dict[str, Any]:
        ok = await self._wait(lambda: not any(p.connected for p in self._proxies), timeout)
        return {"ok": ok, "connected": sum(p.connected for p in self._proxies)}

    def stats(self) -> dict[str, Any]:
        held = [h for p in self._proxies for h in p.held.values()]
        return {
            "proxies": len(self._proxies),
            "connected": sum(p.connected for p in self._proxies),
            "streams_opened": self.streams_opened,
            "streams_cut": self.streams_cut,
            "responses": dict(self.traffic.responses),
            "resources": dict(self.traffic.resources),
            "removed": dict(self.traffic.removed),
            "bytes": dict(self.traffic.bytes),
            "held_own": self._holdings.own_entries(held),
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

    async def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
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
                if self._delta:
                    await self._delta_stream(proxy)
                else:
                    await self._stream(proxy)
            except grpc.aio.AioRpcError as exc:
                self._stream_failed(proxy, exc)
            finally:
                if proxy.connected:
                    proxy.connected = False
                    self._progress.set()
            # Envoy retries a broken ADS stream after a short jittered back-off.
            await asyncio.sleep(random.uniform(0.2, 0.5))

    def _stream_failed(self, proxy: _Proxy, exc: grpc.aio.AioRpcError) -> None:
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
            self._opened(proxy)
            await call.write(discovery_pb2.DiscoveryRequest(node=proxy.node, type_url=CDS))
            proxy.connected = True
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    return
                size, response = message
                await self._answer(call, proxy, size, response)

    def _opened(self, proxy: _Proxy) -> None:
        proxy.epoch = self._epoch
        proxy.acked = {}
        self.streams_opened += 1

    async def _answer(
        self, call: Any, proxy: _Proxy, size: int, response: discovery_pb2.DiscoveryResponse
    ) -> None:
        type_url = response.type_url
        count = len(response.resources)
        short = self.traffic.count(type_url, size, count)
        names = self._names(type_url)
        # Named types (EDS, RDS) may carry only what changed; never more than was asked.
        if names and count > len(names):
            self.errors.append(f"proxy {proxy.index}: {short} has {count} of {len(names)} names")
        ack = discovery_pb2.DiscoveryRequest(
            type_url=type_url,
            version_info=response.version_info,
            response_nonce=response.nonce,
            resource_names=names,
        )
        await self._reply(call, proxy, type_url, ack, self._sotw_subscribe)
        if type_url == EDS:
            self._check_eds(proxy, response.resources)
        self._record_ack(proxy, type_url, response.version_info)

    def _names(self, type_url: str) -> list[str]:
        """The names a proxy asks for of a named type; [] for wildcard types."""
        return self._eds_names if type_url == EDS else ROUTE_NAMES if type_url == RDS else []

    def _sotw_subscribe(self, _proxy: _Proxy, type_url: str) -> discovery_pb2.DiscoveryRequest:
        return discovery_pb2.DiscoveryRequest(
            type_url=type_url, resource_names=self._names(type_url)
        )

    async def _reply(
        self,
        call: Any,
        proxy: _Proxy,
        type_url: str,
        ack: Message,
        subscribe: Callable[[_Proxy, str], Message | bytes],
    ) -> None:
        """ACK in Envoy's order: EDS is asked for before CDS is ACKed, LDS after; RDS after
        the first LDS."""
        first = type_url not in proxy.acked
        if type_url == CDS and first:
            await call.write(subscribe(proxy, EDS))
        await call.write(ack)
        if type_url == CDS and first:
            await call.write(subscribe(proxy, LDS))
        elif type_url == LDS and first:
            await call.write(subscribe(proxy, RDS))

    def _check_eds(self, proxy: _Proxy, resources: Sequence[Any]) -> None:
        watch = self._eds_watch
        if watch is None or proxy.eds_done_at is not None or not watch.reached(resources):
            return
        proxy.eds_done_at = time.monotonic()
        self._eds_done += 1
        self._progress.set()

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

    # -- Delta streams ----------------------------------------------------------------

    async def _delta_stream(self, proxy: _Proxy) -> None:
        async with grpc.aio.insecure_channel(self._target, options=_CHANNEL_OPTIONS) as channel:
            await channel.channel_ready()
            call = channel.stream_stream(
                _DELTA_METHOD, request_serializer=_serialize, response_deserializer=_parse_delta
            )()
            self._opened(proxy)
            await call.write(self._delta_subscribe(proxy, CDS))
            proxy.connected = True
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    return
                size, response = message
                await self._answer_delta(call, proxy, size, response)

    async def _answer_delta(
        self, call: Any, proxy: _Proxy, size: int, response: discovery_pb2.DeltaDiscoveryResponse
    ) -> None:
        type_url = response.type_url
        short = self.traffic.count(
            type_url, size, len(response.resources), len(response.removed_resources)
        )
        held = proxy.held[type_url] = self._holdings.apply(proxy.held.get(type_url), response)
        names = self._names(type_url)
        if names and held.size != len(names):
            self.errors.append(
                f"proxy {proxy.index}: holds {held.size} {short} of {len(names)} names"
            )
        ack = discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, response_nonce=response.nonce)
        await self._reply(call, proxy, type_url, ack, self._delta_subscribe)
        self._record_ack(proxy, type_url, response.system_version_info)

    def _delta_subscribe(self, proxy: _Proxy, type_url: str) -> bytes:
        """The first request of a type on a Delta stream, with what the proxy holds of it.

        CDS and LDS are wildcard (no names); the first request (CDS) carries the node.
        """
        held = proxy.held.get(type_url)
        initial = held.initial_versions() if held is not None else b""
        if type_url == CDS:
            first = discovery_pb2.DeltaDiscoveryRequest(node=proxy.node, type_url=CDS)
            head_bytes: bytes = first.SerializeToString()
            return head_bytes + initial
        head = self._delta_heads.get(type_url)
        if head is None:
            request = discovery_pb2.DeltaDiscoveryRequest(
                type_url=type_url, resource_names_subscribe=self._names(type_url)
            )
            head = self._delta_heads[type_url] = request.SerializeToString()
        return head + initial


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
    simple: dict[str, Callable[..., None]] = {
        "hold": fleet.hold,
        "mode": fleet.set_mode,
        "mark": fleet.mark,
        "watch_eds": fleet.watch_eds,
    }
    if name in simple:
        simple[name](*args)
        return {"ok": True}
    waits = {
        "wait_synced": fleet.wait_synced,
        "wait_rds": fleet.wait_rds,
        "wait_eds": fleet.wait_eds,
        "wait_disconnected": fleet.wait_disconnected,
    }
    if name in waits:
        return await waits[name](float(args[0]))
    if name == "stats":
        return fleet.stats()
    return {"ok": False, "error": f"unknown command {name!r}"}

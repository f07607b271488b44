"""The ADS gRPC server: accepts proxy streams and pushes snapshots to them.

Streams are served by `SotwConnection` or `DeltaConnection`; what each proxy should have
comes from a `SnapshotSource`, which is called from a worker thread (translation is CPU
work the event loop must not wait for), so sources must be thread-safe. `request_push` is
debounced; a push recomputes every connected proxy's snapshot, in batches off the loop,
and hands it to that proxy's own queue, so a slow proxy delays nobody else and a proxy
whose snapshot did not change is sent nothing. Connections hand over responses already
serialized, so the ADS methods are registered with a pass-through response serializer.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from isthmus.pilot.resources import Snapshot
from isthmus.xds import _log
from isthmus.xds.connection import Connection
from isthmus.xds.debounce import Debouncer
from isthmus.xds.delta import DeltaConnection
from isthmus.xds.sotw import SotwConnection
from isthmus.xds.source import ProxyRejected, SnapshotSource
from isthmus.xds.status import ProxyStatus

AnyConnection = Connection[Any, Any]

_LOOPBACK = "127.0.0.1"
PUSH_BATCH = 64  # proxies translated per worker-thread hop


class AdsServer:
    """Aggregated Discovery Service over a unix socket (and optionally loopback TCP)."""

    def __init__(
        self, source: SnapshotSource, debounce_after: float = 0.1, debounce_max: float = 10.0
    ) -> None:
        self._source = source
        self._debouncer = Debouncer(self._push, quiet=debounce_after, max_delay=debounce_max)
        self._connections: set[AnyConnection] = set()
        self._server: grpc.aio.Server | None = None
        self._nonce_prefix = secrets.token_hex(4)
        self._nonce_counter = itertools.count(1)
        self.unix_path: str | None = None
        self.tcp_port: int | None = None
        self.push_count = 0  # completed push rounds (a debounced burst is one)

    # -- lifecycle ------------------------------------------------------------------

    async def start(
        self,
        unix_path: str | None,
        tcp_address: str | None = None,
        extra_handlers: Sequence[grpc.GenericRpcHandler] = (),
    ) -> None:
        """Listen on ``unix_path`` and/or ``tcp_address`` ("127.0.0.1:PORT", 0 picks one).
        `extra_handlers` are other gRPC services on the same socket (the CA, as istiod
        serves certificates next to xDS)."""
        if unix_path is None and tcp_address is None:
            raise ValueError("AdsServer needs a unix socket path or a TCP address")
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        _add_ads_handlers(self, server)
        if extra_handlers:
            server.add_generic_rpc_handlers(tuple(extra_handlers))
        if unix_path is not None:
            _prepare_socket_path(unix_path)
            server.add_insecure_port(f"unix:{unix_path}")
            self.unix_path = unix_path
        if tcp_address is not None:
            host, _, port = tcp_address.rpartition(":")
            if host != _LOOPBACK:
                raise ValueError(f"xDS TCP listener must be on {_LOOPBACK}, got {tcp_address!r}")
            self.tcp_port = server.add_insecure_port(f"{_LOOPBACK}:{int(port)}")
        await server.start()
        self._server = server
        self._debouncer.start()
        _log.log(logging.INFO, "started", unix=unix_path, tcp_port=self.tcp_port)

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop pushing, close every stream (after ``grace`` seconds) and the listeners."""
        await self._debouncer.stop()
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
        if self.unix_path is not None and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)
        _log.log(logging.INFO, "stopped")

    # -- pushes -----------------------------------------------------------------------

    def request_push(self, reason: str = "") -> None:
        """Something the snapshots depend on changed; push soon (debounced)."""
        self._debouncer.request(reason)

    async def wait_quiet(self, timeout: float = 10.0) -> None:
        """Wait until no push is pending or running and every stream wrote its responses.

        It does not wait for proxies to ACK; look at `status()` for that.
        """
        async with asyncio.timeout(timeout):
            while True:
                await self._debouncer.wait_idle()
                for connection in list(self._connections):
                    await connection.wait_idle()
                if self._debouncer.idle and all(c.idle for c in self._connections):
                    return

    def status(self, names: bool = False) -> list[ProxyStatus]:
        """One entry per connected stream, ordered by node id; `names` adds each type's
        subscribed names."""
        return sorted(
            (c.status(names) for c in self._connections),
            key=lambda s: (s.node_id, s.connected_since),
        )

    async def _push(self, reasons: list[str]) -> None:
        connections = list(self._connections)
        _log.log(
            logging.INFO,
            "push",
            proxies=len(connections),
            requests=len(reasons),
            reasons=",".join(sorted(set(filter(None, reasons))))[:200],
        )
        for start in range(0, len(connections), PUSH_BATCH):
            batch = [c for c in connections[start : start + PUSH_BATCH] if c in self._connections]
            # Translation is CPU work: off the event loop, so streams, ACKs and the API
            # keep their cadence while a large change is translated.
            results = await asyncio.to_thread(self._snapshots_for, [c.node for c in batch])
            for connection, result in zip(batch, results, strict=True):
                if isinstance(result, ProxyRejected):
                    connection.close(grpc.StatusCode.INVALID_ARGUMENT, str(result))
                elif result is not None:
                    connection.offer(result)
        self.push_count += 1

    def _snapshots_for(self, nodes: list[base_pb2.Node]) -> list[Snapshot | ProxyRejected | None]:
        """Each node's snapshot; its rejection; or None to keep it on its current snapshot."""
        out: list[Snapshot | ProxyRejected | None] = []
        for node in nodes:
            try:
                out.append(self._source.snapshot_for(node))
            except ProxyRejected as exc:
                _log.log(logging.WARNING, "proxy_rejected", node=node.id, error=str(exc))
                out.append(exc)
            except Exception as exc:  # keep the proxy on its current snapshot
                _log.log(logging.ERROR, "snapshot_failed", node=node.id, error=repr(exc))
                out.append(None)
        return out

    # -- streams ----------------------------------------------------------------------

    def _new_nonce(self) -> str:
        return f"{self._nonce_prefix}-{next(self._nonce_counter)}"

    async def serve_stream(
        self, kind: type[SotwConnection] | type[DeltaConnection], context: Any
    ) -> None:
        """Run one ADS stream of either protocol until it ends."""
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        node = first.node
        if not node.id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first xDS request must carry node.id"
            )
        try:
            snapshot = await asyncio.to_thread(self._source.snapshot_for, node)
        except ProxyRejected as exc:
            _log.log(logging.WARNING, "proxy_rejected", node=node.id, error=str(exc))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception as exc:
            _log.log(logging.ERROR, "snapshot_failed", node=node.id, error=repr(exc))
            await context.abort(grpc.StatusCode.INTERNAL, f"no configuration for {node.id}")
        connection: AnyConnection = kind(node, snapshot, self._new_nonce)
        self._connections.add(connection)
        _log.log(logging.INFO, "connect", node=node.id, stream=connection.kind, peer=context.peer())
        try:
            await connection.serve(first, context.read, context.write, context.abort)
        finally:
            self._connections.discard(connection)
            _log.log(logging.INFO, "disconnect", node=node.id, stream=connection.kind)


_ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"


def _add_ads_handlers(ads: AdsServer, server: grpc.aio.Server) -> None:
    """Register both ADS methods as the generated code does, except that responses are
    written as they are: the connections hand them over already serialized."""
    handlers = {
        "StreamAggregatedResources": _stream_handler(
            ads, SotwConnection, discovery_pb2.DiscoveryRequest
        ),
        "DeltaAggregatedResources": _stream_handler(
            ads, DeltaConnection, discovery_pb2.DeltaDiscoveryRequest
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_ADS_SERVICE, handlers),))
    server.add_registered_method_handlers(_ADS_SERVICE, handlers)


def _stream_handler(
    ads: AdsServer,
    kind: type[SotwConnection] | type[DeltaConnection],
    request_type: type[discovery_pb2.DiscoveryRequest] | type[discovery_pb2.DeltaDiscoveryRequest],
) -> grpc.RpcMethodHandler:
    """One ADS method: requests parsed as usual, responses passed through as bytes."""

    async def serve(_requests: AsyncIterator[Any], context: Any) -> None:
        await ads.serve_stream(kind, context)

    return grpc.stream_stream_rpc_method_handler(
        serve, request_deserializer=request_type.FromString, response_serializer=_as_is
    )


def _as_is(response: bytes) -> bytes:
    """The response serializer of the ADS methods: responses arrive encoded."""
    return response


def _prepare_socket_path(path: str) -> None:
    """Remove a socket left by a previous run; refuse to clobber anything else."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"directory for the xDS socket does not exist: {parent}")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    os.unlink(path)

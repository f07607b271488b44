"""The transport floor: what pushing the same bytes costs with no control plane at all.

A trivial ADS server in its own process: it builds one proxy's responses with isthmus'
own generator once, serializes each type once, and answers every proxy's initial
request of a type with those shared bytes (ACKs are read and ignored). Timing the same
fake sidecars against it shows how much of isthmusd's cost is moving bytes through
grpcio and how much is computing them; it is the "bare" baseline of the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from typing import Any

import grpc
from _mesh_gen import MeshShape, mesh_documents, proxy_identity
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"


def shared_responses(shape: MeshShape) -> dict[str, bytes]:
    """Serialized SotW responses (per type URL) of proxy 0, as isthmus would build them."""
    from isthmus.api.loader import load_documents
    from isthmus.model.build import ConfigObject, build_snapshot
    from isthmus.pilot.profile import ConfigGenerator
    from isthmus.pilot.proxy import proxy_from_node

    loaded = [o for text in mesh_documents(shape) for o in load_documents(text, "floor")]
    mesh = build_snapshot([ConfigObject(o.resource, i) for i, o in enumerate(loaded)])
    identity = proxy_identity(shape, 0)
    metadata = struct_pb2.Struct()
    metadata.update(identity.metadata)
    node = base_pb2.Node(id=identity.node_id, metadata=metadata)
    snapshot = ConfigGenerator().snapshot(mesh, proxy_from_node(node))
    out = {}
    for type_url, resources in snapshot.resources.items():
        response = discovery_pb2.DiscoveryResponse(
            version_info=snapshot.version(type_url),
            type_url=type_url,
            nonce="floor",
            resources=[resources[name].any for name in sorted(resources)],
        )
        out[type_url] = response.SerializeToString()
    return out


def floor_main(conn: Connection, socket_path: str, shape: MeshShape, cpu: int | None) -> None:
    """Process entry: serve until the driver closes the pipe or sends anything."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, socket_path, shared_responses(shape)))


async def _serve(conn: Connection, socket_path: str, responses: dict[str, bytes]) -> None:
    async def stream(requests: AsyncIterator[bytes], _context: Any) -> AsyncIterator[bytes]:
        async for data in requests:
            request = discovery_pb2.DiscoveryRequest.FromString(data)
            if not request.response_nonce and request.type_url in responses:
                yield responses[request.type_url]

    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    handler = grpc.method_handlers_generic_handler(
        _SERVICE, {"StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(stream)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"unix:{socket_path}")
    await server.start()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_reader(conn.fileno(), done.set)
    conn.send({"ok": True, "pid": os.getpid()})
    try:
        await done.wait()
    finally:
        loop.remove_reader(conn.fileno())
        await server.stop(0)

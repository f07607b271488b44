"""Memory one ADS stream holds in isthmusd, measured without gRPC, to explain its RSS.

    .venv/bin/python bench/_conn_memory.py --services 1000 --connections 200 [--trace]

Builds the benchmark's mesh in-process, then for each proxy the snapshot isthmusd would
build and a `SotwConnection` driven through Envoy's subscription order with ACKs (CDS,
EDS with every cluster name, LDS, RDS). Prints the RSS growth per connection and, with
`--trace`, the source lines that allocated the most (tracemalloc sees Python objects,
not protobuf's own arenas).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import time
import tracemalloc
from pathlib import Path

from _ads_load import CDS, EDS, LDS, RDS, ROUTE_NAMES, eds_names
from _mesh_gen import MeshShape, mesh_documents, proxy_identity
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from isthmus.api.loader import load_documents
from isthmus.model.build import ConfigObject, build_snapshot
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.proxy import proxy_from_node
from isthmus.xds.sotw import SotwConnection


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _drive(connection: SotwConnection, names: list[str]) -> None:
    """Subscribe and ACK every type as Envoy does, with the connection's own answers."""

    def request(type_url: str, wanted: list[str], answer: bytes | None) -> list[bytes]:
        message = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=wanted)
        if answer is not None:
            # ACK what the connection recorded as sent (its responses are encoded bytes).
            state = connection.types[type_url]
            message.version_info = state.sent_version or ""
            message.response_nonce = state.sent_nonce or ""
        connection.handle_request(message)
        affected = {type_url, EDS} if type_url == CDS else {type_url}
        return connection.responses(affected)

    for response in request(CDS, [], None):
        request(CDS, [], response)
    for response in request(EDS, names, None):
        request(EDS, names, response)
    for response in request(LDS, [], None):
        request(LDS, [], response)
    for response in request(RDS, ROUTE_NAMES, None):
        request(RDS, ROUTE_NAMES, response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--namespaces", type=int, default=4)
    parser.add_argument("--trace", action="store_true", help="tracemalloc top lines (slow)")
    args = parser.parse_args()
    shape = MeshShape(args.services, args.connections, args.namespaces)
    loaded = [o for text in mesh_documents(shape) for o in load_documents(text, "probe")]
    mesh = build_snapshot([ConfigObject(o.resource, i) for i, o in enumerate(loaded)])
    generator = ConfigGenerator()
    nodes = []
    for i in range(args.connections):
        identity = proxy_identity(shape, i)
        metadata = struct_pb2.Struct()
        metadata.update(identity.metadata)
        nodes.append(base_pb2.Node(id=identity.node_id, metadata=metadata))
    for node in nodes[: 2 * args.namespaces]:  # build the shared per-namespace views first
        generator.snapshot(mesh, proxy_from_node(node))
    names = eds_names(shape)
    counter = itertools.count(1)
    gc.collect()
    before = rss_mib()
    if args.trace:
        tracemalloc.start(5)
    started = time.perf_counter()
    connections = []
    for node in nodes:
        snapshot = generator.snapshot(mesh, proxy_from_node(node))
        connection = SotwConnection(node, snapshot, lambda: str(next(counter)))
        _drive(connection, names)
        connections.append(connection)
    gc.collect()
    grown = rss_mib() - before
    print(
        f"{args.services} services, {len(connections)} connections: RSS +{grown:.0f} MiB, "
        f"{1024 * grown / len(connections):.0f} KiB per connection "
        f"({time.perf_counter() - started:.1f}s)"
    )
    if args.trace:
        stats = tracemalloc.take_snapshot().statistics("lineno")
        print(f"traced {sum(s.size for s in stats) / 2**20:.0f} MiB; top lines:")
        for stat in stats[:8]:
            print(f"  {stat.size / 2**20:7.1f} MiB  {stat.traceback[0]}")


if __name__ == "__main__":
    main()

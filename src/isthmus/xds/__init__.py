"""isthmus.xds: the Aggregated Discovery Service that configures every Envoy.

It owns gRPC streams only (State-of-the-World and Delta), ACK/NACK tracking, the
debounced per-proxy push queue and per-proxy status. What a proxy should have comes
from a `SnapshotSource` (pilot, wired by the daemon).
"""

from isthmus.xds.server import AdsServer
from isthmus.xds.source import ProxyRejected, SnapshotSource
from isthmus.xds.status import NackRecord, ProxyStatus, TypeStatus

__all__ = [
    "AdsServer",
    "NackRecord",
    "ProxyRejected",
    "ProxyStatus",
    "SnapshotSource",
    "TypeStatus",
]

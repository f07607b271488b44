"""A counter of plaintext inbound traffic per client address and port, kept by the
server sidecar itself: what `isthmus x mtls-readiness` reads to say which clients would
be refused if the workload went STRICT.

Envoy's stats access logger increments `isthmus.plaintext_inbound` (Prometheus:
`envoy_isthmus_plaintext_inbound{source_address, destination_port}`) once per request on
PERMISSIVE plaintext HTTP chains and once per connection on TCP ones. Meshed clients
use mTLS there, so only the traffic that still needs fixing pays for it.
"""

from __future__ import annotations

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.data.accesslog.v3 import accesslog_pb2 as access_data
from envoy.extensions.access_loggers.stats.v3 import stats_pb2

from isthmus.pilot.envoy.typed import pack

STATS_ACCESS_LOGGER = "envoy.access_loggers.stats"
STAT_PREFIX = "isthmus"
COUNTER = "plaintext_inbound"
PROMETHEUS_NAME = f"envoy_{STAT_PREFIX}_{COUNTER}"
SOURCE_TAG = "source_address"
PORT_TAG = "destination_port"


def plaintext_counter(tcp: bool = False) -> accesslog_pb2.AccessLog:
    """On TCP (`tcp`), counted when the connection ends only: tcp_proxy also writes its
    access logs when it connects upstream."""
    config = stats_pb2.Config(stat_prefix=STAT_PREFIX)
    counter = config.counters.add()
    counter.stat.name = COUNTER
    counter.stat.tags.add(name=SOURCE_TAG, value_format="%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%")
    counter.stat.tags.add(name=PORT_TAG, value_format="%DOWNSTREAM_LOCAL_PORT%")
    counter.value_fixed.value = 1
    log = accesslog_pb2.AccessLog(name=STATS_ACCESS_LOGGER, typed_config=pack(config))
    if tcp:
        log.filter.log_type_filter.types.append(access_data.TcpConnectionEnd)
    return log

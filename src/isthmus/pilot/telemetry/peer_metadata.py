"""Peer metadata: how a server sidecar learns which workload called it.

The client sidecar sets one `x-isthmus-peer-*` header per workload fact (its workload,
app, version, canonical service and revision, cluster) on requests to in-mesh services,
from its Envoy's environment, overwriting whatever the app sent. The server sidecar, on
mTLS chains only (the peer is authenticated), copies them into the dynamic metadata
namespace `isthmus.peer` (header_to_metadata), with the source namespace taken from the
verified client certificate (the URI the connection manager put in
x-forwarded-client-cert), never from a header. Every inbound route removes the headers,
so no app ever sees them, and on plaintext chains they are ignored. Istio carries the
same facts in `x-envoy-peer-metadata`.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.header_to_metadata.v3 import header_to_metadata_pb2 as h2m
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.type.matcher.v3 import regex_pb2

from isthmus.model.identity import PEER_ENVIRONMENT
from isthmus.pilot.envoy.typed import pack
from isthmus.pilot.telemetry.labels import PEER_KEYS, PEER_METADATA_NAMESPACE

HEADER_TO_METADATA_FILTER = "envoy.filters.http.header_to_metadata"
XFCC = "x-forwarded-client-cert"
# The last URI in XFCC is the one the server sidecar appended for this connection's
# verified peer (the client sidecar sanitizes any the app sent).
_XFCC_NAMESPACE = r"^.*URI=spiffe://[^/;,]+/ns/([^/;,]+)/sa/[^;,]*.*$"
PEER_HEADERS = {key: f"x-isthmus-peer-{key.replace('_', '-')}" for key in PEER_KEYS}


def _environment(key: str) -> str:
    return f"%ENVIRONMENT({PEER_ENVIRONMENT[key]})%"


def peer_headers_to_add() -> list[base_pb2.HeaderValueOption]:
    """What the client sidecar adds to a request to an in-mesh service."""
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(
                key=header, value=f"%ENVIRONMENT({PEER_ENVIRONMENT[key]})%"
            ),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
        )
        for key, header in PEER_HEADERS.items()
    ]


def peer_header_names() -> list[str]:
    return list(PEER_HEADERS.values())


def peer_metadata_filter() -> hcm.HttpFilter:
    """The server sidecar's filter (mTLS chains only) that records who the peer is."""
    config = h2m.Config()
    for key, header in PEER_HEADERS.items():
        rule = config.request_rules.add(header=header, remove=True)
        rule.on_header_present.metadata_namespace = PEER_METADATA_NAMESPACE
        rule.on_header_present.key = key
    namespace = config.request_rules.add(header=XFCC)
    present = namespace.on_header_present
    present.metadata_namespace = PEER_METADATA_NAMESPACE
    present.key = "namespace"
    present.regex_value_rewrite.CopyFrom(
        regex_pb2.RegexMatchAndSubstitute(
            pattern=regex_pb2.RegexMatcher(regex=_XFCC_NAMESPACE), substitution=r"\1"
        )
    )
    return hcm.HttpFilter(name=HEADER_TO_METADATA_FILTER, typed_config=pack(config))

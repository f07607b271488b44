"""gRPC message counts for istio_request_messages_total / istio_response_messages_total.

Envoy's grpc_stats filter counts the messages of a gRPC stream into its filter state, as
"REQUEST,RESPONSE"; Envoy 1.40's formatter can not read one field of it
(`%FILTER_STATE(...:FIELD:...)%` yields null for this object) and the stats access logger
takes numbers only. So, for gRPC requests only (a composite filter matching the
content-type; other requests pay one header lookup), a few lines of Lua copy the two
numbers into dynamic metadata once the response has ended, where the stats access logger
reads them. The Lua filter sits before grpc_stats in the chain, so on the response path it
runs after grpc_stats has counted the last message.
"""

from __future__ import annotations

from envoy.extensions.common.matching.v3 import extension_matcher_pb2
from envoy.extensions.filters.http.composite.v3 import composite_pb2
from envoy.extensions.filters.http.grpc_stats.v3 import config_pb2 as grpc_stats_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.type.matcher.v3 import http_inputs_pb2
from xds.type.matcher.v3 import matcher_pb2

from isthmus.pilot.envoy.typed import pack

GRPC_STATS_FILTER = "envoy.filters.http.grpc_stats"
COMPOSITE_FILTER = "envoy.filters.http.composite"
MESSAGES_METADATA = "isthmus.grpc"
REQUEST_MESSAGES_KEY = "request_messages"
RESPONSE_MESSAGES_KEY = "response_messages"
GRPC_CONTENT_TYPE = "application/grpc"

_LUA = f"""
function envoy_on_response(handle)
  handle:trailers()
  local counts = handle:streamInfo():filterState():get("{GRPC_STATS_FILTER}")
  if counts == nil then
    return
  end
  local sent, received = string.match(tostring(counts), "(%d+),(%d+)")
  if sent ~= nil then
    local metadata = handle:streamInfo():dynamicMetadata()
    metadata:set("{MESSAGES_METADATA}", "{REQUEST_MESSAGES_KEY}", tonumber(sent))
    metadata:set("{MESSAGES_METADATA}", "{RESPONSE_MESSAGES_KEY}", tonumber(received))
  end
end
"""


def _message_counts_to_metadata() -> hcm.HttpFilter:
    lua = lua_pb2.Lua()
    lua.default_source_code.inline_string = _LUA
    action = composite_pb2.ExecuteFilterAction()
    action.typed_config.name = "envoy.filters.http.lua"
    action.typed_config.typed_config.CopyFrom(pack(lua))
    matcher = matcher_pb2.Matcher()
    tree = matcher.matcher_tree
    tree.input.name = "content-type"
    tree.input.typed_config.CopyFrom(
        pack(http_inputs_pb2.HttpRequestHeaderMatchInput(header_name="content-type"))
    )
    on_match = tree.prefix_match_map.map[GRPC_CONTENT_TYPE]
    on_match.action.name = "grpc-message-counts"
    on_match.action.typed_config.CopyFrom(pack(action))
    config = extension_matcher_pb2.ExtensionWithMatcher(xds_matcher=matcher)
    config.extension_config.name = COMPOSITE_FILTER
    config.extension_config.typed_config.CopyFrom(pack(composite_pb2.Composite()))
    return hcm.HttpFilter(name=COMPOSITE_FILTER, typed_config=pack(config))


def grpc_message_filters() -> list[hcm.HttpFilter]:
    """The filters that make gRPC message counts readable by the stats access logger."""
    stats = grpc_stats_pb2.FilterConfig(emit_filter_state=True)
    stats.stats_for_all_methods.value = False
    return [
        _message_counts_to_metadata(),
        hcm.HttpFilter(name=GRPC_STATS_FILTER, typed_config=pack(stats)),
    ]

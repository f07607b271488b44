"""The few pieces of protobuf's wire format needed to assemble xDS responses from bytes.

A response to thousands of proxies is mostly the same resources; encoding them once and
joining the bytes is far cheaper than building and serializing a message per proxy.
Only length-delimited fields (strings, bytes, messages) are needed. Fields are written in
field-number order, as protobuf serializes them, so the bytes equal its serialization.
"""

from __future__ import annotations

# Field numbers of envoy/service/discovery/v3/discovery.proto (tests check them against
# the generated descriptors).
SOTW_VERSION_INFO = 1  # DiscoveryResponse.version_info
SOTW_RESOURCES = 2  # DiscoveryResponse.resources (repeated Any)
SOTW_TYPE_URL = 4  # DiscoveryResponse.type_url
SOTW_NONCE = 5  # DiscoveryResponse.nonce
DELTA_SYSTEM_VERSION_INFO = 1  # DeltaDiscoveryResponse.system_version_info
DELTA_RESOURCES = 2  # DeltaDiscoveryResponse.resources (repeated Resource)
DELTA_TYPE_URL = 4  # DeltaDiscoveryResponse.type_url
DELTA_NONCE = 5  # DeltaDiscoveryResponse.nonce
DELTA_REMOVED_RESOURCES = 6  # DeltaDiscoveryResponse.removed_resources (repeated string)
RESOURCE_VERSION = 1  # Resource.version
RESOURCE_BODY = 2  # Resource.resource (Any)
RESOURCE_NAME = 3  # Resource.name

_LENGTH_DELIMITED = 2  # wire type of strings, bytes and embedded messages


def varint(value: int) -> bytes:
    """``value`` (non-negative) as a base-128 varint, least significant group first."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(field_number: int, data: bytes) -> bytes:
    """One length-delimited field: tag, length, then ``data`` (an embedded message or bytes)."""
    return varint(field_number << 3 | _LENGTH_DELIMITED) + varint(len(data)) + data


def string_field(field_number: int, text: str) -> bytes:
    """A proto3 singular string field; empty, it is omitted as protobuf omits defaults."""
    return length_delimited(field_number, text.encode()) if text else b""

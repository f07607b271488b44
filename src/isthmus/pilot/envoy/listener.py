"""Listener builders: the outbound virtual listener (15001), per-port outbound listeners,
the inbound virtual listener (15006) and the explicit HTTP proxy listener.

Names follow Istio: `virtualOutbound`, `0.0.0.0_8080`, `10.96.0.12_3306`, `virtualInbound`
(a CIDR block's TCP chains live on `0.0.0.0_PORT`, matched by destination prefix).
Per-port listeners do not bind; the virtual listener hands captured connections to them
by original destination (use_original_dst).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from google.protobuf import wrappers_pb2

from isthmus.pilot.envoy.typed import pack

OUTBOUND_CAPTURE_PORT = 15001
INBOUND_CAPTURE_PORT = 15006
HTTP_APPLICATION_PROTOCOLS = ("http/1.1", "h2c")
# Set next to application protocols so Envoy does not inject a TLS inspector (as Istio).
RAW_BUFFER = "raw_buffer"


def socket_address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=ip, port_value=port)
    )


def _original_dst() -> lc.ListenerFilter:
    return lc.ListenerFilter(
        name="envoy.filters.listener.original_dst",
        typed_config=pack(original_dst_pb2.OriginalDst()),
    )


def http_inspector() -> lc.ListenerFilter:
    return lc.ListenerFilter(
        name="envoy.filters.listener.http_inspector",
        typed_config=pack(http_inspector_pb2.HttpInspector()),
    )


def virtual_listener(
    name: str,
    port: int,
    direction: int,
    default_chain: lc.FilterChain,
    chains: Sequence[lc.FilterChain] = (),
    hand_off: bool = True,
) -> listener_pb2.Listener:
    """A capture listener: binds 0.0.0.0:port, restores the original destination.

    virtualOutbound hands connections off to the `IP_PORT` listener of their original
    destination (use_original_dst). virtualInbound must not: the original destination of
    inbound traffic is the pod's own IP:port, which the outbound `0.0.0.0_PORT` listener
    would match, sending the request out again (a forwarding loop). It matches its own
    filter chains by destination port instead, as Istio's does.
    """
    listener = listener_pb2.Listener(
        name=name,
        address=socket_address("0.0.0.0", port),
        listener_filters=[_original_dst()],
        filter_chains=list(chains),
        default_filter_chain=default_chain,
        traffic_direction=direction,
    )
    if hand_off:
        listener.use_original_dst.CopyFrom(wrappers_pb2.BoolValue(value=True))
    return listener


def outbound_port_listener(
    ip: str,
    port: int,
    chains: Sequence[lc.FilterChain],
    sniff_http: bool = False,
    default_chain: lc.FilterChain | None = None,
) -> listener_pb2.Listener:
    """`IP_PORT` listener reached only by hand-off from virtualOutbound."""
    listener = listener_pb2.Listener(
        name=f"{ip}_{port}",
        address=socket_address(ip, port),
        bind_to_port=wrappers_pb2.BoolValue(value=False),
        filter_chains=list(chains),
        traffic_direction=base_pb2.OUTBOUND,
    )
    if sniff_http:
        listener.listener_filters.append(http_inspector())
        # Server-first protocols send nothing: after the inspector's timeout they go on
        # as TCP instead of being closed (Istio sets the same).
        listener.continue_on_listener_filters_timeout = True
    if default_chain is not None:
        listener.default_filter_chain.CopyFrom(default_chain)
    return listener


def explicit_proxy_listener(port: int, chain: lc.FilterChain) -> listener_pb2.Listener:
    """Istio's proxyHttpPort: a real HTTP proxy on 127.0.0.1 for apps using HTTP_PROXY."""
    return listener_pb2.Listener(
        name=f"127.0.0.1_{port}",
        address=socket_address("127.0.0.1", port),
        filter_chains=[chain],
        traffic_direction=base_pb2.OUTBOUND,
    )


def _destination_prefix(chain: lc.FilterChain, address: str) -> None:
    """Match connections to `address`: exactly that IP (a /32, or a /128 for IPv6), or
    any address of a CIDR block (`network/prefix`)."""
    network = ipaddress.ip_network(address, strict=False)
    chain.filter_chain_match.prefix_ranges.append(
        address_pb2.CidrRange(
            address_prefix=str(network.network_address),
            prefix_len=wrappers_pb2.UInt32Value(value=network.prefixlen),
        )
    )


def http_chain(
    name: str, network_filter: lc.Filter, sniffed: bool = False, prefix: str | None = None
) -> lc.FilterChain:
    """An HTTP chain; `sniffed` matches only what the HTTP inspector found to be HTTP,
    `prefix` only connections to that destination address (an IP or a CIDR block)."""
    chain = lc.FilterChain(name=name, filters=[network_filter])
    if prefix is not None:
        _destination_prefix(chain, prefix)
    if sniffed:
        chain.filter_chain_match.transport_protocol = RAW_BUFFER
        chain.filter_chain_match.application_protocols.extend(HTTP_APPLICATION_PROTOCOLS)
    return chain


def tcp_chain(
    name: str,
    network_filter: lc.Filter,
    prefix: str | None = None,
    port: int | None = None,
    sniffed: bool = False,
) -> lc.FilterChain:
    """A TCP chain; `sniffed` marks the non-HTTP sibling of a sniffed HTTP chain.

    Envoy narrows filter chains criterion by criterion and never backtracks: a sibling
    without the HTTP chain's transport protocol would be dropped at that step, and
    non-HTTP bytes would miss both chains. So it names `raw_buffer` too and differs from
    the HTTP chain only in having no application protocols."""
    chain = lc.FilterChain(name=name, filters=[network_filter])
    if prefix is not None:
        _destination_prefix(chain, prefix)
    if port is not None:
        chain.filter_chain_match.destination_port.value = port
    if sniffed:
        chain.filter_chain_match.transport_protocol = RAW_BUFFER
    return chain

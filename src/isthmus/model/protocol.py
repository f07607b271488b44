"""Istio's protocol selection: appProtocol first, then the port name's prefix."""

from __future__ import annotations

from isthmus.model.types import Protocol

_BY_NAME: dict[str, Protocol] = {
    "http": Protocol.HTTP,
    "http2": Protocol.HTTP2,
    "grpc": Protocol.GRPC,
    "grpc-web": Protocol.GRPC_WEB,
    "https": Protocol.HTTPS,
    "tls": Protocol.TLS,
    "tcp": Protocol.TCP,
    "mongo": Protocol.MONGO,
    "redis": Protocol.REDIS,
    "mysql": Protocol.MYSQL,
    "udp": Protocol.UDP,
}

# appProtocol values Istio maps beyond the plain names (Kubernetes-style prefixed forms).
_APP_PROTOCOL_ALIASES: dict[str, Protocol] = {
    "kubernetes.io/h2c": Protocol.HTTP2,
    "kubernetes.io/ws": Protocol.HTTP,
    "kubernetes.io/wss": Protocol.HTTPS,
    "h2c": Protocol.HTTP2,
}


def parse_protocol(value: str | None) -> Protocol:
    """Map a protocol name (case-insensitive) to Istio's Protocol, or UNSUPPORTED."""
    if not value:
        return Protocol.UNSUPPORTED
    lowered = value.lower()
    if lowered in _APP_PROTOCOL_ALIASES:
        return _APP_PROTOCOL_ALIASES[lowered]
    return _BY_NAME.get(lowered, Protocol.UNSUPPORTED)


def select_protocol(
    port_name: str | None, app_protocol: str | None = None, l4: str = "TCP"
) -> Protocol:
    """Protocol of a Kubernetes Service port as Istio selects it.

    appProtocol wins; otherwise the port name `<protocol>[-<suffix>]`; UDP ports are UDP.
    Anything else is UNSUPPORTED, which isthmus treats as Istio does: protocol sniffing
    on outbound (HTTP inspector) — see pilot.envoy.listener.
    """
    if l4.upper() == "UDP":
        return Protocol.UDP
    if app_protocol:
        by_app = parse_protocol(app_protocol)
        if by_app is not Protocol.UNSUPPORTED:
            return by_app
    if port_name:
        lowered = port_name.lower()
        if lowered in _BY_NAME:
            return _BY_NAME[lowered]
        prefix = lowered.split("-", 1)[0]
        if "-" in lowered and lowered.startswith("grpc-web"):
            return Protocol.GRPC_WEB
        return _BY_NAME.get(prefix, Protocol.UNSUPPORTED)
    return Protocol.UNSUPPORTED

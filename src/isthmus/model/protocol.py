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

# Kubernetes' standard appProtocol names (valid only as appProtocol, never as a port name).
_KUBERNETES_APP_PROTOCOLS: dict[str, Protocol] = {
    "kubernetes.io/h2c": Protocol.HTTP2,
    "kubernetes.io/ws": Protocol.HTTP,
    "kubernetes.io/wss": Protocol.HTTPS,
}

# Server-first or otherwise sniffing-hostile ports: TCP when nothing else is declared
# (SMTP, DNS, MySQL, MongoDB), as Istio does.
WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})


def parse_protocol(value: str | None) -> Protocol:
    """Istio's protocol.Parse: a protocol name (case-insensitive), or UNSUPPORTED."""
    if not value:
        return Protocol.UNSUPPORTED
    return _BY_NAME.get(value.lower(), Protocol.UNSUPPORTED)


def select_protocol(
    port_name: str | None,
    app_protocol: str | None = None,
    l4: str = "TCP",
    port: int | None = None,
) -> Protocol:
    """Protocol of a Kubernetes Service port as Istio's ConvertProtocol selects it.

    UDP ports are UDP. A set appProtocol is used instead of the port name (never as well),
    else the port name: `<protocol>[-<suffix>]`, `grpc-web` being checked before the
    prefix split. An unknown protocol on a well-known TCP port is TCP; anything else
    unknown is UNSUPPORTED, which isthmus treats as Istio does: protocol sniffing.
    """
    if l4.upper() == "UDP":
        return Protocol.UDP
    name = port_name or ""
    if app_protocol is not None:
        if app_protocol in _KUBERNETES_APP_PROTOCOLS:
            return _KUBERNETES_APP_PROTOCOLS[app_protocol]
        name = app_protocol
    if name.lower().startswith("grpc-web"):
        return Protocol.GRPC_WEB
    protocol = parse_protocol(name.split("-", 1)[0])
    if protocol is Protocol.UNSUPPORTED and port in WELL_KNOWN_TCP_PORTS:
        return Protocol.TCP
    return protocol

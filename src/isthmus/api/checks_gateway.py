"""Gateway checks, as Istio's ValidateGateway (validateServer, validateTLSOptions), plus
"not supported yet" for what isthmus does not enforce on a gateway yet."""

from __future__ import annotations

from isthmus.api import names
from isthmus.api.base import json_name
from isthmus.api.checks_common import (
    NOT_SUPPORTED,
    check_port,
    check_unique,
    namespaced_host_error,
)
from isthmus.api.checks_serviceentry import PROTOCOLS
from isthmus.api.errors import FieldPath, Problems, short_repr
from isthmus.api.gateway import Gateway, Server, ServerTLSMode, ServerTLSSettings

# Server protocols a gateway serves today: HTTP's family; HTTPS it terminates or passes
# through; TLS it passes through (by SNI, to a VirtualService's tls routes); TCP it
# proxies (to a VirtualService's tcp routes).
PLAINTEXT_PROTOCOLS = frozenset({"http", "http2", "grpc", "grpc-web"})
SERVED_PROTOCOLS = PLAINTEXT_PROTOCOLS | {"https", "tls", "tcp"}
TERMINATED_MODES = frozenset(
    {
        ServerTLSMode.SIMPLE,
        ServerTLSMode.MUTUAL,
        ServerTLSMode.OPTIONAL_MUTUAL,
        ServerTLSMode.ISTIO_MUTUAL,
    }
)
_MUTUAL = frozenset({ServerTLSMode.MUTUAL, ServerTLSMode.OPTIONAL_MUTUAL})
# TLS settings isthmus does not translate yet.
_UNSUPPORTED_TLS = (
    "credential_names",
    "tls_certificates",
    "ca_cert_credential_name",
    "insecure_skip_verify",
)
_SPECIAL_NAMESPACES = frozenset({".", "*"})


def check_gateway(gateway: Gateway, problems: Problems) -> None:
    path = FieldPath("spec")
    name_problem = names.dns1123_label_error(gateway.metadata.name)
    if name_problem:
        problems.add(FieldPath("metadata").field("name"), f"gateway name: {name_problem}")
    servers = gateway.spec.servers
    if not servers:
        problems.add(path.field("servers"), "a gateway needs at least one server")
    for position, server in enumerate(servers):
        _check_server(problems, path.field("servers").index(position), server)
    check_unique(
        problems, path.field("servers"), (s.port.name for s in servers), "server port name"
    )


def _check_server(problems: Problems, path: FieldPath, server: Server) -> None:
    if not server.hosts:
        problems.add(path.field("hosts"), "a server needs at least one host")
    for position, host in enumerate(server.hosts):
        problem = server_host_error(host)
        if problem:
            problems.add(path.field("hosts").index(position), problem)
    port = server.port
    here = path.field("port")
    protocol = port.protocol.lower()
    if protocol not in PROTOCOLS:
        problems.add(here.field("protocol"), f"unknown protocol {short_repr(port.protocol)}")
    elif protocol not in SERVED_PROTOCOLS:
        problems.add(here.field("protocol"), f"{port.protocol} servers are {NOT_SUPPORTED}")
    check_port(problems, here.field("number"), port.number)
    if not port.name:
        problems.add(here.field("name"), "is required")
    if port.target_port is not None:
        problems.add(here.field("targetPort"), "has no effect on gateways (Istio refuses it)")
    if server.bind is not None:
        problems.add(path.field("bind"), NOT_SUPPORTED)
    if server.default_endpoint is not None:
        problems.add(path.field("defaultEndpoint"), NOT_SUPPORTED)
    if server.tls is not None:
        _check_tls(problems, path.field("tls"), server.tls, protocol)
    elif protocol in ("https", "tls"):
        problems.add(path.field("tls"), f"an {protocol.upper()} server needs TLS settings")


def _check_tls(problems: Problems, path: FieldPath, tls: ServerTLSSettings, protocol: str) -> None:
    """A plaintext HTTP server may only say `httpsRedirect` (Istio: no TLS settings on
    plaintext ports). An HTTPS server terminates TLS with its certificate (SIMPLE), also
    checking clients' (MUTUAL, OPTIONAL_MUTUAL), or with the mesh's (ISTIO_MUTUAL)."""
    if protocol not in SERVED_PROTOCOLS:
        return
    if protocol == "tcp":
        problems.add(path, "server cannot have TLS settings for non HTTPS/TLS ports (Istio)")
        return
    if protocol in PLAINTEXT_PROTOCOLS:
        for name in sorted(tls.model_fields_set - {"https_redirect"}):
            problems.add(
                path.field(json_name(name)),
                "server cannot have TLS settings for plain text HTTP ports",
            )
        return
    if tls.mode is ServerTLSMode.PASSTHROUGH:
        return  # the client's TLS goes through untouched: no certificate (Istio warns)
    if protocol == "tls" or tls.mode not in TERMINATED_MODES:
        problems.add(
            path.field("mode"), f"{tls.mode.value} is {NOT_SUPPORTED} on {protocol.upper()} servers"
        )
        return
    for name in _UNSUPPORTED_TLS:
        if name in tls.model_fields_set:
            problems.add(path.field(json_name(name)), NOT_SUPPORTED)
    if tls.mode is ServerTLSMode.ISTIO_MUTUAL:
        for name in ("server_certificate", "private_key", "ca_certificates", "credential_name"):
            if getattr(tls, name):
                problems.add(
                    path.field(json_name(name)), "ISTIO_MUTUAL uses the mesh's certificates"
                )
        return
    if tls.credential_name and (tls.server_certificate or tls.private_key):
        problems.add(
            path.field("credentialName"),
            "set either credentialName or serverCertificate/privateKey, not both",
        )
    what = "MUTUAL TLS" if tls.mode in _MUTUAL else "SIMPLE TLS"
    files = tls.server_certificate or tls.private_key
    if not (tls.credential_name or tls.credential_names or tls.tls_certificates or files):
        problems.add(
            path, f"{what} needs a certificate: credentialName, or serverCertificate and privateKey"
        )
    elif files and not tls.credential_name:
        for name, value in (
            ("serverCertificate", tls.server_certificate),
            ("privateKey", tls.private_key),
        ):
            if not value:
                problems.add(path.field(name), f"{what} requires it with the other")
        if tls.mode in _MUTUAL and not tls.ca_certificates:
            problems.add(path.field("caCertificates"), f"{what} requires a client CA bundle")
    for name in ("server_certificate", "private_key", "ca_certificates", "ca_crl"):
        value = getattr(tls, name)
        if value and not value.startswith("/"):
            problems.add(path.field(json_name(name)), "must be an absolute path")


def server_host_error(host: str) -> str | None:
    """Istio's namespace/host form for gateway servers: `host` (any namespace), `ns/host`,
    `./host`, `*/host`."""
    return namespaced_host_error(host, _SPECIAL_NAMESPACES)

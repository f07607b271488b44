"""The bare Envoy pair: one Envoy per pod with the smallest static config that carries the
same traffic as the sidecars (client listener -> server Envoy -> app), and nothing else:
no xDS, no stats sinks, no access log, no capture, HTTP/1.1. Each has an admin listener
on the pod's 127.0.0.1 only so the bench can read its counters (TLS handshakes); it
serves nothing on the request path.

With `TlsFiles` the hop between the two Envoys is mutual TLS with exactly the mesh's TLS
settings, taken from `isthmus.pilot.security.tls` so they can not drift: TLS 1.2-1.3,
the client offers Istio's ALPN and SNI and checks the server's SPIFFE id, the server
offers h2/http/1.1, requires a client certificate and checks it is of the trust domain.
Certificates come from files instead of SDS. With `max_requests` both clusters (client
Envoy -> server Envoy, server Envoy -> app) open a new connection after that many
requests, as a DestinationRule's `maxRequestsPerConnection` does to a sidecar's outbound
and inbound clusters.

It is the yardstick the architecture asks for: what isthmus costs beyond Envoy itself.
Both Envoys get the sidecars' worker count.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _dp_certs import TRUST_DOMAIN, TlsFiles

from isthmus.pilot.security.tls import CLIENT_MTLS_ALPN, SERVER_HTTP_ALPN, TLS_SOCKET

CLIENT_PORT = 15001  # as the sidecar's outbound capture port
SERVER_PORT = 15006  # as the sidecar's inbound capture port

_HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def _address(ip: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": ip, "port_value": port}}


def _common_tls(files: TlsFiles, alpn: Sequence[str], san: dict[str, str]) -> dict[str, Any]:
    return {
        "tls_params": {
            "tls_minimum_protocol_version": "TLSv1_2",
            "tls_maximum_protocol_version": "TLSv1_3",
        },
        "tls_certificates": [
            {
                "certificate_chain": {"filename": str(files.chain)},
                "private_key": {"filename": str(files.key)},
            }
        ],
        "alpn_protocols": list(alpn),
        "validation_context": {
            "trusted_ca": {"filename": str(files.root)},
            "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": san}],
        },
    }


def upstream_tls(files: TlsFiles, sni: str, server_identity: str) -> dict[str, Any]:
    """The client side of the mesh's ISTIO_MUTUAL (`upstream_mtls_socket`), from files."""
    context = {
        "@type": _TLS + "UpstreamTlsContext",
        "sni": sni,
        "common_tls_context": _common_tls(files, CLIENT_MTLS_ALPN, {"exact": server_identity}),
    }
    return {"name": TLS_SOCKET, "typed_config": context}


def downstream_tls(files: TlsFiles) -> dict[str, Any]:
    """The server side of the mesh's mTLS on an HTTP port (`downstream_mtls_socket`)."""
    san = {"prefix": f"spiffe://{TRUST_DOMAIN}/"}
    context = {
        "@type": _TLS + "DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": _common_tls(files, SERVER_HTTP_ALPN, san),
    }
    return {"name": TLS_SOCKET, "typed_config": context}


def bootstrap(
    listen_ip: str,
    listen_port: int,
    upstream_ip: str,
    upstream_port: int,
    *,
    admin_port: int,
    listener_tls: dict[str, Any] | None = None,
    upstream_tls: dict[str, Any] | None = None,
    max_requests: int = 0,
    xfcc: bool = False,
) -> str:
    """One HTTP listener routing everything to one static upstream, as JSON; TLS on the
    listener and/or to the upstream when given, a new upstream connection every
    `max_requests` requests when non-zero. `xfcc` adds what the mesh's mTLS chains add per
    request: the client's certificate details in x-forwarded-client-cert for the app
    (`inline_connection_manager(peer_certificate=True)`)."""
    listener: dict[str, Any] = {
        "name": "bench",
        "address": _address(listen_ip, listen_port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": _HCM,
                            "stat_prefix": "bench",
                            "route_config": {
                                "virtual_hosts": [
                                    {
                                        "name": "all",
                                        "domains": ["*"],
                                        "routes": [
                                            {"match": {"prefix": "/"}, "route": {"cluster": "up"}}
                                        ],
                                    }
                                ]
                            },
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {"@type": _ROUTER},
                                }
                            ],
                        },
                    }
                ]
            }
        ],
    }
    if listener_tls is not None:
        listener["filter_chains"][0]["transport_socket"] = listener_tls
    if xfcc:
        manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
        manager["forward_client_cert_details"] = "APPEND_FORWARD"
        manager["set_current_client_cert_details"] = {"subject": True, "uri": True, "dns": True}
    cluster: dict[str, Any] = {
        "name": "up",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "up",
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _address(upstream_ip, upstream_port)}}]}
            ],
        },
    }
    if upstream_tls is not None:
        cluster["transport_socket"] = upstream_tls
    if max_requests:
        cluster["typed_extension_protocol_options"] = {
            _HTTP_OPTIONS: {
                "@type": "type.googleapis.com/" + _HTTP_OPTIONS,
                "common_http_protocol_options": {"max_requests_per_connection": max_requests},
                "explicit_http_config": {"http_protocol_options": {}},
            }
        }
    admin = {"address": _address("127.0.0.1", admin_port)}
    resources = {"listeners": [listener], "clusters": [cluster]}
    return json.dumps({"admin": admin, "static_resources": resources})


@dataclass
class BareEnvoy:
    """One bench-started Envoy inside a pod's namespace (its pid is Envoy's own: `ip netns
    exec` execs)."""

    name: str
    process: subprocess.Popen[bytes]
    admin_port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start(
    name: str,
    binary: str,
    config: str,
    admin_port: int,
    concurrency: int,
    workdir: Path,
    in_pod: Callable[[Sequence[str]], list[str]],
) -> BareEnvoy:
    config_path = workdir / f"{name}.json"
    config_path.write_text(config)
    log = (workdir / f"{name}.log").open("ab")
    argv = [
        binary,
        "-c",
        str(config_path),
        "--concurrency",
        str(concurrency),
        "--disable-hot-restart",
        "--use-dynamic-base-id",
        "--log-level",
        "warning",
    ]
    with log:
        process = subprocess.Popen(
            in_pod(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    return BareEnvoy(name, process, admin_port)


def wait_serving(probe: Callable[[], bool], envoys: Sequence[BareEnvoy], timeout: float) -> None:
    """Until `probe` (one request end to end) succeeds; fails early if an Envoy died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for envoy in envoys:
            if envoy.process.poll() is not None:
                raise RuntimeError(f"bare Envoy {envoy.name} exited ({envoy.process.returncode})")
        if probe():
            return
        time.sleep(0.2)
    raise RuntimeError(f"bare Envoy pair not serving within {timeout:.0f}s")
